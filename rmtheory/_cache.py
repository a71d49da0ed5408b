"""The persistent JAX compilation cache of the ``rmtheory`` commands, and ``rmtheory cache info|clear``.

What: XLA compiles every jitted function afresh in each new process, and for the short commands that is most
of their time (from a full cache, ``rmtheory verify --scale quick`` takes about a quarter of the time). JAX can
keep each compiled executable in a directory and load it in the next process instead of compiling again;
every ``rmtheory`` command switches that on (:func:`enable_for_command`, called once by ``rmtheory.cli.main``
before the first compilation), and :func:`enable_compilation_cache` is the same switch for Python users.
``import rmtheory`` changes nothing in JAX's configuration: only a command, or that call, does.

Where: ``$RMTHEORY_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/rmtheory/jax`` (an absolute ``XDG_CACHE_HOME``),
else ``~/.cache/rmtheory/jax``. ``RMTHEORY_NO_CACHE=1`` (any value but empty or ``0``) turns it off; then the
directory is neither created, read nor written. A directory that cannot be written (read-only, or a path through a
regular file) is found by a probe before anything compiles (create the directory, write and remove a file):
the command prints one warning line and runs uncached. Errors JAX meets later, while reading or writing an
entry (JAX reports them as Python warnings and compiles as if the entry were absent), are shown once, as one
line, by commands (:func:`_one_line_cache_errors`), not once per function.

Thresholds: JAX keeps an executable only if it took at least ``jax_persistent_cache_min_compile_time_secs`` to
compile (JAX's default: 1 s) and its entry has at least ``jax_persistent_cache_min_entry_size_bytes``. Here
every compilation is kept (:data:`MIN_COMPILE_TIME_SECS` = 0, :data:`MIN_ENTRY_SIZE_BYTES` = -1: no size
minimum, and JAX may not raise it). The commands compile hundreds of small functions, none taking a second:
measured on 2 shared cores, a second ``rmtheory verify --scale quick`` took 10.6 s after a 36.7 s first run
with 0 s (385 entries, 3.2 MB), 20.9 s with 0.1 s (29 entries, 1.6 MB) and 29.9 s with JAX's 1 s (9 entries,
1.0 MB). The cache a command leaves is a few megabytes (``docs/cache.md`` lists them), so keeping the small
entries costs little disk; it grows only with new shapes (other sizes, configs) and ``rmtheory cache clear``
empties it.

Why a stale or foreign entry is never loaded wrongly: JAX names an entry by a SHA-256 over the program and where it
runs (``jax/_src/cache_key.py`` of jax 0.10.2, ``get()``, lines 75–149, its list ``entries``): the canonicalised
StableHLO of the computation (``_hash_computation``, line 219), the jaxlib version (``jaxlib_version_str``, line
111; jax pins a narrow jaxlib range, 0.10.1–0.10.2 for jax 0.10.2, and whatever jax lowers differently is a
different computation), the backend's ``platform`` and ``platform_version`` (``_hash_platform``, line 337), the XLA
flags of ``XLA_FLAGS``, ``LIBTPU_INIT_ARGS`` and the command line (``_hash_xla_flags``, line 342; dump and
host-device-count flags excluded), the serialized compile options with their debug options
(``_hash_serialized_compile_options``, line 280), the devices' topology fingerprint, else each device's
``device_kind`` (``_hash_accelerator_config``, line 232), and the compression algorithm. A change to any of these
is another key, so another entry. The CPU model is not in the key on CPU: an XLA:CPU entry carries the
target-machine features it was compiled for, and jaxlib refuses to load one whose features the host lacks ("Target
machine feature … is not supported on the host machine"); JAX then warns and compiles afresh (one line here, as
above). ``tests/test_cache.py`` checks that the key moves with the jaxlib version, the platform version, the XLA
flags and the compile options.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import warnings

ENV_DIR = "RMTHEORY_CACHE_DIR"
ENV_OFF = "RMTHEORY_NO_CACHE"
MIN_COMPILE_TIME_SECS = 0.0  # keep every compilation (measured above: the small ones are most of a rerun's gain)
MIN_ENTRY_SIZE_BYTES = -1    # JAX's "no minimum size, and no override"
_ENTRY_SUFFIXES = ("-cache", "-atime")  # JAX's LRU file cache: an entry, and its access time (with a size limit)
_JAX_FILES = (".lockfile",)            # JAX's lock for a size-limited cache
_JAX_DIRS = ("xla_gpu_per_fusion_autotune_cache_dir", "xla_gpu_kernel_cache_file")  # XLA's GPU caches in it
_errors_shown_for = None  # the directory _one_line_cache_errors reports for
_JAX_CACHE_ERROR = re.compile(r"Error (reading|writing) persistent compilation cache entry for '[^']*': ")


def cache_dir(environ=None) -> str:
    """The cache directory, absolute: ``$RMTHEORY_CACHE_DIR``, ``$XDG_CACHE_HOME/rmtheory/jax`` or
    ``~/.cache/rmtheory/jax`` (whether or not the cache is off)."""
    env = os.environ if environ is None else environ
    if env.get(ENV_DIR):
        return os.path.abspath(os.path.expanduser(env[ENV_DIR]))
    xdg = env.get("XDG_CACHE_HOME", "")
    base = xdg if os.path.isabs(xdg) else os.path.join(env.get("HOME") or os.path.expanduser("~"), ".cache")
    return os.path.join(base, "rmtheory", "jax")


def disabled(environ=None) -> bool:
    """Whether ``RMTHEORY_NO_CACHE`` turns the cache off (set to anything but empty or ``0``)."""
    env = os.environ if environ is None else environ
    return env.get(ENV_OFF, "").strip() not in ("", "0")


def writable_problem(path: str) -> str | None:
    """Why ``path`` cannot hold the cache (None if it can): creates the directory, writes and removes a probe.

    A permission test would be wrong for root (who writes through read-only modes) and for read-only mounts; a
    real write answers for every case."""
    probe = os.path.join(path, f".rmtheory-probe-{os.getpid()}")
    if os.path.lexists(path) and not os.path.isdir(path):
        return "it is a file, not a directory"
    try:
        os.makedirs(path, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"x")
        os.remove(probe)
    except OSError as e:
        return e.strerror or type(e).__name__
    return None


def enable_compilation_cache(path: str | None = None, *, min_compile_time_secs: float = MIN_COMPILE_TIME_SECS):
    """Keep JAX's compiled functions in ``path`` (default: :func:`cache_dir`) and reuse them in later processes.

    Sets ``jax_compilation_cache_dir``, ``jax_persistent_cache_min_compile_time_secs`` and
    ``jax_persistent_cache_min_entry_size_bytes`` for this process; call it before the first compilation (every
    ``rmtheory`` command does this itself; ``import rmtheory`` does not). Results are unchanged: a cache hit
    runs the executable the same compilation made. Returns the directory in use, or None when the cache stays
    off: ``RMTHEORY_NO_CACHE`` is set (the directory is not touched), or ``path`` cannot be written (one
    warning line on stderr). See ``docs/cache.md``.
    """
    import jax

    if disabled():
        return None
    path = cache_dir() if path is None else os.path.abspath(os.path.expanduser(path))
    problem = writable_problem(path)
    if problem is not None:
        print(f"rmtheory: warning: compilation cache {path} is not writable ({problem}); running uncached",
              file=sys.stderr)
        return None
    from jax.experimental.compilation_cache import compilation_cache

    if jax.config.jax_compilation_cache_dir not in (None, path):
        compilation_cache.reset_cache()  # JAX opens its cache once: let a new directory replace an open one
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time_secs))
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", MIN_ENTRY_SIZE_BYTES)
    return path


def enable_for_command() -> str | None:
    """The command line's switch (``rmtheory.cli.main``): :func:`enable_compilation_cache` at the default
    location, with JAX's later cache errors shown as one line."""
    path = enable_compilation_cache()
    if path is not None:
        _one_line_cache_errors(path)
    return path


