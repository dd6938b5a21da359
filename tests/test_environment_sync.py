"""pyproject.toml (ranges), requirements.lock (the exact closure, with hashes), lock-pins.txt
and environment.yml (conda: the lock's pins through pip) must agree.

* every dependency of pyproject.toml (and its ``dev`` extra) is pinned in the lock, at a
  version its range admits;
* every pin of lock-pins.txt is the lock's version;
* every pin of the lock carries at least one sha256 hash (``make`` installs with
  ``--require-hashes``);
* environment.yml pins exactly the lock's packages and versions, installs the project itself,
  and uses the lock's Python, which pyproject's ``requires-python`` admits.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest itself depends on tomli before Python 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def lock_pins(text: str) -> dict[str, str]:
    """``{canonical name: version}`` of every ``name==version`` line of a lock."""
    return {canonicalize_name(m.group(1)): m.group(2)
            for line in text.splitlines() if (m := PIN.match(line))}


def unhashed_pins(text: str) -> list[str]:
    """Pins of a lock not followed by a ``--hash=sha256:`` continuation line."""
    lines = text.splitlines()
    missing = []
    for i, line in enumerate(lines):
        m = PIN.match(line)
        if m and not (i + 1 < len(lines) and "--hash=sha256:" in lines[i + 1]):
            missing.append(m.group(1))
    return missing


def project_requirements(pyproject: dict) -> list[Requirement]:
    project = pyproject["project"]
    return [Requirement(r) for r in
            [*project["dependencies"], *project["optional-dependencies"]["dev"]]]


def lock_problems(requirements: list[Requirement], pins: dict[str, str]) -> list[str]:
    """Project requirements the lock does not pin, or pins outside the requirement's range."""
    problems = []
    for req in requirements:
        version = pins.get(canonicalize_name(req.name))
        if version is None:
            problems.append(f"{req.name} is not in the lock")
        elif not req.specifier.contains(Version(version), prereleases=True):
            problems.append(f"{req.name}=={version} is outside {req.specifier}")
    return problems


def environment_pins(environment: dict) -> tuple[dict[str, str], list[str], str | None]:
    """``(pins of the pip section, its other entries, the python version)``."""
    pins, other, python = {}, [], None
    for entry in environment["dependencies"]:
        if isinstance(entry, dict):
            for requirement in entry.get("pip", []):
                m = PIN.match(requirement.strip())
                if m:
                    pins[canonicalize_name(m.group(1))] = m.group(2)
                else:
                    other.append(requirement.strip())
        elif re.match(r"python\s*=", entry.strip()):
            python = entry.strip().split("=", 1)[1].strip()
    return pins, other, python


def drift(lock: dict[str, str], environment: dict[str, str]) -> dict[str, tuple]:
    """``{name: (lock version, environment version)}`` where the two differ (None: absent)."""
    return {name: (lock.get(name), environment.get(name))
            for name in sorted(set(lock) | set(environment))
            if lock.get(name) != environment.get(name)}


def load() -> tuple[dict, str, dict, str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    lock = (ROOT / "requirements.lock").read_text(encoding="utf-8")
    environment = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    pins_file = (ROOT / "lock-pins.txt").read_text(encoding="utf-8")
    return pyproject, lock, environment, pins_file


def test_lock_pins_every_project_dependency_within_its_range():
    pyproject, lock, _, _ = load()
    requirements = project_requirements(pyproject)
    assert len(requirements) >= 18  # the files were actually read
    assert lock_problems(requirements, lock_pins(lock)) == []


def test_lock_honours_lock_pins_and_hashes_everything():
    _, lock, _, pins_file = load()
    pins = lock_pins(lock)
    chosen = lock_pins(pins_file)
    assert chosen, "lock-pins.txt pins nothing"
    assert {name: pins.get(name) for name in chosen} == chosen
    assert unhashed_pins(lock) == []
    assert len(pins) > 100  # the whole closure, not just the direct dependencies


def test_environment_yml_pins_exactly_the_lock():
    pyproject, lock, environment, _ = load()
    pins, other, python = environment_pins(environment)
    assert drift(lock_pins(lock), pins) == {}
    assert other == ["-e ."]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    lock_python = re.search(r"^LOCK_PYTHON := (\S+)", makefile, re.M).group(1)
    assert python == lock_python
    assert SpecifierSet(pyproject["project"]["requires-python"]).contains(lock_python + ".0")


LOCK = """\
numpy==2.4.6 \\
    --hash=sha256:aa
torch==2.14.1 \\
    --hash=sha256:bb \\
    --hash=sha256:cc
    # via aquasurf-core
tqdm==4.70.1
"""


def test_checks_detect_drift_on_examples():
    pins = lock_pins(LOCK)
    assert pins == {"numpy": "2.4.6", "torch": "2.14.1", "tqdm": "4.70.1"}
    assert unhashed_pins(LOCK) == ["tqdm"]
    assert lock_problems([Requirement("numpy>=1.26"), Requirement("torch<2.14"),
                          Requirement("scipy")], pins) == [
        "torch==2.14.1 is outside <2.14", "scipy is not in the lock"]
    env = {"dependencies": ["python=3.11", "pip",
                            {"pip": ["numpy==2.4.6", "torch==2.15.0", "-e ."]}]}
    env_pins, other, python = environment_pins(env)
    assert (other, python) == (["-e ."], "3.11")
    assert drift(pins, env_pins) == {"torch": ("2.14.1", "2.15.0"), "tqdm": ("4.70.1", None)}


@pytest.mark.parametrize("line", ["-r requirements.lock", "torch>=2"])
def test_unpinned_environment_entries_are_not_pins(line):
    pins, other, _ = environment_pins({"dependencies": [{"pip": [line]}]})
    assert pins == {} and other == [line]
