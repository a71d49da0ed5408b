"""Benchmark: ``time_to_gamma`` on 1, 2 and 4 devices (the columns dealt over ``jax.devices()``).

Run by hand:  python benchmarks/device_scaling.py [--n 1024] [--outputs 128] [--devices 1,2,4] [--repeats 3]
              python benchmarks/device_scaling.py --gpu            (on a machine with NVIDIA GPUs and jax[cuda12])

Each device count runs in its own subprocess (JAX fixes its devices at start-up), on the same instances
(single-prompt, |Y| outputs, initial reward variance from ~1e-13 to ~0.6 so step counts differ by 10×,
γ = 0.01, rtol = atol = 1e-7). It reports the best wall time of ``--repeats`` calls after one compiling call,
the speed-up over the first device count, whether every t_γ, status and step count is bitwise equal to
its run, and the largest relative difference of t_γ (XLA may round the batched set-up sums differently for
another per-device batch size; statuses must agree and t_γ to 1e-12, or the script exits 1).

**CPU (default).** The devices are *forced host devices*
(``XLA_FLAGS=--xla_force_host_platform_device_count=D``): D logical devices that share the same CPU cores.
The speed-up is bounded by the number of cores (on a 2-core VM at most ~2×, and one device already uses
both cores for its 128 lanes), so on CPU this run checks that sharding works and costs little, not that it
scales; the numbers say so.

**GPU (``--gpu``).** The children see the first D GPUs (``CUDA_VISIBLE_DEVICES``), no forced host devices.
Each GPU runs its own lane-refill queue with no communication until the final gather, so with enough
columns per GPU (≳ lanes × a few) expect close to D× on D GPUs; with few columns per device the tail (the
slowest trajectory of each device) dominates and the speed-up drops. Raise ``--lanes`` on a GPU (e.g. 1024):
128 lanes leave most of a GPU idle.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

CHILD = r"""
import json, sys, time
import numpy as np, jax
import rmtheory as rt

rt.enable_x64()

n, n_out, lanes, repeats, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
rng = np.random.default_rng(0)
eps = 10.0 ** rng.uniform(-12.5, 0, size=n)
logits = 0.5 * rng.normal(size=(n, 1, n_out))
logits[:, 0, 1:] += np.log(eps / (n_out - 1))[:, None]
logits[:, 0, 0] = np.log1p(-np.minimum(eps, 0.999))
u = rng.uniform(-1, 1, size=(n, 1, n_out))
reward = np.sign(u) * np.abs(u) ** 0.3
reward[:, 0, 0] = rng.uniform(-1, 0.5, size=n)
inst = rt.make_instance(logits, reward, 0.0)
run = lambda: jax.block_until_ready(rt.time_to_gamma(inst, 0.01, rtol=1e-7, atol=1e-7, t_max=1e16, lanes=lanes))
t0 = time.perf_counter(); res = run(); first = time.perf_counter() - t0
best = float("inf")
for _ in range(repeats):
    t0 = time.perf_counter(); res = run(); best = min(best, time.perf_counter() - t0)
np.savez(out, *[np.asarray(a) for a in res])
print(json.dumps({"devices": len(jax.devices()), "platform": jax.devices()[0].platform,
                  "spans": len(res.t.sharding.device_set), "best_s": best, "first_s": first,
                  "steps_total": int(np.asarray(res.steps).sum()), "steps_max": int(np.asarray(res.steps).max())}))
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1024, help="instances (columns), default 1024")
    p.add_argument("--outputs", type=int, default=128, help="|Y|, default 128")
    p.add_argument("--devices", default="1,2,4", help="device counts, default 1,2,4")
    p.add_argument("--lanes", type=int, default=128, help="lanes per device (default 128)")
    p.add_argument("--repeats", type=int, default=3, help="timed calls after the compiling one (best is kept)")
    p.add_argument("--gpu", action="store_true", help="use the first D GPUs instead of D forced host devices")
    args = p.parse_args(argv)
    counts = [int(x) for x in args.devices.split(",") if x.strip()]
    if not counts or min(counts) < 1:
        p.error(f"--devices: positive integers, comma-separated; got {args.devices!r}")
    for opt, v in (("--n", args.n), ("--outputs", args.outputs), ("--lanes", args.lanes), ("--repeats", args.repeats)):
        if v < 1:
            p.error(f"{opt} must be >= 1; got {v}")
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    rows, ref = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for d in counts:
            env = dict(os.environ)
            if args.gpu:
                env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, range(d)))
            else:
                env["JAX_PLATFORMS"] = "cpu"
                env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={d}").strip()
            out = os.path.join(tmp, f"d{d}.npz")
            r = subprocess.run([sys.executable, "-c", CHILD, str(args.n), str(args.outputs), str(args.lanes),
                                str(args.repeats), out], env=env, cwd=root, capture_output=True, text=True)
            if r.returncode != 0:
                print(r.stderr[-3000:], file=sys.stderr)
                return 1
            info = json.loads(r.stdout.strip().splitlines()[-1])
            with np.load(out) as z:
                arrs = [z[k] for k in sorted(z.files, key=lambda s: int(s.split("_")[1]))]
            ref = arrs if ref is None else ref
            info["identical"] = all(np.array_equal(a, b) for a, b in zip(arrs, ref))
            fin = np.isfinite(ref[0])
            info["max_rel"] = float(np.max(np.abs(arrs[0][fin] - ref[0][fin]) / np.abs(ref[0][fin]), initial=0.0))
            info["ok"] = (np.array_equal(arrs[1], ref[1]) and np.array_equal(np.isfinite(arrs[0]), fin)
                          and info["max_rel"] <= 1e-12)
            rows.append(info)
    base = rows[0]["best_s"]
    kind = "GPUs" if args.gpu else "forced host devices sharing these CPU cores"
    print(f"time_to_gamma, {args.n} instances × {args.outputs} outputs, γ = 0.01, rtol = atol = 1e-7, "
          f"{args.lanes} lanes per device; {kind} (os.cpu_count() = {os.cpu_count()})")
    print(f"{'devices':>7}  {'platform':>8}  {'spans':>5}  {'best s':>8}  {'compile+run s':>13}  {'vs first':>8}  "
          f"{'steps':>8}  {'bitwise':>7}  {'max rel Δt':>10}")
    for r in rows:
        print(f"{r['devices']:>7}  {r['platform']:>8}  {r['spans']:>5}  {r['best_s']:>8.3f}  {r['first_s']:>13.3f}  "
              f"{base / r['best_s']:>7.2f}×  {r['steps_total']:>8}  {str(r['identical']):>7}  {r['max_rel']:>10.1e}")
    if not args.gpu:
        print("note: forced host devices share the same cores; a speed-up here is bounded by the core count, "
              "not by the device count (see --gpu for real accelerators)")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
