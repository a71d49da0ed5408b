"""The shared progress line (:mod:`rmtheory._progress`) that long figures print on stderr."""

import io
import time

from rmtheory._progress import Progress


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_a_log_gets_one_line_per_step():
    s = io.StringIO()
    with Progress("fig1", 2, stream=s) as p:
        p.step("tabular t_γ")
        p.step("MLP")
    lines = s.getvalue().splitlines()
    assert [ln.split(" … ")[0] for ln in lines] == ["fig1 [1/2] tabular t_γ", "fig1 [2/2] MLP"]
    assert all(ln.endswith(" s") for ln in lines)


def test_a_terminal_line_is_redrawn_while_a_step_runs_and_cleared_at_the_end():
    s = _Tty()
    with Progress("fig5", 1, stream=s, interval=0.02) as p:
        p.step("ascent")
        time.sleep(0.15)  # a long call that prints nothing itself
    out = s.getvalue()
    assert out.count("\rfig5 [1/1] ascent") == 0 and out.count("fig5 [1/1] ascent") >= 3
    assert out.endswith("\r\033[K") and "\n" not in out
