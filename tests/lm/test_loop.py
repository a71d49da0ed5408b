"""The RL epoch loop: progress with an ETA that leaves out the first epoch's compilation; Ctrl-C caught at the
next boundary, even when it lands inside a callback that swallows exceptions, without a traceback."""

import gc
import os
import signal
import sys
import threading
import time

import numpy as np
import pytest

from rmtheory.lm.loop import Interrupted, catching_sigint, eta, train_epochs
from rmtheory.lm.rundir import RunDir


def test_eta_uses_the_epochs_after_the_first():
    assert eta([74.0], 2) == "ETA after the next epoch (this one included compilation)"
    assert eta([74.0, 1.5, 2.5], 3) == "ETA 6s"
    assert eta([74.0], 0) == "ETA 0s"


def test_train_epochs_eta_leaves_out_the_compiling_epoch(tmp_path):
    calls = []

    def update(p, st, e):  # the first call "compiles" for 1 s, the others are instant
        time.sleep(1.0 if not calls else 0.0)
        calls.append(e)
        return p, st, {"loss": np.zeros(1)}

    logs = []
    prog = train_epochs(RunDir(str(tmp_path)), "rl", 5, (np.zeros(2), np.zeros(2)), update,
                        lambda p: {"pg": {"x": np.zeros(1)}}, logs.append)
    assert prog["epoch"] == 5 and calls == [0, 1, 2, 3, 4]
    epochs = [line for line in logs if " epoch " in line and "/5" in line]
    assert "ETA after the next epoch" in epochs[0]
    assert "ETA 0s" in epochs[1]  # counting the first epoch's second would predict 1.5 s


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals reach the main thread")
def test_ctrl_c_inside_a_gc_callback_is_kept_and_reported_in_no_traceback(capfd, monkeypatch):
    """A SIGINT whose KeyboardInterrupt is raised inside a garbage-collector callback (as inside JAX's
    ``_xla_gc_callback``) is swallowed there by Python: the flag keeps it for the next boundary, and Python's
    "Exception ignored in ... Traceback" report of it stays off stderr. Any other swallowed exception is still
    reported, and the hooks are restored afterwards."""
    fired = []

    def interrupt_inside(phase, info):
        if phase == "start" and not fired:
            fired.append(phase)
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(10_000):  # the Python-level handler runs here, inside the callback
                pass

    def fail_inside(phase, info):
        if phase == "start" and len(fired) == 1:
            fired.append(phase)
            raise ValueError("another swallowed error")

    monkeypatch.setattr(sys, "unraisablehook", sys.__unraisablehook__)  # Python's own report (pytest sets its own)
    hook, handler = sys.unraisablehook, signal.getsignal(signal.SIGINT)
    gc.callbacks.append(interrupt_inside)
    try:
        with catching_sigint():
            gc.collect()  # the KeyboardInterrupt is raised and swallowed inside the callback
            assert fired == ["start"] and Interrupted.flag
            with pytest.raises(KeyboardInterrupt):
                Interrupted.check()
            quiet = capfd.readouterr().err
            gc.callbacks.append(fail_inside)
            gc.collect()
            loud = capfd.readouterr().err
    finally:
        gc.callbacks[:] = [c for c in gc.callbacks if c not in (interrupt_inside, fail_inside)]
    assert "Traceback" not in quiet and "KeyboardInterrupt" not in quiet and "Exception ignored" not in quiet
    assert "another swallowed error" in loud
    assert sys.unraisablehook is hook and signal.getsignal(signal.SIGINT) is handler and not Interrupted.flag