def _one_line_cache_errors(path: str) -> None:
    """Show the first of JAX's "Error reading/writing persistent compilation cache entry" warnings as one line
    and hide the rest (each names its function, so Python's once-per-message rule would repeat it per
    function). Other warnings go to the hook that was there before."""
    global _errors_shown_for
    if _errors_shown_for == path:  # installed already (cli.main called again in one process)
        return
    _errors_shown_for = path
    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        m = _JAX_CACHE_ERROR.match(str(message))
        if m is None:
            return shown(message, category, filename, lineno, file, line)
        warnings.filterwarnings("ignore", message=_JAX_CACHE_ERROR.pattern)
        detail = re.sub(r": '[^']*'$", "", " ".join(str(message)[m.end():].split()))  # without the entry's path
        verb = {"reading": "read", "writing": "write"}[m.group(1)]
        print(f"rmtheory: warning: compilation cache {path}: could not {verb} an entry ({detail}); "
              "later cache errors are not shown", file=sys.stderr)

    warnings.showwarning = show


def entries(path: str) -> list[str]:
    """The paths of the cache's entries (JAX's ``<key>-cache`` files) in ``path`` ([] if there is none)."""
    try:
        names = os.listdir(path)
    except OSError:
        return []
    return sorted(os.path.join(path, n) for n in names if n.endswith(_ENTRY_SUFFIXES[0]))


