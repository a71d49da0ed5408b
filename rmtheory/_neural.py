"""General autoregressive policies with a non-trivial f_θ for Theorem 4 / Proposition 2
(docs/theory.md: "Setting", "Jacobian quantities").

A *policy* here is a frozen (hashable) object with

* ``init(key, scale)``     → parameters (a pytree);
* ``prefix_logits(params)`` → next-token logits f_θ(x, y_{<l}) for every prompt x and every prefix y_{<l}
  (l = 0 … L−1), shape [|X|, P, |V|] with the prefix order of :func:`rmtheory.prefix_table`;
* ``log_probs(params)``    → ln π_θ(y|x) over Y = V^L, shape [|X|, |V|^L] (Eq. 2, enumerating prefixes).

Two policies are provided: :class:`TabularAR` (one free logit vector per prefix; J = 1) and :class:`MLP`
(an MLP over prompt and prefix embeddings; J computed numerically by :func:`jacobian_norm`).

:func:`time_to_gamma` and :func:`trajectory_jacobian_norm` run the exact gradient flow (Eq. 4, autodiff
gradients, π_ref = initial policy) for a *batch* of parameter vectors of one policy in one compiled call.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ._autoregressive import num_prefixes, prefix_table
from . import _checks, _sharding
from ._flow import _parametric_first_hit, _parametric_rhs, _parametric_value, _parametric_weighted_value
from ._precision import require_x64
from ._solver import HitResult, first_hitting_times, integrate

Array = jax.Array


def _prefix_structure(vocab: int, length: int):
    """Per prefix p (in prefix_table order): its length l_p and its tokens (padded) [P, L]."""
    n_p = num_prefixes(vocab, length)
    lens = np.zeros(n_p, np.int64)
    toks = np.zeros((n_p, max(length, 1)), np.int64)
    p = 0
    for ell in range(length):
        for code in range(vocab**ell):
            lens[p] = ell
            for i in range(ell):
                toks[p, i] = (code // vocab ** (ell - 1 - i)) % vocab
            p += 1
    # consistency with prefix_table's indexing
    tokens, index = prefix_table(vocab, length)
    for y in range(min(vocab**length, 64)):
        for ell in range(length):
            assert lens[index[y, ell]] == ell and np.all(toks[index[y, ell], :ell] == tokens[y, :ell])
    return lens, toks


@functools.lru_cache(maxsize=None)
def _selection_matrices(vocab: int, length: int):
    """One-hot encodings used as matmuls (cheaper to compile than gathers):
    seq [P·|V|, |V|^L]: seq[(p, v), y] = 1 iff output y emits token v after prefix p (so
    ln π(y|x) = log_softmax(f)(x).reshape(P·|V|) @ seq); tok [P, max(L−1,1)·|V|]: the prefix's tokens by
    position; pos [P, L]: the prefix length."""
    tokens, index = prefix_table(vocab, length)
    n_p = num_prefixes(vocab, length)
    seq = np.zeros((n_p * vocab, vocab**length))
    for y in range(vocab**length):
        for ell in range(length):
            seq[index[y, ell] * vocab + tokens[y, ell], y] = 1.0
    lens, toks = _prefix_structure(vocab, length)
    width = max(length - 1, 1)
    tok = np.zeros((n_p, width * vocab))
    for p_ in range(n_p):
        for i in range(lens[p_]):
            tok[p_, i * vocab + toks[p_, i]] = 1.0
    pos = np.eye(length)[lens]
    return seq, tok, pos


def seq_log_probs(prefix_logits, vocab: int, length: int):
    """ln π_θ(y|x) over Y = V^L from prefix logits [..., P, |V|] (Eq. 2), as a matmul; equals
    :func:`rmtheory.sequence_log_probs`."""
    seq, _, _ = _selection_matrices(vocab, length)
    logp = jax.nn.log_softmax(prefix_logits, axis=-1)
    return logp.reshape(logp.shape[:-2] + (-1,)) @ seq


@dataclasses.dataclass(frozen=True)
class TabularAR:
    """Per-prefix tabular autoregressive policy: θ = f_θ(x, y_{<l}) itself, shape [|X|, P, |V|].
    ∂f/∂θ is a coordinate selection, so J = 1 (docs/theory.md, "Setting")."""

    n_prompts: int
    vocab: int
    length: int

    @property
    def n_outputs(self) -> int:
        return self.vocab**self.length

    def init(self, key, scale: float = 1.0):
        return scale * jax.random.normal(key, (self.n_prompts, num_prefixes(self.vocab, self.length), self.vocab),
                                         jnp.float64)

    def prefix_logits(self, params):
        return params

    def log_probs(self, params):
        return seq_log_probs(self.prefix_logits(params), self.vocab, self.length)


@dataclasses.dataclass(frozen=True)
class MLP:
    """f_θ(x, y_{<l}) = W₂ tanh(W₁ [e_x ; Σ_{i<l} E_i[y_i] + P_l] + b₁) + b₂: a one-hidden-layer MLP over a
    prompt embedding e_x and a prefix embedding (position-specific token embeddings E_i plus a length
    embedding P_l), producing next-token logits. Parameters are shared across prompts and prefixes, so
    the Jacobian ∂f/∂θ is non-trivial (J ≠ 1)."""

    n_prompts: int
    vocab: int
    length: int
    embed: int = 4
    hidden: int = 12

    @property
    def n_outputs(self) -> int:
        return self.vocab**self.length

    def init(self, key, scale: float = 1.0):
        ks = jax.random.split(key, 6)
        e, h, v = self.embed, self.hidden, self.vocab

        def n(k, s):
            return jax.random.normal(k, s, jnp.float64)

        return {
            "prompt": n(ks[0], (self.n_prompts, e)),
            "token": n(ks[1], (max(self.length - 1, 1), v, e)),
            "pos": n(ks[2], (self.length, e)),
            "w1": n(ks[3], (h, 2 * e)) / np.sqrt(2 * e),
            "b1": jnp.zeros(h),
            "w2": scale * n(ks[4], (v, h)) / np.sqrt(h),
            "b2": scale * 0.1 * n(ks[5], (v,)),
        }

    def prefix_logits(self, params):
        _, tok, pos = _selection_matrices(self.vocab, self.length)
        n_p = tok.shape[0]
        prefix = tok @ params["token"].reshape(-1, self.embed) + pos @ params["pos"]  # [P, E]
        feats = jnp.concatenate([jnp.broadcast_to(params["prompt"][:, None], (self.n_prompts, n_p, self.embed)),
                                 jnp.broadcast_to(prefix[None], (self.n_prompts, n_p, self.embed))], -1)
        hid = jnp.tanh(feats @ params["w1"].T + params["b1"])
        return hid @ params["w2"].T + params["b2"]

    def log_probs(self, params):
        return seq_log_probs(self.prefix_logits(params), self.vocab, self.length)


def jacobian_norms(policy, params) -> Array:
    """‖∂f_θ(x, y_{<l})/∂θ‖₂ (spectral norm, θ flattened) for every prompt and prefix, shape [|X|, P]."""
    flat, unravel = ravel_pytree(params)
    jac = jax.jacfwd(lambda f: policy.prefix_logits(unravel(f)))(flat)  # [X, P, V, D]
    gram = jnp.einsum("xpvd,xpwd->xpvw", jac, jac)
    return jnp.sqrt(jnp.maximum(jnp.linalg.eigvalsh(gram)[..., -1], 0.0))


def jacobian_norm(policy, params, prompt: int | None = None) -> Array:
    """J at θ: the largest spectral norm of ∂f_θ(x, y_{<l})/∂θ over every prefix of every prompt (J_x for
    one ``prompt`` when given). Every prefix y_{<l}, l < L, is a prefix of some y ∈ Y = V^L, so this is the
    sup of docs/theory.md ("Jacobian quantities")."""
    norms = jacobian_norms(policy, params)
    return jnp.max(norms if prompt is None else norms[prompt])


def per_prompt_gradient(policy, params, reward, ref_log_probs, lam, prompt: int):
    """∇_θ φ_RLHF(θ; x) for one prompt x (no averaging over S), flattened."""
    flat, unravel = ravel_pytree(params)

    def phi(f):
        logp = policy.log_probs(unravel(f))[prompt]
        pi = jnp.exp(logp)
        return jnp.sum(pi * reward[prompt]) - lam * jnp.sum(pi * (logp - ref_log_probs[prompt]))

    return jax.grad(phi)(flat)


# --------------------------------------------------------------------------------------------------
# Batched exact gradient flow
# --------------------------------------------------------------------------------------------------

def _flat_batch(params_batch):
    one = jax.tree_util.tree_map(lambda a: a[0], params_batch)
    _, unravel = ravel_pytree(one)
    flats = jax.vmap(lambda p: ravel_pytree(p)[0])(params_batch)
    return flats, unravel


@functools.lru_cache(maxsize=None)
def _hit_fn(policy, unravel_key, rtol, atol, max_steps):
    unravel = _UNRAVEL[unravel_key]

    def one(flat0, reward, measure, lam, gamma, prompt, train_mask, t_max):
        ref = jax.lax.stop_gradient(policy.log_probs(unravel(flat0)))
        target = _parametric_value(policy.log_probs, unravel, measure, prompt)(flat0) + gamma
        return _parametric_first_hit(policy.log_probs, unravel, flat0, reward, measure, lam, ref, train_mask, target,
                                     prompt, rtol, atol, t_max, max_steps)

    return jax.jit(jax.vmap(one, in_axes=(0, 0, 0, 0, 0, 0, None, None)))


_UNRAVEL: dict = {}


def _register_unravel(policy, params_batch):
    flats, unravel = _flat_batch(params_batch)
    key = (policy, flats.shape[-1])
    _UNRAVEL.setdefault(key, unravel)
    return flats, key


@functools.lru_cache(maxsize=None)
def _weighted_hit_fn(policy, unravel_key, rtol, atol, max_steps, lanes):
    """t_γ of the prompt-weighted value (``time_to_gamma(prompt_weights=...)``): jit(vmap(first_hitting_time))
    when ``lanes`` is None, else the lane-refill scheduler :func:`rmtheory._solver.first_hitting_times`."""
    unravel = _UNRAVEL[unravel_key]
    log_probs = policy.log_probs

    def start(flat0, measure, gamma, weights):  # π_ref, the target V̄_w(θ0) + γ and its certified bound
        value, top = _parametric_weighted_value(log_probs, unravel, measure, weights)
        return jax.lax.stop_gradient(log_probs(unravel(flat0))), value(flat0) + gamma, top

    if lanes is None:
        def one(flat0, reward, measure, lam, gamma, weights, train_mask, t_max):
            ref, target, _ = start(flat0, measure, gamma, weights)
            return _parametric_first_hit(log_probs, unravel, flat0, reward, measure, lam, ref, train_mask, target,
                                         None, rtol, atol, t_max, max_steps, weights=weights)

        return jax.jit(jax.vmap(one, in_axes=(0, 0, 0, 0, 0, 0, None, None)))

    def run(flat0, reward, measure, lam, gamma, weights, train_mask, t_max):
        ref, target, top = jax.vmap(start)(flat0, measure, gamma, weights)
        params = dict(reward=reward, measure=measure, lam=lam, weights=weights, ref=ref, target=target, top=top)

        def make(p):
            grad = _parametric_rhs(log_probs, unravel, p["reward"], p["lam"], p["ref"], train_mask)
            value, _ = _parametric_weighted_value(log_probs, unravel, p["measure"], p["weights"])
            unreachable = p["target"] >= p["top"]
            return (lambda y: (grad(y), None)), (lambda y, _: value(y) - p["target"]), (lambda y, _: unreachable)

        return first_hitting_times(make, params, flat0, lanes=lanes, rtol=rtol, atol=atol, t_max=t_max,
                                   max_steps=max_steps)

    return jax.jit(run)


def time_to_gamma(policy, params_batch, reward, gamma, *, prompt=None, measure=None, lam=0.0, train_mask=None,
                  prompt_weights=None, lanes: int | None = None, rtol: float = 1e-9, atol: float = 1e-9,
                  t_max: float = 1e12, max_steps: int = 20_000) -> HitResult:
    """t_γ at ``prompt`` (any prompt, even outside S), or of a weighted average over prompts, for a batch of B
    initial parameters of ``policy``.

    Args:
      params_batch: parameters with a leading batch axis B.
      reward: r_RM [B, |X|, |Y|] in [−1, 1]; ``measure`` (the timed reward r) the same (default r_RM).
      gamma, lam, prompt: scalars or [B] (``prompt`` indexes X; it may lie outside S).
      train_mask: [|X|] marking the prompts in S (default all).
      prompt_weights: in place of ``prompt``, weights w [|X|] or [B, |X|] (≥ 0, positive sum): the timed value
        is the average V̄_w(θ) = Σ_x w_x E_{π_θ(·|x)}[r(x, ·)] / Σ_x w_x, so t_γ = inf{t : V̄_w(θ(t)) ≥
        V̄_w(θ(0)) + γ} (w = the indicator of a prompt set A: the average value over A, inside S or not); a
        target ≥ Σ_x w_x max_y r(x, y) / Σ_x w_x is unreachable at once.
      lanes: with ``prompt_weights``, None runs the batch in lockstep (``vmap``, the cost of its slowest member
        for every member); an integer schedules it on that many lanes refilled from a queue
        (:func:`rmtheory._solver.first_hitting_times`, the same algorithm, dealt over the CPU's cores), which
        costs ≈ the sum of the step counts when they differ widely.
    Returns a :class:`HitResult` with fields of shape [B].
    """
    require_x64("rmtheory.neural_time_to_gamma")
    if (prompt is None) == (prompt_weights is None):
        raise ValueError("give exactly one of prompt and prompt_weights")
    if lanes is not None and (prompt_weights is None or int(lanes) < 1):
        raise ValueError("lanes (>= 1) is an option of prompt_weights")
    reward = jnp.asarray(reward, jnp.float64)
    measure = reward if measure is None else jnp.asarray(measure, jnp.float64)
    b = reward.shape[0]
    flats, key = _register_unravel(policy, params_batch)
    mask = jnp.ones(reward.shape[1]) if train_mask is None else jnp.asarray(train_mask, jnp.float64)
    lam = jnp.broadcast_to(jnp.asarray(lam, jnp.float64), (b,))
    gamma = jnp.broadcast_to(jnp.asarray(gamma, jnp.float64), (b,))
    t_max = jnp.asarray(t_max, jnp.float64)
    if prompt_weights is not None:
        _checks.nonnegative("prompt_weights", prompt_weights)
        w = jnp.broadcast_to(jnp.asarray(prompt_weights, jnp.float64), reward.shape[:2])
        if _checks.is_concrete(w) and np.any(np.asarray(w).sum(-1) <= 0):
            raise ValueError("prompt_weights must have a positive sum")
        fn = _weighted_hit_fn(policy, key, float(rtol), float(atol), int(max_steps),
                              None if lanes is None else int(lanes))
        columns = dict(flat0=flats, reward=reward, measure=measure, lam=lam, gamma=gamma, weights=w)
        shared = dict(train_mask=mask, t_max=t_max)
        if lanes is None:
            return fn(*columns.values(), *shared.values())
        blocks = _sharding.core_blocks(b, int(lanes)) if jax.default_backend() == "cpu" else 1
        return HitResult(*_sharding.run_on_cores(fn, columns, shared, blocks=blocks))
    prompt = jnp.broadcast_to(jnp.asarray(prompt, jnp.int32), (b,))
    fn = _hit_fn(policy, key, float(rtol), float(atol), int(max_steps))
    return fn(flats, reward, measure, lam, gamma, prompt, mask, t_max)


@functools.lru_cache(maxsize=None)
def _traj_fn(policy, unravel_key, n_grid, rtol, atol):
    unravel = _UNRAVEL[unravel_key]

    def one(flat0, reward, lam, train_mask, t_end):
        ref = jax.lax.stop_gradient(policy.log_probs(unravel(flat0)))
        grad = _parametric_rhs(policy.log_probs, unravel, reward, lam, ref, train_mask)
        dt = t_end / n_grid

        def step(f, _):
            nxt = integrate(grad, f, dt, rtol=rtol, atol=atol)
            return nxt, jacobian_norm(policy, unravel(nxt))

        _, js = jax.lax.scan(step, flat0, None, length=n_grid)
        return jnp.maximum(jacobian_norm(policy, unravel(flat0)), jnp.max(js))

    return jax.jit(jax.vmap(one, in_axes=(0, 0, 0, None, 0)))


def trajectory_jacobian_norm(policy, params_batch, reward, t_end, *, lam=0.0, train_mask=None, n_grid: int = 32,
                             rtol: float = 1e-9, atol: float = 1e-9) -> Array:
    """J_T with T = ``t_end`` [B]: the largest ‖∂f_θ(t)(x, y_{<l})/∂θ‖₂ over all prompts, prefixes and the
    uniform time grid {k T / n_grid : k = 0 … n_grid} along the gradient flow (docs/theory.md,
    "Jacobian quantities").

    A grid maximum slightly *under*-estimates the supremum over [0, T] (so a bound computed from it is
    slightly inflated); compare with a tolerance. ``t_end`` must be finite.
    """
    reward = jnp.asarray(reward, jnp.float64)
    b = reward.shape[0]
    t_end = np.broadcast_to(np.asarray(t_end, np.float64), (b,))
    if not np.all(np.isfinite(t_end)) or np.any(t_end < 0):
        raise ValueError("t_end must be finite and >= 0")
    flats, key = _register_unravel(policy, params_batch)
    mask = jnp.ones(reward.shape[1]) if train_mask is None else jnp.asarray(train_mask, jnp.float64)
    lam = jnp.broadcast_to(jnp.asarray(lam, jnp.float64), (b,))
    fn = _traj_fn(policy, key, int(n_grid), float(rtol), float(atol))
    return fn(flats, reward, lam, mask, jnp.asarray(t_end))


def init_batch(policy, key, n: int, scale: float = 1.0):
    """``n`` independent initial parameter sets stacked on a leading axis."""
    return jax.vmap(lambda k: policy.init(k, scale))(jax.random.split(key, n))
