"""Machine facts the benchmarks print (a script's own directory is on sys.path, so ``from _machine import …``)."""

import platform


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (else what ``platform`` knows)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"
