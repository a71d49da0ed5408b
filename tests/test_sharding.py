"""Sharding over devices (rmtheory/_sharding.py): the same numbers on 1 and 4 devices.

The 4-device runs are subprocesses with ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` (the device
count is fixed when JAX starts), compared with this process's single-device results.

* Runs placed by ``shard_leading`` and computed elementwise: the same computation per run on every device,
  so the comparison is bitwise.
* ``time_to_gamma``: every column is integrated by the same algorithm, but each device sees a batch of n/D
  columns instead of n, and XLA's CPU code for the batched reductions of the set-up (targets, certificate
  constants, initial steps: sums over |Y|) can round differently for another batch size. In this case t_γ
  differs by ≤ 1e-13 relative (the solver's own accuracy is ~1e-8) and the step counts by a few bracketing
  iterations; other shapes (e.g. 6 instances × 5 prompts × 12 outputs) came out bitwise equal. Asserted:
  identical statuses and set of unreached targets, t_γ and t_end within 1e-12 relative.
"""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rmtheory as rt
from rmtheory import _sharding

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

# Built identically here and in the subprocess: 256 single-prompt instances (64 columns per device), λ = 0,
# targets reached, certified unreachable and beyond the horizon; 8 runs placed with shard_leading.
CASE = """
import jax, jax.numpy as jnp, numpy as np
import rmtheory as rt

rt.enable_x64()  # the one 64-bit switch (the parent test process has it on via conftest.py)

def case():
    keys = jax.random.split(jax.random.PRNGKey(1), 256)
    inst = jax.vmap(lambda k: rt.random_instance(k, 1, 16, lam=0.0))(keys)
    res = rt.time_to_gamma(inst, jnp.linspace(0.01, 0.6, 256)[:, None], t_max=1e9)
    out = {f"flow_{k}": np.asarray(v) for k, v in res._asdict().items()}
    runs = jnp.arange(8.0)[:, None] * jnp.ones((8, 3))
    placed = rt.shard_leading({"x": runs, "k": jax.random.split(jax.random.PRNGKey(0), 8)})
    f = jax.jit(jax.vmap(lambda x, k: 2.0 * jnp.sin(x) + jax.random.normal(k, (3,))))  # elementwise per run
    runs = f(placed["x"], placed["k"])
    if jax.process_count() > 1:  # a global array: every process holds its devices' rows; gather them to read all
        from jax.experimental import multihost_utils
        runs = multihost_utils.process_allgather(runs, tiled=True)
    out["runs"] = np.asarray(runs)
    out["devices"] = np.array([len(jax.devices()), len(res.t.sharding.device_set),
                               len(placed["x"].sharding.device_set)])
    return out
"""


def _case():
    ns = {}
    exec(CASE, ns)
    return ns["case"]()


def _start_on(n_devices, tmp_path):
    """Start CASE on ``n_devices`` forced host devices in a subprocess; returns wait() -> its results."""
    out = tmp_path / f"d{n_devices}.npz"
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={n_devices}", JAX_PLATFORMS="cpu")
    code = CASE + f"\nnp.savez({str(out)!r}, **case())\n"
    p = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)

    def wait():
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
        with np.load(out) as z:
            return {k: z[k] for k in z.files}

    return wait


def _assert_same_numbers(one, other, where=""):
    """Runs bitwise; time_to_gamma: same statuses and unreached set, t and t_end to 1e-12 relative."""
    assert np.array_equal(one["runs"], other["runs"]), where
    assert np.array_equal(one["flow_status"], other["flow_status"]), where
    for k in ("flow_t", "flow_t_end"):
        a, b = one[k], other[k]
        assert np.array_equal(np.isfinite(a), np.isfinite(b)), (where, k)
        fin = np.isfinite(a)
        np.testing.assert_allclose(b[fin], a[fin], rtol=1e-12, atol=0, err_msg=f"{where} {k}")


def test_four_devices_match_one_device(tmp_path):
    if len(jax.devices()) != 1 or jax.default_backend() != "cpu":
        pytest.skip("the reference must be computed on one CPU device, like the forced host devices")
    wait = _start_on(4, tmp_path)  # runs while this process computes the one-device reference
    one = _case()
    four = wait()
    assert list(four["devices"]) == [4, 4, 4]  # really split: the results span 4 devices, and so do the runs
    assert list(one["devices"]) == [1, 1, 1]
    status = one["flow_status"]
    S = rt.Status
    assert {int(v) for v in np.unique(status)} == {S.REACHED, S.UNREACHABLE, S.HORIZON}  # every outcome occurs
    assert len(set(one["flow_steps"].ravel())) > 20  # columns finish at different times: the queues refill
    _assert_same_numbers(one, four)


