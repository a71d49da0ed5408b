"""Atomic file writes: write to a temporary file in the same directory, then ``os.replace`` it into place,
so an interrupted job never leaves a half-written artifact behind (used by the LM pipeline and the figures)."""

from __future__ import annotations

import os
import tempfile


def _tmp(path: str) -> str:
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-" + os.path.basename(path) + "-")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the artifact the usual permissions
    return tmp


def atomic(write, path: str) -> str:
    """Call ``write(tmp)`` then move ``tmp`` onto ``path`` atomically; returns ``path``."""
    tmp = _tmp(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
