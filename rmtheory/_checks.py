"""Input validation at the public API boundary.

Every check runs only on concrete values: inside ``jit``/``vmap`` (tracers) it is skipped, so
validation costs nothing on hot paths and never breaks tracing. Errors name the argument and the
allowed range.
"""

from __future__ import annotations

import jax
import numpy as np


def is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _np(x):
    return np.asarray(x, dtype=np.float64)


def finite(name: str, x):
    """Raise ``ValueError`` if ``x`` holds NaN or ±inf."""
    if not is_concrete(x):
        return
    a = _np(x)
    if not np.all(np.isfinite(a)):
        idx = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
        raise ValueError(f"{name} must be finite; found {a[idx]} at index {idx}")


def in_range(name: str, x, lo: float, hi: float):
    """Raise unless every entry of ``x`` is finite and lies in [lo, hi]."""
    finite(name, x)
    if not is_concrete(x):
        return
    a = _np(x)
    bad = (a < lo) | (a > hi)
    if np.any(bad):
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} must lie in [{lo:g}, {hi:g}] (the theory's constants assume it); "
            f"found {a[idx]:.6g} at index {idx}"
        )


def positive(name: str, x):
    """Raise unless every entry of ``x`` is finite and > 0."""
    finite(name, x)
    if not is_concrete(x):
        return
    a = _np(x)
    if np.any(a <= 0):
        raise ValueError(f"{name} must be > 0; got {a.min():.6g}")


def nonnegative(name: str, x):
    finite(name, x)
    if not is_concrete(x):
        return
    a = _np(x)
    if np.any(a < 0):
        raise ValueError(f"{name} must be >= 0; got {a.min():.6g}")


def same_shape(**arrays):
    """Raise if the named arrays do not all have the same shape."""
    shapes = {k: tuple(np.shape(v)) for k, v in arrays.items()}
    if len(set(shapes.values())) > 1:
        desc = ", ".join(f"{k}{list(s)}" for k, s in shapes.items())
        raise ValueError(f"shapes must agree: {desc}")


def ndim_at_least(name: str, x, n: int):
    if np.ndim(x) < n:
        raise ValueError(f"{name} must have at least {n} dimension(s); got shape {list(np.shape(x))}")


def distribution(name: str, p, axis: int = -1, atol: float = 1e-8):
    """Raise unless ``p`` is non-negative and sums to 1 along ``axis``."""
    finite(name, p)
    if not is_concrete(p):
        return
    a = _np(p)
    if np.any(a < 0):
        raise ValueError(f"{name} is not a distribution: it has a negative entry {a.min():.6g}")
    s = a.sum(axis=axis)
    if np.any(np.abs(s - 1.0) > atol):
        worst = float(np.max(np.abs(s - 1.0)))
        raise ValueError(f"{name} is not a distribution: sums along axis {axis} differ from 1 by {worst:.3g}")
