"""Spread batch-parallel work over every device with JAX's own SPMD (``jax.sharding`` + ``shard_map``).

Two helpers, no scheduler of our own:

* :func:`shard_columns` runs a per-column batch function (e.g. the lane-refilled hitting-time solver behind
  :func:`rmtheory.time_to_gamma`) on every device at once. The n columns are dealt round-robin (column i to
  device i mod D, so a batch sorted by difficulty is still balanced), each device runs the function on its own
  block with its own ``while_loop`` (its own lane-refill queue: no cross-device synchronisation inside the
  loop), and the results come back in the original order, replicated on every device (so every process of a
  multi-host run can read them). Every column runs the same algorithm as on one device; only the batch
  size changes (n/D per device), and XLA may round batched reductions (sums over a column's outputs)
  differently for another batch size, so results agree bitwise or to the last few bits (t_γ within ~1e-13
  relative in ``tests/test_sharding.py``; step counts can differ by a few event-bracketing steps).
* :func:`shard_leading` places the leading axis (e.g. runs = sources × seeds) of every array of a pytree
  across devices; ``jit``/``vmap`` computations on the result then run SPMD over the devices (GSPMD
  propagates the sharding); a computation that is elementwise over runs gives bitwise the same numbers.

Both use ``jax.devices()``: after ``jax.distributed.initialize()`` that is every device of every process (see
docs/devices.md), and on one device they are no-ops.

On one CPU device, :func:`run_on_cores` is the per-core counterpart of :func:`shard_columns`: the columns are
dealt the same way into one block per core and each block runs in its own thread, as its own XLA computation.
A lane-refill ``while_loop`` advances small [lanes, |Y|] arrays through ~300 operations per iteration; XLA
splits each operation over the cores, which keeps them busy only part of the time, whereas one loop per core
keeps every core busy with operations of the same size (measured in ``benchmarks/time_to_gamma.py``).
"""

from __future__ import annotations

import concurrent.futures
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

__all__ = ["column_devices", "per_device", "shard_columns", "shard_leading", "leading_devices", "host_cores",
           "core_blocks", "run_on_cores"]

_AXIS = "columns"


def column_devices(n: int, devices=None) -> int:
    """How many devices :func:`shard_columns` uses for n columns: min(n, #devices) (at least 1)."""
    devs = jax.devices() if devices is None else list(devices)
    return max(1, min(int(n), len(devs)))


