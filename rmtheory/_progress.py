"""One progress line on stderr for long work (the figures' slow steps): ``label [i/n] step … 12 s``.

On a terminal the line is redrawn in place every second by a daemon thread, so the clock moves during a long
compiled call; elsewhere (a log, CI) each step is printed once, as its own line. Used as::

    with Progress("fig1", 3) as p:
        p.step("tabular t_γ (6,448 instances)")
        ...
        p.step("MLP policy t_γ and J_T")
"""

from __future__ import annotations

import sys
import threading
import time


class Progress:
    def __init__(self, label: str, n_steps: int, stream=None, interval: float = 1.0):
        self.label, self.n = label, n_steps
        self.stream = sys.stderr if stream is None else stream
        self.interval = interval
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.i, self.what, self.t0 = 0, "", time.perf_counter()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = None

    def _line(self) -> str:
        return f"{self.label} [{self.i}/{self.n}] {self.what} … {time.perf_counter() - self.t0:.0f} s"

    def _draw(self):
        with self._lock:
            self.stream.write("\r\033[K" + self._line())
            self.stream.flush()

    def _tick(self):
        while not self._stop.wait(self.interval):
            self._draw()

    def step(self, what: str) -> None:
        """Start the next step (``what`` names it)."""
        self.i, self.what = self.i + 1, what
        if self.tty:
            self._draw()
            if self._thread is None:
                self._thread = threading.Thread(target=self._tick, daemon=True)
                self._thread.start()
        else:
            print(self._line(), file=self.stream, flush=True)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.tty and self.i:
            with self._lock:
                self.stream.write("\r\033[K")
                self.stream.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
