"""The one 64-bit switch (``rmtheory.enable_x64``): importing the package leaves JAX's dtype flag alone, the
theory entry points refuse float32 with an error that names the fix, and the switch (or JAX's own scoped
``jax.enable_x64``) makes them work. In a fresh interpreter: the suite itself runs with the switch on
(``tests/conftest.py``)."""

import subprocess
import sys

import rmtheory

CHILD = r"""
import jax, numpy as np
import rmtheory as rt
from rmtheory.evaluate import evaluate

assert not jax.config.jax_enable_x64 and not rt.x64_enabled(), "import rmtheory switched x64 on"
calls = {
    "make_instance": lambda: rt.make_instance([0.0, 1.0], [0.5, -0.5]),
    "random_instance": lambda: rt.random_instance(jax.random.PRNGKey(0), 1, 3),
    "rm_report": lambda: rt.rm_report(np.arange(6.0).reshape(2, 3)),
    "evaluate": lambda: evaluate({"prompt_id": [0, 0, 1, 1], "a": [0.1, 0.2, 0.3, 0.5]}, bootstrap=0),
}
for name, f in calls.items():
    try:
        f()
    except RuntimeError as e:
        assert "rmtheory.enable_x64()" in str(e) and "float32" in str(e), e
        print("refused", name)
    else:
        raise AssertionError(f"{name} computed with x64 off")
with jax.enable_x64(True):
    t = float(rt.time_to_gamma(rt.make_instance([0.0, 1.0], [0.5, -0.5]), 0.1).t[0])
    print("scoped", t)
assert not rt.x64_enabled()
rt.enable_x64()
inst = rt.make_instance([0.0, 1.0], [0.5, -0.5])
assert inst.logits.dtype == np.float64
print("switched", float(rt.time_to_gamma(inst, 0.1).t[0]) == t)
"""


def test_switch_off_by_default_refused_then_on():
    r = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.split("\n")
    for name in ("make_instance", "random_instance", "rm_report", "evaluate"):
        assert f"refused {name}" in lines
    assert "switched True" in lines


def test_suite_and_cli_run_in_64_bits():
    assert rmtheory.x64_enabled()  # conftest.py
    import jax.numpy as jnp

    assert jnp.zeros(1).dtype == jnp.float64
