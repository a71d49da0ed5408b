"""Run the README's shell commands as a reader would: ``rmtheory`` is the installed console script when there
is one, else ``python -m rmtheory.cli`` from this checkout; ``python`` is the test's interpreter."""

import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def env() -> dict:
    bindir = os.path.dirname(sys.executable)
    e = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
    if shutil.which("rmtheory", path=e["PATH"]) is None:  # not installed: run this checkout
        e["PYTHONPATH"] = ROOT + os.pathsep + e.get("PYTHONPATH", "")
    return e


def command(line: str, environ: dict) -> str:
    line = re.sub(r"^python ", sys.executable + " ", line)
    if shutil.which("rmtheory", path=environ["PATH"]) is None:
        line = re.sub(r"^rmtheory ", sys.executable + " -m rmtheory.cli ", line)
    return line


def run(line: str, cwd, timeout: float = 900) -> subprocess.CompletedProcess:
    e = env()
    return subprocess.run(command(line, e), shell=True, cwd=cwd, env=e, capture_output=True, text=True,
                          timeout=timeout)
