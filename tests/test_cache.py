"""The commands' persistent compilation cache (``rmtheory/_cache.py``), in subprocesses with their own fresh
cache directories (never the suite's session cache).

* ``rmtheory figures --quick --only fig2`` three times: filling a fresh cache, reading it (JAX logs each hit),
  and with ``RMTHEORY_NO_CACHE=1``: the second process adds no entry and hits every entry the first wrote, the
  three write byte-identical CSV/JSON, and the uncached run leaves the cache directory as it was.
* ``rmtheory verify --scale quick`` twice on one fresh cache: the table of the run that compiles (and writes)
  equals the table of the run that loads every executable from disk.
* ``rmtheory evaluate`` (the cheapest command that compiles) with ``RMTHEORY_NO_CACHE=1`` does not create the
  directory; with a directory that cannot be written (a path through a regular file; a read-only directory,
  as root by dropping the capability that overrides file modes) it prints one warning line, exits 0 and
  prints the same report; a directory that fails while a program runs gives one line, not one per function.
* JAX's cache key moves with the jaxlib version, the platform version, the XLA flags and the compile options.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import _commands
from rmtheory import _cache

FIG2 = ["figures", "--quick", "--only", "fig2"]
EVALUATE = ["evaluate", os.path.join(_commands.ROOT, "examples", "rewards.csv")]
WARNING = re.compile(r"^rmtheory: warning: compilation cache .+ is not writable \(.+\); running uncached$")
HIT = re.compile(r"Persistent compilation cache hit for '[^']*' with key '([^']+)'")


def _env(cache: Path, off: bool = False, **extra) -> dict:
    """The environment of a command with its own cache directory ``cache`` (nothing of the suite's cache)."""
    env = _commands.env()
    for name in ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", _cache.ENV_OFF,
                 "JAX_LOG_COMPILES", "XDG_CACHE_HOME"):
        env.pop(name, None)
    env[_cache.ENV_DIR] = str(cache)
    if off:
        env[_cache.ENV_OFF] = "1"
    env.update(extra)
    return env


def _rmtheory(args, env, cwd, prefix=()) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, sys.executable, "-m", "rmtheory.cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def _ok(p: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert p.returncode == 0, p.stderr[-3000:]
    return p


def _keys(cache: Path) -> set[str]:
    return {os.path.basename(e)[:-len("-cache")] for e in _cache.entries(str(cache))}


def _snapshot(folder: Path) -> dict:
    """Every file's (size, mtime) and the folder's own mtime: what "untouched" means."""
    out = {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}
    out["."] = folder.stat().st_mtime_ns
    return out


def _data_files(out: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.suffix in (".csv", ".json")}


@pytest.fixture(scope="module")
def fig2(tmp_path_factory):
    base = tmp_path_factory.mktemp("cache-fig2")
    cache = base / "jax"
    first = _ok(_rmtheory(FIG2 + ["--out", str(base / "first")], _env(cache), base))
    after_first = _keys(cache)
    second = _ok(_rmtheory(FIG2 + ["--out", str(base / "second")], _env(cache, JAX_LOG_COMPILES="1"), base))
    after_second = _keys(cache)
    before_off = _snapshot(cache)
    off = _ok(_rmtheory(FIG2 + ["--out", str(base / "off")], _env(cache, off=True), base))
    return types.SimpleNamespace(base=base, first=first, second=second, off=off, after_first=after_first,
                                 after_second=after_second, hits=set(HIT.findall(second.stderr)),
                                 before_off=before_off, after_off=_snapshot(cache))


def test_second_process_reads_every_entry_the_first_wrote(fig2):
    assert len(fig2.after_first) > 10
    assert fig2.after_second == fig2.after_first  # nothing compiled afresh ...
    assert fig2.after_first <= fig2.hits          # ... because every entry was read back
    assert "warning" not in fig2.first.stderr


def test_same_figure_data_with_and_without_the_cache(fig2):
    first, second, off = (_data_files(fig2.base / name) for name in ("first", "second", "off"))
    assert sorted(first) == ["fig2_accuracy_not_enough.csv", "fig2_accuracy_not_enough.json"]
    assert first == second == off


def test_no_cache_leaves_an_existing_directory_untouched(fig2):
    assert fig2.after_off == fig2.before_off


def test_no_cache_does_not_create_the_directory(tmp_path):
    cache = tmp_path / "missing" / "jax"
    _ok(_rmtheory(EVALUATE, _env(cache, off=True), tmp_path))
    assert not (tmp_path / "missing").exists()


def test_same_verify_table_compiling_and_from_the_cache(tmp_path):
    cache = tmp_path / "jax"
    compiled = _ok(_rmtheory(["verify", "--scale", "quick"], _env(cache), tmp_path))
    n = len(_keys(cache))
    loaded = _ok(_rmtheory(["verify", "--scale", "quick"], _env(cache), tmp_path))
    assert n > 10 and len(_keys(cache)) == n
    assert re.search(r"^\d+ results, \d+ instances, 0 violations", compiled.stdout, re.M), compiled.stdout
    assert compiled.stdout == loaded.stdout


def _one_warning_and_same_report(cache, tmp_path, prefix=()):
    reference = _ok(_rmtheory(EVALUATE, _env(tmp_path / "unused", off=True), tmp_path)).stdout
    p = _ok(_rmtheory(EVALUATE, _env(cache), tmp_path, prefix))
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and WARNING.match(lines[0]) and str(cache) in lines[0], p.stderr[-3000:]
    assert p.stdout == reference