def test_deal_round_robin_and_inverse():
    for n in (1, 2, 5, 30, 64):
        for d in range(1, min(n, 6) + 1):
            gather, scatter = _sharding._deal(n, d)
            m = -(-n // d)
            assert gather.shape == (m * d,)
            assert np.array_equal(gather[scatter], np.arange(n))  # every column comes back to its place
            assert set(gather.tolist()) == set(range(n))
            blocks = gather.reshape(d, m)
            for k in range(d):  # device k holds k, k+d, k+2d, …
                real = blocks[k][blocks[k] == np.arange(k, k + m * d, d)]
                assert np.array_equal(real, np.arange(k, n, d))


def test_device_counts():
    devs = ["a", "b", "c", "d"]
    assert _sharding.column_devices(30, devs) == 4 and _sharding.per_device(30, devs) == 8
    assert _sharding.column_devices(3, devs) == 3 and _sharding.per_device(3, devs) == 1
    assert [_sharding.leading_devices(n, devs) for n in (1, 2, 3, 4, 6, 8, 21)] == [1, 2, 3, 4, 3, 4, 3]


def test_one_device_is_a_no_op_and_bad_input_is_named():
    tree = {"a": jnp.ones((3, 2)), "b": jnp.zeros(3)}
    assert _sharding.shard_leading(tree, devices=jax.devices()[:1]) is tree
    with pytest.raises(ValueError, match="tree: every leaf needs the same leading"):
        rt.shard_leading({"a": jnp.ones((3, 2)), "b": jnp.zeros(4)})
    with pytest.raises(ValueError, match="columns: every array needs the same leading size"):
        _sharding.shard_columns(lambda x, y: x, dict(x=jnp.ones(3), y=jnp.ones(4)))


def _scaled(x, y, power):
    return x ** power * y


def test_shard_columns_on_one_device_equals_direct_call():
    x = jnp.linspace(-1.0, 1.0, 7)
    out = _sharding.shard_columns(_scaled, dict(x=x), dict(y=jnp.asarray(3.0)), dict(power=1))
    assert np.array_equal(np.asarray(out), np.asarray(x * 3.0))


MULTIHOST = """
import sys, jax
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(coordinator_address=sys.argv[1], num_processes=2, process_id=int(sys.argv[2]))
assert jax.process_count() == 2 and len(jax.devices()) == 4 and len(jax.local_devices()) == 2
""" + CASE + """
out = case()
assert list(out["devices"]) == [4, 4, 4], out["devices"]
np.savez(sys.argv[3], **{k: v for k, v in out.items() if k != "devices"})
"""


@pytest.mark.skipif(os.environ.get("RMTHEORY_TEST_MULTIHOST") != "1",
                    reason="two JAX processes over gloo on 127.0.0.1 (~30 s of CPU); set RMTHEORY_TEST_MULTIHOST=1")
def test_two_processes_match_one_device(tmp_path):
    """jax.distributed.initialize() with 2 processes × 2 forced host devices on this machine (loopback only):
    time_to_gamma spans all 4 devices of both processes and every process reads the full result, with the same
    numbers as one device (see _assert_same_numbers); runs placed by shard_leading too."""
    import socket

    if len(jax.devices()) != 1 or jax.default_backend() != "cpu":
        pytest.skip("the reference must be computed on one CPU device, like the forced host devices")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    procs = [subprocess.Popen([sys.executable, "-c", MULTIHOST, f"127.0.0.1:{port}", str(i),
                               str(tmp_path / f"p{i}.npz")],
                              env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    one = _case()
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
    for i in range(2):
        with np.load(tmp_path / f"p{i}.npz") as z:
            _assert_same_numbers(one, {k: z[k] for k in z.files}, where=f"process {i}")


# --- one CPU device: one lane-refill queue per core, in threads (run_on_cores) ---------------------------------

def test_core_blocks():
    assert _sharding.core_blocks(4096, 64, cores=2) == 2
    assert _sharding.core_blocks(4096, 64, cores=16) == 8  # ≥ 8 columns per lane in every block
    assert _sharding.core_blocks(100, 64, cores=16) == 1 and _sharding.core_blocks(1, 1, cores=4) == 1
    assert _sharding.core_blocks(10**6, 64, cores=16) == 16
    assert _sharding.host_cores() >= 1


def test_time_to_gamma_in_threads_equals_one_queue():
    # 3 blocks of 43–44 columns in 3 threads vs one queue: every column is computed by the same program
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(130, 1, 12)) * 2
    reward = rng.uniform(-1, 1, size=(130, 1, 12))
    inst = rt.make_instance(logits, reward, 0.0)
    assert _sharding.core_blocks(130, 2, cores=3) == 3
    one = rt.time_to_gamma(inst, 0.05, lanes=2, cores=1)
    three = rt.time_to_gamma(inst, 0.05, lanes=2, cores=3)
    for a, b in zip(one, three):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert len(set(np.asarray(one.steps).ravel())) > 10  # the queues refill
    with pytest.raises(ValueError, match="cores must be >= 1"):
        rt.time_to_gamma(inst, 0.05, cores=0)


def test_run_on_cores_order_and_x64_in_the_threads():
    x = jnp.arange(11.0)
    out = _sharding.run_on_cores(_scaled, dict(x=x), dict(y=jnp.asarray(2.0)), dict(power=2), blocks=4)
    assert np.array_equal(np.asarray(out), np.asarray(x ** 2 * 2.0))  # the original order, padding dropped
    # a caller's thread-local 64-bit mode reaches the worker threads (they compute in float64, not float32)
    before = bool(jax.config.jax_enable_x64)
    jax.config.update("jax_enable_x64", False)
    try:
        with jax.enable_x64(True):
            xs = jnp.linspace(0.0, 1.0, 9, dtype=jnp.float64)
            got = _sharding.run_on_cores(lambda x: x + 1e-12, dict(x=xs), blocks=3)
            assert got.dtype == jnp.float64 and np.array_equal(np.asarray(got), np.asarray(xs) + 1e-12)
    finally:
        jax.config.update("jax_enable_x64", before)
