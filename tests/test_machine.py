"""The machine description that manifests record."""

import os
import platform

from aquasurf_core.machine import cpu_model, describe_machine


def test_describe_machine_names_the_system_cpu_and_python():
    machine = describe_machine()
    assert set(machine) == {"system", "machine", "cpu", "cpus", "python"}
    assert machine["cpus"] == os.cpu_count() and machine["python"] == platform.python_version()
    assert machine["system"] == platform.system() and isinstance(machine["cpu"], str)
    if os.path.exists("/proc/cpuinfo") and "model name" in open("/proc/cpuinfo").read():
        assert cpu_model() and cpu_model() in open("/proc/cpuinfo").read()
