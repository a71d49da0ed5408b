"""A user's clone stays clean: the cheap commands of the README's quickstart and of the evaluate guide (the three
``rmtheory evaluate`` examples, as written, ``rmtheory figures --only fig2`` in both modes and ``rmtheory demo``
with small settings), run in a fresh ``git clone`` of this repository, leave ``git status --porcelain`` empty:
outputs go to ignored paths, and a figure whose numbers and pixels did not move is not rewritten."""

import os
import re
import shutil
import subprocess

import pytest

import _commands

ROOT = _commands.ROOT


def _readme_evaluate_block():
    """The first bash block of the evaluate guide (docs/evaluate.md)."""
    with open(os.path.join(ROOT, "docs", "evaluate.md")) as f:
        block = re.search(r"```bash\n(.*?)```", f.read(), re.S).group(1)
    return [ln.split("  #")[0].strip() for ln in block.splitlines() if ln.strip() and not ln.startswith("#")]


def _readme_quickstart():
    """The commands of the README's quickstart (``$ command  # comment`` lines of its console blocks)."""
    with open(os.path.join(ROOT, "README.md")) as f:
        section = f.read().split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return [ln[2:].split(" #")[0].strip() for ln in section.splitlines() if ln.startswith("$ ")]


def test_readme_quickstart_is_what_the_clone_test_runs():
    assert _readme_quickstart() == ["rmtheory verify --scale quick", "rmtheory evaluate examples/rewards.csv",
                                    "rmtheory figures --only fig2"]


def test_readme_evaluate_examples_run_as_written_without_warnings():
    cmds = _readme_evaluate_block()
    assert len(cmds) == 3 and all(c.startswith("rmtheory evaluate examples/") for c in cmds)
    for c in cmds[:2]:  # the third writes card.png: run in the clone below
        p = _commands.run(c, ROOT, timeout=300)
        assert p.returncode == 0 and p.stderr == "", (c, p.stderr[-2000:])


def test_guide_csv_is_the_start_of_the_example_file():
    with open(os.path.join(ROOT, "docs", "evaluate.md")) as f:
        snippet = re.search(r"```csv\n(.*?)```", f.read(), re.S).group(1)
    with open(os.path.join(ROOT, "examples", "rewards.csv")) as f:
        assert f.read().startswith(snippet)


@pytest.mark.skipif(shutil.which("git") is None or not os.path.isdir(os.path.join(ROOT, ".git"))
                    and not os.path.isfile(os.path.join(ROOT, ".git")), reason="needs git and a git checkout")
def test_readme_commands_leave_a_fresh_clone_clean(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", ROOT, str(clone)], check=True, capture_output=True, timeout=120)
    env = _commands.env()
    if "PYTHONPATH" in env:  # not installed: run the clone's own code
        env["PYTHONPATH"] = str(clone)
    # verify only prints (its table is checked in tests/test_verify.py); the figures run in both modes
    cmds = [c for c in _readme_quickstart() if "verify" not in c] + ["rmtheory figures --quick --only fig2"]
    for c in _readme_evaluate_block() + cmds + ["rmtheory demo --n 16 --outputs 4"]:
        p = subprocess.run(_commands.command(c, env), shell=True, cwd=clone, env=env, capture_output=True,
                           text=True, timeout=600)
        assert p.returncode == 0, (c, p.stderr[-2000:])
    assert "min t_γ/bound: the smallest measured t_γ divided by its Proposition 3 lower bound" in p.stdout
    assert (clone / "card.png").exists() and (clone / "demo_out" / "demo_time_vs_variance.png").exists()
    assert (clone / "figures-quick" / "fig2_accuracy_not_enough.png").exists()
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=clone,
                            capture_output=True, text=True, check=True).stdout
    assert status == "", status
