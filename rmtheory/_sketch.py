"""Seeded random projections of score vectors: ⟨Sg, Sh⟩ is an unbiased estimate of ⟨g, h⟩.

A sketch of dimension ``dim`` (D) maps a parameter-space vector g ∈ R^d to Sg ∈ R^D with S ∈ R^{D×d} whose
entries are independent, mean 0 and variance 1/D, so that E[SᵀS] = I_d and, for fixed g and h,

    E⟨Sg, Sh⟩ = ⟨g, h⟩,
    Var⟨Sg, Sh⟩ = (‖g‖²‖h‖² + ⟨g, h⟩²)/D                           (gaussian: S_rk ~ N(0, 1/D)),
    Var⟨Sg, Sh⟩ = (‖g‖²‖h‖² + ⟨g, h⟩² − 2 Σ_k g_k² h_k²)/D         (rademacher: S_rk = ±1/√D).

(Isserlis' theorem for the Gaussian; for ±1 entries E[z⁴] = 1 instead of 3. Derivation in
``docs/rate_estimator.md``.) :func:`sketch_variance` returns these predictions.

**The definition** (shared by the JAX side and the torch side, ``rmtheory.hf.grads``, so both give the same S):
a parameter vector is a sequence of named *blocks* (e.g. one per named parameter tensor, flattened in C order).
Block ``name`` is cut into chunks of ``CHUNK`` coordinates; chunk c holds the rows k ∈ [c·CHUNK, (c+1)·CHUNK)
of Sᵀ, drawn as one [n_c, D] array from ``numpy.random.default_rng(SeedSequence([seed, H(name), c]))`` with
H(name) the first 16 bytes of sha256(name) as an integer:

* ``gaussian``: ``rng.standard_normal((n_c, D)) / √D``;
* ``rademacher``: the first n_c·D bits of ``rng.bytes`` (``numpy.unpackbits``, big-endian within a byte), bit 0 →
  +1/√D and bit 1 → −1/√D;
* ``countsketch``: each coordinate k goes to one bucket h(k) with a sign s(k) (column k of S is s(k)·e_h(k)):
  ``h = rng.integers(0, D, n_c)`` then ``s = 1 − 2·rng.integers(0, 2, n_c)``. E[SᵀS] = I (SᵀS has 1 on its
  diagonal and s(k)s(l)·1[h(k) = h(l)] off it), Var⟨Sg, Sh⟩ is the ``rademacher`` formula, and S·g costs O(d)
  instead of O(d·D) (:func:`countsketch_hash`; the dense chunks below exist for tests and the torch side).

So S never has to exist as a whole: :func:`iter_chunks` yields it chunk by chunk, and a block's chunks do not
depend on the other blocks (a parameter subset keeps its coordinates' rows). The draws are those of numpy's
PCG64 stream; ``rademacher`` uses raw bits only, ``gaussian`` numpy's ``standard_normal`` (stable in practice,
though numpy only promises the bit stream).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from . import _checks

KINDS = ("gaussian", "rademacher", "countsketch")
CHUNK = 4096   # coordinates per generated chunk: part of the definition of S (not a memory knob)


class SketchSpec(NamedTuple):
    """The projection S ∈ R^{dim×d}: its dimension D, seed and kind (see the module docstring)."""

    dim: int
    seed: int = 0
    kind: str = "gaussian"


def check_spec(dim, seed, kind) -> SketchSpec:
    """Validated :class:`SketchSpec` (errors name the argument)."""
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool) or dim < 1:
        raise ValueError(f"dim must be an integer >= 1 (the sketch dimension D); got {dim!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0; got {seed!r}")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
    return SketchSpec(int(dim), int(seed), kind)


def _name_hash(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:16], "little")


def projection_chunk(spec: SketchSpec, name: str, chunk: int, n: int, dtype=np.float64) -> np.ndarray:
    """Rows [chunk·CHUNK, chunk·CHUNK + n) of Sᵀ for block ``name``: an [n, D] array (n ≤ CHUNK)."""
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, _name_hash(name), int(chunk)]))
    scale = 1.0 / math.sqrt(spec.dim)
    if spec.kind == "countsketch":
        bucket, sign = _countsketch_draw(rng, n, spec.dim)
        out = np.zeros((n, spec.dim), dtype)
        out[np.arange(n), bucket] = sign
        return out
    if spec.kind == "gaussian":
        out = rng.standard_normal((n, spec.dim), dtype=np.float64)
        out *= scale
        return out.astype(dtype, copy=False)
    count = n * spec.dim
    bits = np.unpackbits(np.frombuffer(rng.bytes((count + 7) // 8), np.uint8), count=count)
    dt = np.dtype(dtype)
    return ((1.0 - 2.0 * bits.astype(dt)) * dt.type(scale)).reshape(n, spec.dim)


def _countsketch_draw(rng, n: int, dim: int):
    bucket = rng.integers(0, dim, n)
    return bucket, 1.0 - 2.0 * rng.integers(0, 2, n)


def countsketch_hash(spec: SketchSpec, name: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(h [size] int64 buckets, s [size] ±1.0 signs) of block ``name`` for a ``countsketch`` spec: (S·g)_r =
    Σ_{k: h(k) = r} s(k) g_k, the same S as :func:`projection_chunk`'s dense rows (chunk by chunk, same draws)."""
    if spec.kind != "countsketch":
        raise ValueError(f"countsketch_hash needs kind 'countsketch'; got {spec.kind!r}")
    hs, ss = [], []
    for c, start in enumerate(range(0, size, CHUNK)):
        rng = np.random.default_rng(np.random.SeedSequence([spec.seed, _name_hash(name), c]))
        h, s = _countsketch_draw(rng, min(start + CHUNK, size) - start, spec.dim)
        hs.append(h)
        ss.append(s)
    return np.concatenate(hs), np.concatenate(ss)


