"""The teaching-rate columns of ``rmtheory evaluate``: per-sample gradient sketches → rate_G and rate_self.

The sketch file (``--sketches FILE.npz``, or a mapping with the same keys) holds

* ``prompt_id``, ``sample_id``: [N] string (or integer) arrays, ids as in the rewards table (same id rule);
* ``g``: [N, D] float array, row n = S·∇_θ log π(y_n|x_n) for a sketch S with E[SᵀS] = I (the same S for every
  row; D = the full parameter count for exact gradients), or any score vectors of the policy that sampled;
* optionally metadata, reported in ``meta["sketches"]``: ``sketch_kind``, ``sketch_seed``, ``param_dim``,
  ``grad_params`` (scalars or strings, as written by ``rmtheory.hf.grads``).

Checked strictly: the (prompt_id, sample_id) pairs of the file are distinct and are exactly those of the
rewards table; ``g`` is 2-D with one finite row per id; every prompt has K ≥ 2 sketched samples. Any
violation is an :class:`InputError` naming the file. Per model, the rate uses the rows its variance uses.

Per prompt, rate_G = ⟨E[r̃_G g], E[r̃ g]⟩ and rate_self = ‖E[r̃ g]‖² are estimated without bias by
:func:`rmtheory._rate_estimator.rate_from_gram` (a U-statistic over sample pairs i ≠ j with leave-two-out
centring; ``docs/rate_estimator.md``) on the *normalised* scores r̃ = (r − μ)/σ of each source (the same ones
as Var; r̃_G with the ground truth's own μ, σ), and averaged over prompts like Var.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass

import numpy as np

from .._rate_estimator import rate_from_gram
from .._rm_eval import normalise, pooled_normalisation_stats
from ._input import InputError, normalise_id
from ._prepare import examples

RATE_MEASURES = ("rate_g", "rate_self")
RATE_LABELS = {"rate_g": "rate_G", "rate_self": "rate_self"}
RATE_NOTE = ("rate_G, rate_self: the first-order speed of the gradient flow at the sampling policy, per prompt "
             "<E[r_G g], E[r g]> and |E[r g]|^2 with g = grad log pi(y|x) (r = r^KL, which is r at pi = pi_ref or "
             "with lambda = 0), averaged over prompts; unbiased U-statistic estimates over sample pairs from the "
             "gradient sketches, on the same normalised scores as Var. Higher is a faster teacher at the start "
             "of training.")
NO_RATE_NOTE = ("rate_G, rate_self: not reported; they need per-sample gradient sketches of the policy's samples "
                "(--sketches FILE.npz, written by `rmtheory score --teaching-rate`; format in docs/evaluate.md).")
META_KEYS = ("sketch_kind", "sketch_seed", "param_dim", "grad_params")
_GRAM_BUDGET = 1 << 25   # float64 entries of sketches gathered at a time for the Gram matrices


@dataclass
class Sketches:
    source: str
    row_of: np.ndarray      # [rows of the rewards table] → row of g
    g: np.ndarray           # [N, D]
    meta: dict


def _fail(src, msg):
    raise InputError(f"{src}: {msg}")


def _id_array(src, z, key):
    a = z[key]
    if a.ndim != 1:
        _fail(src, f"'{key}' must be a 1-D array of ids; got shape {list(a.shape)}")
    if a.dtype.kind not in "USiu":
        _fail(src, f"'{key}' must hold strings or integers (e.g. np.array(ids, dtype=str)); got dtype {a.dtype}")
    out = []
    for k, v in enumerate(a.tolist()):
        s = normalise_id(v.decode("utf-8", "replace") if isinstance(v, bytes) else v)
        if s is None:
            _fail(src, f"'{key}'[{k}]: invalid or missing id {v!r}")
        out.append(s)
    return out


def load_sketches(sketches, table, rows) -> Sketches:
    """Read and check the sketch file against the rewards table (see the module docstring)."""
    if isinstance(sketches, (str, os.PathLike)):
        src = os.fspath(sketches)
        try:
            f = np.load(src, allow_pickle=False)
            if not isinstance(f, np.lib.npyio.NpzFile):
                _fail(src, "not an .npz archive (write it with numpy.savez: prompt_id, sample_id, g)")
            with f:
                z = {k: f[k] for k in f.files}
        except FileNotFoundError:
            raise
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
            if isinstance(e, InputError):
                raise
            _fail(src, f"not a readable .npz of arrays ({' '.join(str(e).split())[:200]})")
    else:
        src = "<sketches>"
        try:
            z = {k: np.asarray(v) for k, v in dict(sketches).items()}
        except (TypeError, ValueError) as e:
            _fail(src, f"expected a mapping of arrays ({e})")
    missing = [k for k in ("prompt_id", "sample_id", "g") if k not in z]
    if missing:
        _fail(src, f"missing array(s) {', '.join(missing)} (keys: {', '.join(z) or 'none'}; "
                   "expected prompt_id, sample_id, g)")
    g = z["g"]
    if g.ndim != 2 or g.shape[1] < 1:
        _fail(src, f"'g' must have shape [samples, D >= 1]; got {list(g.shape)}")
    if g.dtype.kind not in "fiu":
        _fail(src, f"'g' must be a float array; got dtype {g.dtype}")
    pid, sid = _id_array(src, z, "prompt_id"), _id_array(src, z, "sample_id")
    if not len(pid) == len(sid) == g.shape[0]:
        _fail(src, f"lengths disagree: prompt_id {len(pid)}, sample_id {len(sid)}, g {g.shape[0]} rows")
    g = np.asarray(g, np.float64)
    bad = ~np.isfinite(g).all(1)
    if bad.any():
        n = int(np.flatnonzero(bad)[0])
        _fail(src, f"'g' has NaN/inf in {int(bad.sum())} row(s), first: prompt {pid[n]!r}, sample {sid[n]!r}")
    index = {}
    for n, key in enumerate(zip(pid, sid)):
        if index.setdefault(key, n) != n:
            _fail(src, f"duplicated (prompt_id, sample_id) = ({key[0]!r}, {key[1]!r}) (rows {index[key]} and {n})")
    tp, ts = table.ids["prompt_id"], table.ids["sample_id"]
    row_of = np.fromiter((index.get(k, -1) for k in zip(tp, ts)), np.int64, table.n)
    if (row_of < 0).any():
        lost = np.flatnonzero(row_of < 0)
        _fail(src, f"no sketch for {lost.size} scored row(s) of {table.source} "
                   f"(first: prompt {tp[lost[0]]!r}, sample {ts[lost[0]]!r}); every scored sample needs one")
    used = np.zeros(g.shape[0], bool)
    used[row_of] = True
    if not used.all():
        extra = np.flatnonzero(~used)
        _fail(src, f"{extra.size} sketch(es) match no row of {table.source} "
                   f"(first: prompt {pid[extra[0]]!r}, sample {sid[extra[0]]!r}); the ids must be the same")
    counts = np.bincount(rows.pcode[np.unique(row_of, return_index=True)[1]], minlength=len(rows.prompt_names))
    single = np.flatnonzero(counts == 1)
    if single.size:
        _fail(src, f"{single.size} prompt(s) with K = 1 sketched sample "
                   f"({examples(rows.prompt_names[i] for i in single)}); "
                   "the rate needs K >= 2 samples per prompt (pairs i != j)")
    meta = {"source": src, "n": int(g.shape[0]), "dim": int(g.shape[1])}
    for k in META_KEYS:
        if k in z and z[k].ndim == 0:
            meta[k] = z[k].item()
    return Sketches(src, row_of, g, meta)


def ground_truth_stats(table, gt, rows, grouping_cls, scheme):
    """(μ, σ) of the ground truth over its own usable rows: those of the ground-truth row of the report."""
    if gt is None:
        return None
    grouping = grouping_cls(np.flatnonzero(rows.keep & rows.gt_present), rows.pcode, len(rows.prompt_names))
    return pooled_normalisation_stats([table.values[gt][idx] for _, idx in grouping.groups], scheme)


def _grams(sk: Sketches, idx):
    """[P_K, K, K] Gram matrices of the sketches of the rows idx [P_K, K], a few prompts at a time."""
    p, k = idx.shape
    step = max(1, _GRAM_BUDGET // max(1, k * sk.g.shape[1]))
    out = np.empty((p, k, k))
    for s in range(0, p, step):
        x = sk.g[sk.row_of[idx[s:s + step]]]
        out[s:s + step] = x @ x.transpose(0, 2, 1)
    return out


def model_rates(vals, stats, gt_vals, gt_stats, grouping, sk: Sketches, cache: dict):
    """Per-prompt (rate_g, rate_self) of one source, in the order of ``grouping.groups`` (as var_p). The Gram
    matrices depend only on the rows, so models with the same rows share them (``cache``)."""
    rg, rs = [], []
    for _, idx in grouping.groups:
        key = idx.tobytes()
        G = cache.get(key)
        if G is None:
            G = cache[key] = _grams(sk, idx)
        b = normalise(vals[idx], stats)
        a = normalise(gt_vals[idx], gt_stats) if gt_vals is not None else None
        r_g, r_s, _, _ = rate_from_gram(a, b, G)
        rg.append(np.asarray(r_g))
        rs.append(np.asarray(r_s))
    return np.concatenate(rg), np.concatenate(rs)