def test_directory_under_a_regular_file_is_one_warning_line(tmp_path):
    (tmp_path / "file").write_text("")
    _one_warning_and_same_report(tmp_path / "file" / "jax", tmp_path)


def test_read_only_directory_is_one_warning_line(tmp_path):
    cache = tmp_path / "jax"
    cache.mkdir()
    cache.chmod(0o555)
    prefix = ()
    if os.geteuid() == 0:  # root writes through file modes unless it drops the capability that allows it
        if shutil.which("setpriv") is None:
            pytest.skip("as root, needs setpriv to drop CAP_DAC_OVERRIDE")
        prefix = ("setpriv", "--bounding-set=-dac_override,-dac_read_search")
    try:
        _one_warning_and_same_report(cache, tmp_path, prefix)
        assert list(cache.iterdir()) == []
    finally:
        cache.chmod(0o755)


FAILING_LATER = """
import shutil, sys
import jax, jax.numpy as jnp
from rmtheory import _cache
path = _cache.enable_for_command()
jax.jit(lambda x: x + 1)(jnp.ones(3)).block_until_ready()   # JAX opens the directory and writes an entry
shutil.rmtree(path)
open(path, "w").close()                                     # from here on every write fails
for k in range(2, 7):
    jax.jit(lambda x, k=k: x * k)(jnp.ones(3)).block_until_ready()
print("done")
"""


def test_jax_errors_while_running_are_one_line(tmp_path):
    p = subprocess.run([sys.executable, "-c", FAILING_LATER], env=_env(tmp_path / "jax"), cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and p.stdout == "done\n", p.stderr[-3000:]
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and "could not write an entry" in lines[0], p.stderr[-3000:]


def test_cache_command_info_and_clear(tmp_path, fig2):
    cache = tmp_path / "jax"
    shutil.copytree(fig2.base / "jax", cache)
    (cache / "notes.txt").write_text("kept")
    info = _ok(_rmtheory(["cache", "info"], _env(cache), tmp_path)).stdout
    assert f"path     {cache}\n" in info and "state    on\n" in info
    assert f"entries  {len(fig2.after_first)}\n" in info
    assert "off" in _ok(_rmtheory(["cache", "info"], _env(cache, off=True), tmp_path)).stdout
    cleared = _ok(_rmtheory(["cache", "clear"], _env(cache), tmp_path)).stdout
    assert cleared.startswith(f"removed {len(fig2.after_first)} entries")
    assert [p.name for p in cache.iterdir()] == ["notes.txt"]


def test_cache_location(monkeypatch, tmp_path):
    env = {"HOME": str(tmp_path)}
    assert _cache.cache_dir(env) == str(tmp_path / ".cache" / "rmtheory" / "jax")
    assert _cache.cache_dir(dict(env, XDG_CACHE_HOME="/x/cache")) == "/x/cache/rmtheory/jax"
    assert _cache.cache_dir(dict(env, XDG_CACHE_HOME="relative")) == str(tmp_path / ".cache" / "rmtheory" / "jax")
    assert _cache.cache_dir(dict(env, XDG_CACHE_HOME="/x", RMTHEORY_CACHE_DIR="/y/jax")) == "/y/jax"
    assert _cache.disabled({"RMTHEORY_NO_CACHE": "1"}) and not _cache.disabled({"RMTHEORY_NO_CACHE": "0"})


def test_import_leaves_jax_config_alone():
    code = ("import jax, rmtheory; c = jax.config; "
            "print(c.jax_compilation_cache_dir, c.jax_persistent_cache_min_compile_time_secs)")
    env = _commands.env()
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    env.pop("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["None", "1.0"], out.stderr[-2000:]


# --------------------------------------------------------------------------------------------------
# JAX's key: an entry compiled elsewhere (other jaxlib, platform, flags, options) is another entry
# --------------------------------------------------------------------------------------------------

@pytest.fixture
def key():
    import jax
    from jax._src import cache_key, compiler, xla_bridge

    module = jax.jit(lambda x: x * 2 + 1).lower(np.ones(3)).compiler_ir("stablehlo")
    devices = np.array([[jax.devices()[0]]])
    backend = xla_bridge.get_backend()

    def key(options=None, backend=backend):
        options = options or compiler.get_compile_options(num_replicas=1, num_partitions=1)
        return cache_key.get(module, devices, options, backend)

    key.options = lambda: compiler.get_compile_options(num_replicas=1, num_partitions=1)
    key.backend = backend
    return key


def test_key_is_stable(key):
    assert key() == key()


def test_key_changes_with_the_jaxlib_version(key, monkeypatch):
    from jax._src import cache_key

    k = key()
    monkeypatch.setattr(cache_key, "jaxlib_version_str", cache_key.jaxlib_version_str + ".other")
    assert key() != k


def test_key_changes_with_the_platform(key):
    other = types.SimpleNamespace(platform=key.backend.platform, platform_version="another version")
    assert key(backend=other) != key()


def test_key_changes_with_xla_flags(key, monkeypatch):
    k = key()
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=true")
    assert key() != k


def test_key_changes_with_compile_options(key):
    options = key.options()
    options.executable_build_options.debug_options.xla_cpu_enable_fast_math = True
    assert key(options) != key()