def iter_chunks(spec: SketchSpec, name: str, size: int, dtype=np.float64) -> Iterator[tuple[int, int, np.ndarray]]:
    """(start, stop, Sᵀ[start:stop]) for block ``name`` of ``size`` coordinates, chunk after chunk."""
    for c, start in enumerate(range(0, size, CHUNK)):
        stop = min(start + CHUNK, size)
        yield start, stop, projection_chunk(spec, name, c, stop - start, dtype)


def _blocks(g, blocks):
    """[(name, start, stop)] over the last axis of g: one block named "g" by default."""
    d = np.shape(g)[-1]
    if blocks is None:
        return [("g", 0, d)]
    out, start = [], 0
    for name, size in blocks:
        if not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"blocks: size of block {name!r} must be an integer >= 1; got {size!r}")
        out.append((str(name), start, start + int(size)))
        start += int(size)
    if start != d:
        raise ValueError(f"blocks: sizes sum to {start}, but g has {d} coordinates on its last axis")
    names = [n for n, _, _ in out]
    if len(set(names)) != len(names):
        raise ValueError("blocks: block names must be distinct")
    return out


def sketch(g, dim: int, seed: int = 0, kind: str = "gaussian", blocks=None) -> np.ndarray:
    """S·g over the last axis of ``g`` ([..., d] → [..., D]), in float64, chunk by chunk (S is never formed).

    ``blocks``: optional [(name, size)] that splits the last axis into named blocks (sizes sum to d), the way
    ``rmtheory.hf.grads`` names parameter tensors; by default the whole axis is one block named ``"g"``.
    """
    spec = check_spec(dim, seed, kind)
    g = np.asarray(g, np.float64)
    _checks.ndim_at_least("g", g, 1)
    _checks.finite("g", g)
    out = np.zeros(g.shape[:-1] + (spec.dim,))
    for name, b0, b1 in _blocks(g, blocks):
        for start, stop, chunk in iter_chunks(spec, name, b1 - b0):
            out += g[..., b0 + start:b0 + stop] @ chunk
    return out


def projection_matrix(d: int, dim: int, seed: int = 0, kind: str = "gaussian", blocks=None) -> np.ndarray:
    """The whole S ∈ R^{D×d} (float64), for tests and small d: ``sketch(g) == g @ projection_matrix(...).T``."""
    spec = check_spec(dim, seed, kind)
    S = np.empty((d, spec.dim))
    for name, b0, b1 in _blocks(np.empty((0, d)), blocks):
        for start, stop, chunk in iter_chunks(spec, name, b1 - b0):
            S[b0 + start:b0 + stop] = chunk
    return S.T


def sketch_variance(g, h, dim: int, kind: str = "gaussian"):
    """Predicted Var⟨Sg, Sh⟩ over the draw of S (module docstring), over the last axis of g and h."""
    check_spec(dim, 0, kind)
    g, h = np.asarray(g, np.float64), np.asarray(h, np.float64)
    _checks.same_shape(g=g, h=h)
    v = np.sum(g * g, -1) * np.sum(h * h, -1) + np.sum(g * h, -1) ** 2
    if kind in ("rademacher", "countsketch"):
        v = v - 2.0 * np.sum(g * g * h * h, -1)
    return v / dim
