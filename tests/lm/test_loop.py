"""The RL epoch loop: progress with an ETA that leaves out the first epoch's compilation."""

import time

import numpy as np

from rmtheory.lm.loop import eta, train_epochs
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
