"""pyproject.toml (dependencies + the dev extra) and environment.yml must list the same
packages, once conda names are mapped to pip names."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest itself depends on tomli before Python 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]

# conda-forge name -> pip name, where they differ
CONDA_TO_PIP = {"pytorch": "torch", "python-kaleido": "kaleido"}
# conda packages that together are one pip requirement with extras
CONDA_BUNDLES = {frozenset({"dask", "distributed"}): "dask[distributed]"}
# conda entries that are not packages of the project (the interpreter, the installer)
CONDA_TOOLING = {"python", "pip"}


def _pip_key(requirement: str) -> str:
    req = Requirement(requirement)
    extras = f"[{','.join(sorted(canonicalize_name(e) for e in req.extras))}]" if req.extras else ""
    return canonicalize_name(req.name) + extras


def pip_packages(pyproject: dict) -> set[str]:
    """Canonical pip names (with extras) of ``dependencies`` and the ``dev`` extra."""
    project = pyproject["project"]
    requirements = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    return {_pip_key(r) for r in requirements}


def conda_packages(environment: dict) -> set[str]:
    """The environment's packages under their pip names (conda names mapped, bundles merged,
    python/pip and the editable install of the project itself left out)."""
    conda: set[str] = set()
    pip: set[str] = set()
    for entry in environment["dependencies"]:
        if isinstance(entry, dict):
            for requirement in entry.get("pip", []):
                if requirement.strip().startswith("-e") or requirement.strip() == ".":
                    continue
                pip.add(_pip_key(requirement))
            continue
        name = re.split(r"[\s=<>!~]", entry.strip(), maxsplit=1)[0]
        name = canonicalize_name(name)
        if name not in CONDA_TOOLING:
            conda.add(CONDA_TO_PIP.get(name, name))
    for members, combined in CONDA_BUNDLES.items():
        if members <= conda:
            conda -= members
            conda.add(combined)
    return conda | pip


def drift(pyproject: dict, environment: dict) -> tuple[set[str], set[str]]:
    """``(only in pyproject, only in environment.yml)``; both empty when in sync."""
    pip, conda = pip_packages(pyproject), conda_packages(environment)
    return pip - conda, conda - pip


def python_requirement(environment: dict) -> str | None:
    for entry in environment["dependencies"]:
        if isinstance(entry, str) and re.match(r"python\s*[<>=!~]", entry.strip()):
            return entry.strip().removeprefix("python").strip()
    return None


def load() -> tuple[dict, dict]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    environment = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    return pyproject, environment


def test_pyproject_and_environment_yml_list_the_same_packages():
    pyproject, environment = load()
    only_pip, only_conda = drift(pyproject, environment)
    assert not only_pip, f"in pyproject.toml but not environment.yml: {sorted(only_pip)}"
    assert not only_conda, f"in environment.yml but not pyproject.toml: {sorted(only_conda)}"
    assert len(pip_packages(pyproject)) >= 15  # the files were actually read


def test_python_version_agrees():
    pyproject, environment = load()
    assert python_requirement(environment) == pyproject["project"]["requires-python"]


def test_the_environment_installs_the_project_itself():
    _, environment = load()
    pip_section = next(e["pip"] for e in environment["dependencies"] if isinstance(e, dict))
    assert "-e ." in pip_section


PYPROJECT = {"project": {"dependencies": ["torch>=2", "kaleido", "dask[distributed]", "mnist1d",
                                          "scikit-learn"],
                         "optional-dependencies": {"dev": ["pytest"]}}}
ENVIRONMENT = {"dependencies": ["python>=3.10", "pip", "pytorch>=2", "python-kaleido", "dask",
                                "distributed", "scikit-learn", "pytest",
                                {"pip": ["mnist1d", "-e ."]}]}


def test_name_mapping_on_a_synced_example():
    assert drift(PYPROJECT, ENVIRONMENT) == (set(), set())
    assert conda_packages(ENVIRONMENT) == {"torch", "kaleido", "dask[distributed]", "mnist1d",
                                           "scikit-learn", "pytest"}


@pytest.mark.parametrize(
    ("remove", "add", "expected"),
    [
        ("pytorch>=2", None, ({"torch"}, set())),
        ("distributed", None, ({"dask[distributed]"}, {"dask"})),
        (None, "matplotlib", (set(), {"matplotlib"})),
        (None, {"pip": ["tabulate"]}, (set(), {"tabulate"})),
        ("pytest", None, ({"pytest"}, set())),
    ],
)
def test_drift_is_detected(remove, add, expected):
    deps = [d for d in ENVIRONMENT["dependencies"] if d != remove]
    if add is not None:
        deps.append(add)
    assert drift(PYPROJECT, {"dependencies": deps}) == expected
