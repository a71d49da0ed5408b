"""``rmtheory score`` without the [hf] extra: ``--help`` works, a run says how to install the extra (exit 2).
Runs without torch (these tests hide it when it is installed)."""

import sys

import pytest

from rmtheory.cli import main as cli

ARGV = ["score", "--policy", "p", "--rm", "a=b", "--prompts", "prompts.jsonl", "--out", "o.csv"]


def test_without_the_extra_it_says_how_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    assert cli(ARGV) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert 'pip install ".[hf]"' in err and "rmtheory score" in err


def test_help_needs_no_torch(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(SystemExit) as e:
        cli(["score", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "--policy" in out and "--then-evaluate" in out and "--device" in out


def test_core_import_does_not_pull_torch():
    import subprocess

    code = "import sys, rmtheory, rmtheory.cli, rmtheory.hf.score, rmtheory.hf._inputs; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
