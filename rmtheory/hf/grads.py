"""Per-sample score vectors g = ∇_θ log π(y|x) of a Hugging Face causal LM, projected on the fly → the sketch file
that ``rmtheory evaluate --sketches`` reads (the teaching rates rate_G, rate_self; ``docs/rate_estimator.md``).

log π(y|x) is the sum over the response tokens of their log-probabilities given the prompt tokens and the
response tokens before them (logits divided by ``temperature``, which must be the sampling temperature: the
estimator needs E[g] = 0 under the distribution that produced the samples, so top-p/top-k truncation is not
supported). The gradient is taken with respect to a parameter subset (:func:`select_params`) and projected to
dimension D by the seeded sketch of :mod:`rmtheory._sketch` (blocks = parameter tensors, named as in
``model.named_parameters()``, flattened in C order), so that ``rmtheory._sketch.sketch(g_full, D, seed, kind,
blocks)`` of the unprojected gradient gives the same vector. ``sketch_dim=None`` keeps the exact gradient.

Memory is bounded by ``batch_size``: per mini-batch, the per-sample gradients of the selected parameters
(``torch.func.vmap(grad)`` over right-padded sequences, which leaves a causal model's logits at the real
positions unchanged; or one backward per sample with ``method="loop"``), projected parameter by parameter.
Cost of the projection: D × (selected parameters) multiply-adds per sample; the projection chunks are kept on
the device up to ``cache_bytes`` and regenerated per mini-batch beyond that.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence

import numpy as np

from .._sketch import KINDS, SketchSpec, check_spec, iter_chunks


class GradsError(ValueError):
    """Bad arguments or inputs of the gradient computation (a one-line message naming the argument)."""


def _block_list(model):
    """(name, length) of the model's largest ``nn.ModuleList`` (its transformer blocks)."""
    import torch

    best = None
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.ModuleList) and (best is None or len(mod) > best[1]):
            best = (name, len(mod))
    return best


def select_params(model, grad_params=None) -> list[str]:
    """Names of the parameters the gradient is taken over, in ``model.named_parameters()`` order.

    ``grad_params``: None or ``"all"`` (every parameter that requires grad); ``"last:N"`` (the parameters of
    the last N blocks of the model's largest ``nn.ModuleList``, e.g. ``transformer.h``); or regular
    expressions (a comma-separated string or a list) searched in the names (``"lm_head|ln_f"``)."""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    if grad_params is None or grad_params == "all":
        return names
    if isinstance(grad_params, str) and grad_params.startswith("last:"):
        n = grad_params[5:]
        blocks = _block_list(model)
        if not n.isdigit() or int(n) < 1:
            raise GradsError(f"grad_params: 'last:N' needs an integer N >= 1; got {grad_params!r}")
        if blocks is None:
            raise GradsError("grad_params: 'last:N' needs a model with an nn.ModuleList of blocks; use name patterns")
        prefix, length = blocks
        keep = tuple(f"{prefix}.{i}." for i in range(max(0, length - int(n)), length))
        out = [x for x in names if x.startswith(keep)]
    else:
        pats = [p.strip() for p in (grad_params.split(",") if isinstance(grad_params, str) else grad_params)]
        try:
            rx = [re.compile(p) for p in pats if p]
        except re.error as e:
            raise GradsError(f"grad_params: bad pattern ({e})") from None
        out = [x for x in names if any(r.search(x) for r in rx)]
    if not out:
        raise GradsError(f"grad_params {grad_params!r} selects no parameter (names: {', '.join(names[:4])}, …)")
    return out


def _batch(prompt_ids, response_ids, idx, device):
    """Right-padded token ids [B, T] and the mask of the positions whose next token is a response token."""
    import torch

    seqs = [list(prompt_ids[i]) + list(response_ids[i]) for i in idx]
    T = max(len(s) for s in seqs)
    ids = torch.zeros((len(idx), T), dtype=torch.long)
    mask = torch.zeros((len(idx), T - 1))
    for r, i in enumerate(idx):
        s = seqs[r]
        ids[r, :len(s)] = torch.tensor(s, dtype=torch.long)
        ids[r, len(s):] = s[-1]            # any valid id: causal attention never looks ahead
        mask[r, len(prompt_ids[i]) - 1:len(s) - 1] = 1.0
    return ids.to(device), mask.to(device)