def size_bytes(path: str) -> int:
    """The bytes of every file under ``path`` (0 if there is none)."""
    total = 0
    for root, _, files in os.walk(path):
        for n in files:
            try:
                total += os.lstat(os.path.join(root, n)).st_size
            except OSError:
                pass
    return total


def clear(path: str) -> int:
    """Remove the cache's entries from ``path``: only what JAX writes there (``*-cache``, ``*-atime``, its lock
    file and XLA's GPU cache folders), so a directory that also holds other files keeps them. Returns the
    number of entries removed."""
    import shutil

    try:
        names = os.listdir(path)
    except FileNotFoundError:
        return 0
    removed = 0
    for n in names:
        p = os.path.join(path, n)
        if n in _JAX_DIRS and os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p)
        elif n.endswith(_ENTRY_SUFFIXES) or n in _JAX_FILES:
            os.remove(p)
            removed += n.endswith(_ENTRY_SUFFIXES[0])
    return removed


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


DESCRIPTION = """\
The persistent JAX compilation cache that every rmtheory command uses: compiled functions are kept
on disk and reused by later runs, with identical results. Location: $RMTHEORY_CACHE_DIR, else
$XDG_CACHE_HOME/rmtheory/jax, else ~/.cache/rmtheory/jax. RMTHEORY_NO_CACHE=1 turns it off."""

EPILOG = """\
examples:
  rmtheory cache info                          where the cache is, whether it is on, entries, size
  rmtheory cache clear                         remove its entries (the next commands compile afresh)
  RMTHEORY_CACHE_DIR=/tmp/jax rmtheory verify  use another directory
  RMTHEORY_NO_CACHE=1 rmtheory verify          run without it (nothing is read or written)"""

ACTIONS = {
    "info": ("path, on/off, number of entries and size on disk",
             "Print the cache's path, whether it is on (off with RMTHEORY_NO_CACHE, or when the directory\n"
             "cannot be written), its number of entries and their size on disk.",
             "examples:\n  rmtheory cache info\n  RMTHEORY_CACHE_DIR=/tmp/jax rmtheory cache info"),
    "clear": ("remove the cache's entries",
              "Remove the cache's entries: only the files JAX writes there, so other files in the\n"
              "directory stay. The next commands compile afresh and fill it again.",
              "examples:\n  rmtheory cache clear\n  RMTHEORY_CACHE_DIR=/tmp/jax rmtheory cache clear"),
}


def configure(p: argparse.ArgumentParser):
    p.description, p.epilog, p.formatter_class = DESCRIPTION, EPILOG, argparse.RawDescriptionHelpFormatter
    actions = p.add_subparsers(dest="action", required=True, metavar="{info,clear}")
    for name, (help_, description, epilog) in ACTIONS.items():
        actions.add_parser(name, help=help_, description=description, epilog=epilog,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    return p


def main(args) -> int:
    from .cli import fail

    path = cache_dir()
    if args.action == "clear":
        try:
            n = clear(path)
        except OSError as e:
            return fail("cache", f"cannot clear {path}: {e.strerror or e}")
        print(f"removed {n} entries from {path}")
        return 0
    if disabled():
        state = f"off ({ENV_OFF} is set)"
    elif os.path.isdir(path):
        problem = writable_problem(path)
        state = "on" if problem is None else f"not writable ({problem}): commands run uncached"
    else:
        parent = path
        while not os.path.lexists(parent):
            parent = os.path.dirname(parent)
        state = ("on (the first command creates the directory)" if os.path.isdir(parent)
                 else f"not writable ({parent} is not a directory): commands run uncached")
    print(f"path     {path}")
    print(f"state    {state}")
    print(f"entries  {len(entries(path))}")
    print(f"size     {_megabytes(size_bytes(path))}")
    return 0