def per_device(n: int, devices=None) -> int:
    """Columns per device (the block size each device's function call sees), ⌈n / D⌉."""
    d = column_devices(n, devices)
    return -(-int(n) // d)


def _deal(n: int, d: int):
    """(gather, scatter) index arrays of the round-robin deal: device k's block is gather[k*m:(k+1)*m] =
    columns k, k+d, k+2d, … (padded with the last column); out[scatter] restores the original order."""
    m = -(-n // d)
    k, j = np.meshgrid(np.arange(d), np.arange(m), indexing="ij")
    gather = np.minimum(j * d + k, n - 1).reshape(-1)
    i = np.arange(n)
    scatter = (i % d) * m + i // d
    return gather, scatter


@functools.partial(jax.jit, static_argnames=("fn", "devs", "static"))
def _sharded(fn, columns, shared, devs, static):
    n = jax.tree_util.tree_leaves(columns)[0].shape[0]
    gather, scatter = _deal(n, len(devs))
    mesh = Mesh(np.asarray(devs), (_AXIS,))
    dealt = jax.tree_util.tree_map(lambda a: a[gather], columns)
    shared_specs = jax.tree_util.tree_map(lambda _: P(), shared)

    def block(cols, sh):
        return fn(**cols, **sh, **dict(static))

    out = jax.shard_map(block, mesh=mesh, in_specs=(P(_AXIS), shared_specs), out_specs=P(_AXIS),
                        check_vma=False)(dealt, shared)
    out = jax.tree_util.tree_map(lambda a: a[scatter], out)
    return jax.lax.with_sharding_constraint(out, NamedSharding(mesh, P()))


def shard_columns(fn, columns: dict, shared: dict | None = None, static: dict | None = None, *, devices=None):
    """``fn(**columns, **shared, **static)`` with the leading axis n of every ``columns`` array split over
    the devices; returns what one call on all n columns returns (a pytree of arrays with leading axis n).

    ``fn`` must treat columns independently (row i of the output depends only on row i of the inputs) and be
    a stable, hashable callable (a module-level function or ``jax.jit`` object: it is a compile-cache key);
    ``shared`` are arrays/scalars given whole to every device; ``static`` are hashable Python values (e.g. a
    lane count, which should be at most :func:`per_device` (n)). ``devices`` defaults to ``jax.devices()``;
    the first :func:`column_devices` (n) of them are used.
    """
    shared = {} if shared is None else dict(shared)
    static = {} if static is None else dict(static)
    leaves = jax.tree_util.tree_leaves(columns)
    if not leaves:
        raise ValueError("columns must hold at least one array")
    n = leaves[0].shape[0]
    if n == 0:
        raise ValueError("columns must have at least one row")
    bad = [a.shape for a in leaves if a.shape[:1] != (n,)]
    if bad:
        raise ValueError(f"columns: every array needs the same leading size {n}; got shapes {bad}")
    devs = jax.devices() if devices is None else list(devices)
    d = column_devices(n, devs)
    shared = jax.tree_util.tree_map(jnp.asarray, shared)
    return _sharded(fn, columns, shared, tuple(devs[:d]), tuple(sorted(static.items())))


def leading_devices(n: int, devices=None) -> int:
    """How many devices :func:`shard_leading` uses for a leading axis of size n: the largest D' ≤ #devices
    that divides n (a sharded axis must split evenly)."""
    devs = jax.devices() if devices is None else list(devices)
    return max(d for d in range(1, max(1, min(int(n), len(devs))) + 1) if int(n) % d == 0)


def shard_leading(tree, devices=None):
    """Place every array leaf of ``tree`` with its leading axis split over the devices (runs axis → devices).

    All leaves must share the leading size n; the first :func:`leading_devices` (n) devices are used (all of
    them when n is a multiple of the device count). ``jit``-ted and ``vmap``-ped functions applied to the result
    run SPMD, each device computing its own runs; results are the same arrays as on one device. Returns the
    tree unchanged (apart from placement) when only one device is used.
    """
    leaves = jax.tree_util.tree_leaves(tree)
    if not leaves:
        return tree
    sizes = {np.shape(a)[0] if np.ndim(a) else None for a in leaves}
    if len(sizes) != 1 or None in sizes:
        raise ValueError("tree: every leaf needs the same leading (runs) axis; "
                         f"got leading sizes {sorted(map(str, sizes))}")
    n = sizes.pop()
    devs = jax.devices() if devices is None else list(devices)
    d = leading_devices(n, devs)
    if d == 1:
        return tree
    sharding = NamedSharding(Mesh(np.asarray(devs[:d]), ("runs",)), P("runs"))
    return jax.device_put(tree, sharding)


_COLUMNS_PER_LANE = 8  # a block gets at least this many columns per lane (else its refill queue is too short)


def host_cores() -> int:
    """The CPU cores this process may run on (its affinity set where the OS reports one, else ``os.cpu_count()``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def core_blocks(n: int, lanes: int, cores: int | None = None) -> int:
    """How many blocks :func:`run_on_cores` should deal n columns into for loops of ``lanes`` lanes: one per core
    (``cores``, default :func:`host_cores`), but no more than leave every block ≥ 8 columns per lane."""
    c = host_cores() if cores is None else int(cores)
    return max(1, min(c, int(n) // (_COLUMNS_PER_LANE * max(1, int(lanes)))))


def run_on_cores(fn, columns: dict, shared: dict | None = None, static: dict | None = None, *, blocks: int):
    """``fn(**columns, **shared, **static)`` with the leading axis n of ``columns`` dealt round-robin into
    ``blocks`` blocks (as :func:`shard_columns` deals them over devices, padded with the last column), every block
    computed at the same time by its own thread (one XLA CPU computation per core); returns what one call on all
    n columns returns, in the original order.

    ``fn`` must treat columns independently (row i of the output depends only on row i of the inputs): every
    column is then computed by the same program as in one call, only the batch around it is smaller. The first
    block is dispatched from the calling thread (so a first call compiles once, here; the other threads find
    the compiled program) and JAX's 64-bit mode of the caller, which may be a thread-local
    ``jax.enable_x64`` context, is carried into the worker threads.
    """
    shared = {} if shared is None else dict(shared)
    static = {} if static is None else dict(static)
    n = jax.tree_util.tree_leaves(columns)[0].shape[0]
    blocks = max(1, min(int(blocks), n))
    if blocks == 1:
        return fn(**columns, **shared, **static)
    gather, scatter = _deal(n, blocks)
    m = -(-n // blocks)
    parts = [jax.tree_util.tree_map(lambda a, k=k: a[gather[k * m:(k + 1) * m]], columns) for k in range(blocks)]
    x64 = bool(jax.config.jax_enable_x64)

    def call(part):
        with jax.enable_x64(x64):
            return jax.block_until_ready(fn(**part, **shared, **static))

    with concurrent.futures.ThreadPoolExecutor(blocks - 1) as pool:
        first = fn(**parts[0], **shared, **static)  # compiles (once) and dispatches without waiting
        rest = [pool.submit(call, part) for part in parts[1:]]
        outs = [first] + [f.result() for f in rest]
    joined = jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs), *outs)
    return jax.tree_util.tree_map(lambda a: a[scatter], joined)