def _log_prob(model, params, ids, mask, temperature):
    """log π(response | prompt) of each row: Σ over the masked positions of log softmax(logits/τ)[next token]."""
    import torch
    from torch.func import functional_call

    # an explicit all-ones mask, created fresh (not derived from the vmapped ids): HF's padding checks are
    # data-dependent, which vmap refuses
    attn = torch.ones(tuple(ids.shape), dtype=torch.long, device=ids.device)
    logits = functional_call(model, params, (ids,), {"attention_mask": attn, "use_cache": False}).logits
    lp = torch.log_softmax(logits[:, :-1].float() / temperature, -1).gather(-1, ids[:, 1:, None])[..., 0]
    return (lp * mask).sum(-1)


def _per_sample_grads(model, names, ids, mask, temperature, method):
    """{name: [B, numel]} gradients of each row's log-probability."""
    import torch
    from torch.func import grad, vmap

    frozen = {n: p.detach() for n, p in model.named_parameters() if n not in set(names)}
    frozen.update({n: b for n, b in model.named_buffers()})
    chosen = {n: p.detach() for n, p in model.named_parameters() if n in set(names)}

    def one(sel, x, m):
        return _log_prob(model, {**frozen, **sel}, x[None], m[None], temperature)[0]

    if method == "vmap":
        with warnings.catch_warnings():  # torch's note that CPU attention has no batching rule (correct, slower)
            warnings.filterwarnings("ignore", message="There is a performance drop", category=UserWarning)
            g = vmap(grad(one), in_dims=(None, 0, 0))(chosen, ids, mask)
        return {n: g[n].reshape(ids.shape[0], -1) for n in names}
    out = {n: torch.empty((ids.shape[0], chosen[n].numel()), device=ids.device) for n in names}
    for r in range(ids.shape[0]):
        g = grad(one)(chosen, ids[r], mask[r])
        for n in names:
            out[n][r] = g[n].reshape(-1)
    return out


class _Projector:
    """S·g for per-parameter gradient blocks on the torch side, chunk by chunk (rmtheory._sketch's S)."""

    def __init__(self, spec: SketchSpec, shapes: dict, device, cache_bytes: int):
        self.spec, self.device, self.shapes = spec, device, shapes
        self.cache, budget = {}, cache_bytes
        for name, n in shapes.items():
            size = n * spec.dim * 4
            if size <= budget:
                self.cache[name] = self._chunks(name, n)
                budget -= size

    def _chunks(self, name, n):
        import torch

        return [(a, b, torch.from_numpy(c).to(self.device)) for a, b, c in iter_chunks(self.spec, name, n, np.float32)]

    def __call__(self, grads: dict):
        import torch

        rows = next(iter(grads.values())).shape[0]
        out = torch.zeros((rows, self.spec.dim), device=self.device)
        for name, g in grads.items():
            chunks = self.cache.get(name) or self._chunks(name, self.shapes[name])
            for a, b, c in chunks:
                out += g[:, a:b].float() @ c
        return out


