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


def loadavg() -> str:
    """The 1, 5 and 15-minute load averages from /proc/loadavg ("n/a" where there is none)."""
    try:
        return " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "n/a"


def cpus_line() -> str:
    """"cpus available: N; load average: L" (N the CPUs this process may run on, L the 1-minute load), or "" where
    the platform tells neither."""
    import os

    try:
        return f"cpus available: {len(os.sched_getaffinity(0))}; load average: {os.getloadavg()[0]:.2f}"
    except (AttributeError, OSError):
        return ""
