"""The one 64-bit switch.

The theory (exact gradient flow, certified event location, bounds with their constants) needs float64;
JAX computes in float32 unless ``jax_enable_x64`` is on, and that flag is global to the process. So
``import rmtheory`` leaves it alone (a user's other JAX code keeps its dtypes), and:

* :func:`enable_x64` is the one place that turns it on. The command line (``rmtheory …``, every
  subcommand), :func:`rmtheory.figures.run_all`, the scripts in ``experiments/`` and the test suite call it.
* The theory entry points (:func:`rmtheory.make_instance`, :func:`rmtheory.time_to_gamma`,
  :func:`rmtheory.rm_report`, :func:`rmtheory.evaluate.evaluate`, …) call :func:`require_x64`, which raises
  a RuntimeError naming the fix instead of computing silently in float32.

``with jax.enable_x64(True):`` (``jax.experimental.enable_x64`` in older JAX) also satisfies the check, for a
scoped switch. The LM pipeline (:mod:`rmtheory.lm`) states its model dtypes (float32/int32) itself; its
committed numbers were made with the switch on, as the ``rmtheory lm`` command runs it.
"""

from __future__ import annotations

import jax


def enable_x64() -> None:
    """Switch JAX to 64-bit floats and integers for the whole process (``jax_enable_x64 = True``).

    Call it once, before creating arrays for the theory functions; the ``rmtheory`` command line does.
    """
    jax.config.update("jax_enable_x64", True)


def x64_enabled() -> bool:
    """Whether JAX currently computes in 64 bits (the global flag or an enclosing ``jax.enable_x64`` context)."""
    return bool(jax.config.jax_enable_x64)


def require_x64(what: str) -> None:
    """Raise RuntimeError, naming the fix, if 64-bit mode is off (``what`` names the caller)."""
    if not x64_enabled():
        raise RuntimeError(
            f"{what} needs 64-bit floats, but JAX's x64 mode is off (it computes in float32 by default). "
            "Call rmtheory.enable_x64() once at the start of your program (the rmtheory command line does), "
            "or run inside `with jax.enable_x64(True):`.")