def sample_grads(model, prompt_ids: Sequence[Sequence[int]], response_ids: Sequence[Sequence[int]], *,
                 grad_params=None, sketch_dim: int | None = None, seed: int = 0, kind: str = "rademacher",
                 batch_size: int = 8, temperature: float = 1.0, method: str = "auto",
                 progress: Callable[[int, int], None] | None = None, cache_bytes: int = 1 << 30):
    """Score vectors of N samples: ([N, D] float32 array, info dict for :func:`write_sketches`).

    Args:
      model: a causal LM (``transformers.AutoModelForCausalLM`` or any module whose output has ``.logits``
        [B, T, V] and that takes ``attention_mask``), on its device; it is not modified.
      prompt_ids, response_ids: token ids of each sample's prompt (≥ 1 token, as the policy saw it: chat
        template and special tokens included) and of its sampled response (the ids that were generated,
        including the end-of-sequence token when the sample stopped on it: its probability is part of π(y|x)).
      grad_params: the parameter subset (:func:`select_params`).
      sketch_dim, seed, kind: the projection S (``rmtheory._sketch``); ``sketch_dim=None``: the exact gradient
        (D = the number of selected parameters, in ``named_parameters`` order).
      batch_size: samples per mini-batch (memory: batch_size × selected parameters floats).
      temperature: the sampling temperature τ (log-probabilities of softmax(logits/τ)).
      method: ``vmap`` (torch.func, one pass per mini-batch), ``loop`` (one gradient per sample) or ``auto``
        (vmap, falling back to loop when the model cannot be vmapped).
      progress: called as ``progress(done, total)`` after each mini-batch.
    """
    import torch

    n = len(prompt_ids)
    if len(response_ids) != n:
        raise GradsError(f"prompt_ids and response_ids differ in length ({n} and {len(response_ids)})")
    if n == 0:
        raise GradsError("no samples")
    for i in range(n):
        if len(prompt_ids[i]) < 1:
            raise GradsError(f"prompt_ids[{i}] is empty: the first response token needs a prompt token before it")
    npos = getattr(getattr(model, "config", None), "n_positions", None) or getattr(
        getattr(model, "config", None), "max_position_embeddings", None)
    longest = max(range(n), key=lambda i: len(prompt_ids[i]) + len(response_ids[i]))
    if npos and len(prompt_ids[longest]) + len(response_ids[longest]) > npos:
        raise GradsError(f"sample {longest}: {len(prompt_ids[longest]) + len(response_ids[longest])} tokens, more "
                         f"than the model's {npos} positions")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise GradsError(f"batch_size must be an integer >= 1; got {batch_size!r}")
    if not (isinstance(temperature, (int, float)) and 0 < temperature < float("inf")):
        raise GradsError(f"temperature must be a finite number > 0; got {temperature!r}")
    if method not in ("auto", "vmap", "loop"):
        raise GradsError(f"method must be auto, vmap or loop; got {method!r}")
    names = select_params(model, grad_params)
    shapes = {nm: p.numel() for nm, p in model.named_parameters() if nm in set(names)}
    d = sum(shapes.values())
    device = next(model.parameters()).device
    try:
        spec = check_spec(sketch_dim, seed, kind) if sketch_dim is not None else None
    except ValueError as e:
        raise GradsError(str(e).replace("dim must", "sketch_dim must", 1)) from None
    project = _Projector(spec, shapes, device, cache_bytes) if spec is not None else None
    out = np.empty((n, spec.dim if spec else d), np.float32)
    order = sorted(range(n), key=lambda i: len(prompt_ids[i]) + len(response_ids[i]))   # similar lengths together
    how = "vmap" if method == "auto" else method
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        ids, mask = _batch(prompt_ids, response_ids, idx, device)
        try:
            grads = _per_sample_grads(model, names, ids, mask, float(temperature), how)
        except RuntimeError:
            if method != "auto" or how == "loop":
                raise
            how = "loop"   # e.g. data-dependent control flow in the model's forward
            grads = _per_sample_grads(model, names, ids, mask, float(temperature), how)
        with torch.no_grad():
            g = project(grads) if project is not None else torch.cat([grads[nm] for nm in names], 1)
        out[idx] = g.float().cpu().numpy()
        if progress is not None:
            progress(min(start + batch_size, n), n)
    info = {"sketch_kind": kind if spec else "exact", "sketch_seed": int(seed), "param_dim": int(d),
            "grad_params": "all" if grad_params is None else (grad_params if isinstance(grad_params, str)
                                                              else ",".join(grad_params)),
            "temperature": float(temperature), "method": how, "params": names}
    return out, info


def write_sketches(path: str, prompt_ids: Sequence[str], sample_ids: Sequence[str], g, info: dict | None = None) -> str:
    """Write the sketch file of ``rmtheory evaluate --sketches`` atomically: ``prompt_id``, ``sample_id``
    (string arrays), ``g`` [N, D] (float32) and the scalar metadata of ``info`` (``sketch_kind``,
    ``sketch_seed``, ``param_dim``, ``grad_params``, ``temperature``)."""
    from .. import io as _io

    g = np.asarray(g, np.float32)
    if g.ndim != 2 or g.shape[0] != len(prompt_ids) or len(sample_ids) != len(prompt_ids):
        raise GradsError(f"write_sketches: {len(prompt_ids)} prompt ids, {len(sample_ids)} sample ids and g of "
                         f"shape {list(g.shape)} disagree")
    meta = {k: v for k, v in (info or {}).items() if k != "params" and np.ndim(v) == 0}
    return _io.save_npz(path, prompt_id=np.array([str(p) for p in prompt_ids]),
                        sample_id=np.array([str(s) for s in sample_ids]), g=g, **meta)


__all__ = ["KINDS", "GradsError", "sample_grads", "select_params", "write_sketches"]
