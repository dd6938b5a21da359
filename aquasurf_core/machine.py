"""The machine a stored result was computed on, as the manifests of benchmarks, searches and
the space map record it (timings in those manifests mean little without it)."""

from __future__ import annotations

import os
import platform

__all__ = ["describe_machine"]


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (Linux); ``platform.processor()`` (often
    empty) elsewhere."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def describe_machine() -> dict:
    """``{"system", "machine", "cpu", "cpus", "python"}``: the operating system, the
    architecture, the CPU model, the number of logical CPUs and the Python version."""
    return {"system": platform.system(), "machine": platform.machine(), "cpu": cpu_model(),
            "cpus": os.cpu_count(), "python": platform.python_version()}
