"""The RL epoch loop shared by the pipeline, the grid and the paradox sweep: checkpoint after every epoch,
resume from the last checkpoint, progress with an ETA, and Ctrl-C handled at epoch boundaries.

Every random number of an RL run is a function of its seed and the global rollout index (rloo.py), so a
run resumed from an epoch checkpoint gives the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import glob
import os
import time

import numpy as np


class Interrupted:
    """A SIGINT remembered until the next stage or RL-epoch boundary.

    Python turns SIGINT into a KeyboardInterrupt wherever the main thread is, and a KeyboardInterrupt raised
    inside a callback that swallows exceptions (JAX's GC callback does: "Exception ignored in
    _xla_gc_callback") is lost, so the run would go on. :func:`catching_sigint` records the signal here too,
    and :func:`check` raises at the next boundary; Python's report of the swallowed KeyboardInterrupt ("Exception
    ignored in ... Traceback ...") is kept off the terminal, so Ctrl-C still ends in one line."""

    flag = False

    @classmethod
    def check(cls):
        if cls.flag:
            raise KeyboardInterrupt


class catching_sigint:
    """Context manager (main thread only): SIGINT raises KeyboardInterrupt and sets :class:`Interrupted`; a
    KeyboardInterrupt that a callback swallowed after such a SIGINT is not reported (``sys.unraisablehook``),
    every other unraisable exception is, by the hook that was there before."""

    def __enter__(self):
        import signal
        import sys
        import threading

        Interrupted.flag = False
        self.old = self.old_hook = None
        if threading.current_thread() is threading.main_thread():
            def handler(signum, frame):
                Interrupted.flag = True
                raise KeyboardInterrupt

            def hook(unraisable):
                if not (Interrupted.flag and issubclass(unraisable.exc_type, KeyboardInterrupt)):
                    self.old_hook(unraisable)

            self.old = signal.signal(signal.SIGINT, handler)
            self.old_hook, sys.unraisablehook = sys.unraisablehook, hook
        return self

    def __exit__(self, *exc):
        import signal
        import sys

        if self.old is not None:
            signal.signal(signal.SIGINT, self.old)
            sys.unraisablehook = self.old_hook
        Interrupted.flag = False
        return False


def tolist(metrics: dict) -> dict:
    return {k: np.asarray(v).tolist() for k, v in metrics.items()}


def train_epochs(run, sub: str, n_epochs: int, state, update, evaluate, log=print, describe=None,
                 stop_after_epoch: int | None = None, prepare=None):
    """Run (or resume) ``n_epochs`` RL epochs with a checkpoint and an evaluation after each.

    Args:
      run: the :class:`RunDir`; artifacts go to ``sub/progress.json`` and ``sub/state_e{epoch}.eqx``.
      state: (policies, opt_states) at epoch 0 (also the structure for loading a checkpoint).
      update: ``update(policies, opt_states, epoch_index) -> (policies, opt_states, train metrics)``.
      evaluate: ``evaluate(policies) -> {eval set: {metric: [R]}}``.
      describe: optional ``describe(progress) -> str`` appended to the per-epoch log line.
      stop_after_epoch: (testing) return None after saving that epoch, like an interruption.
      prepare: optional function applied to the state after loading (e.g. sharding over devices).
    Returns the progress dict {"epoch", "eval": [per epoch {set: metrics}], "train": [per epoch metrics]}.
    """
    os.makedirs(run.path(sub), exist_ok=True)
    prog_name = os.path.join(sub, "progress.json")
    if run.exists(prog_name):
        prog = run.load_json(prog_name)
        e0 = prog["epoch"]
        state = run.load_tree(os.path.join(sub, f"state_e{e0}.eqx"), state)
        log(f"  resuming {sub} from epoch {e0}")
    if prepare is not None:
        state = prepare(state)
    if not run.exists(prog_name):
        t = time.time()
        m0 = evaluate(state[0])
        prog = {"epoch": 0, "eval": [{s: tolist(v) for s, v in m0.items()}], "train": []}
        log(f"  epoch 0 evaluated ({time.time() - t:.1f}s)")
        e0 = 0
    times = []  # the epochs run by this call; the first one includes compiling the update
    for e in range(e0 + 1, n_epochs + 1):
        t = time.time()
        pol, st, tm = update(state[0], state[1], e - 1)
        state = (pol, st)
        em = evaluate(pol)
        prog["train"].append(tolist(tm))
        prog["eval"].append({s: tolist(v) for s, v in em.items()})
        prog["epoch"] = e
        keep = run.path(sub, f"state_e{e}.eqx")
        run.save_tree(os.path.join(sub, f"state_e{e}.eqx"), state)
        run.save_json(prog_name, prog)
        for old in glob.glob(run.path(sub, "state_e*.eqx")):
            if old != keep:
                os.remove(old)
        times.append(time.time() - t)
        extra = describe(prog) if describe is not None else ""
        log(f"  {sub} epoch {e}/{n_epochs} ({times[-1]:.1f}s, {eta(times, n_epochs - e)}) {extra}")
        if stop_after_epoch is not None and e >= stop_after_epoch:
            return None
        Interrupted.check()
    return prog


def eta(times: list, remaining: int) -> str:
    """The time left for ``remaining`` epochs, from the durations ``times`` of the epochs run so far without the
    first (which includes compiling the update); after the first epoch alone there is no estimate yet."""
    if remaining == 0:
        return "ETA 0s"
    if len(times) < 2:
        return "ETA after the next epoch (this one included compilation)"
    return f"ETA {sum(times[1:]) / len(times[1:]) * remaining:.0f}s"


def run_stages(stages: dict, markers: dict, run, log=print, until: str | None = None):
    """Run each stage thunk of ``stages`` (name → function) in order, with progress and timings, up to and
    including ``until``; a stage whose marker file (``markers[name]``) exists in ``run`` is skipped, one
    without a marker always runs. Returns the last run stage's result."""
    t0 = time.time()
    out = None
    for i, (name, fn) in enumerate(stages.items()):
        t = time.time()
        log(f"[{name}] stage {i + 1}/{len(stages)}")
        Interrupted.check()
        if markers.get(name) is not None and run.exists(markers[name]):
            log(f"  (done already: {markers[name]})")
        else:
            out = fn()
        log(f"[{name}] done in {time.time() - t:.1f}s (total {time.time() - t0:.1f}s)")
        if name == until:
            break
    return out
