"""The README's Python example runs as printed, and its two opening commands are the ones CI runs."""

import os
import re
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def _readme():
    with open(os.path.join(ROOT, "README.md")) as f:
        return f.read()


def test_python_example_runs():
    """In a fresh interpreter (64-bit mode off, as for a reader), so the example's own switch is tested."""
    code = re.search(r"```python\n(.*?)```", _readme(), re.S).group(1)
    assert len(code.strip().splitlines()) == 11  # "Eleven lines of Python"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 3
    nums = [[float(v) for v in re.findall(r"[-+0-9.e]+", ln)] for ln in lines]
    var, t, bound = nums[0]
    assert t >= bound > 0 and var > 0
    assert abs(nums[1][0] / t - 100.0) < 1e-4  # the rescaled reward model is exactly 100x slower


def test_two_commands_first_and_ci_runs_the_test_command():
    first_block = re.search(r"```bash\n(.*?)```", _readme(), re.S).group(1).strip().splitlines()
    assert len(first_block) == 2
    test_cmd = first_block[1].split("#")[0].strip()
    with open(os.path.join(ROOT, ".ci", "run")) as f:
        assert test_cmd in f.read()
    assert "rmtheory figures" in first_block[0]
