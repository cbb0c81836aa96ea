"""The two ways to install (pip with pyproject.toml, conda with environment.yml)
must give the same packages at the same versions."""

import re
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _environment_python() -> str:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    return next(e.split("=")[1] for e in env["dependencies"] if isinstance(e, str) and e.startswith("python="))


def _pyproject_pins(python_version: str) -> dict[str, str]:
    """NAME -> VERSION for the requirements that apply on `python_version`."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    pins = {}
    for text in requirements:
        requirement = Requirement(text)
        specifiers = list(requirement.specifier)
        assert len(specifiers) == 1 and specifiers[0].operator == "==", (
            f"pyproject.toml: {text!r} is not pinned as NAME==VERSION"
        )
        if requirement.marker is None or requirement.marker.evaluate({"python_version": python_version}):
            pins[_normalise(requirement.name)] = specifiers[0].version
    return pins


def _environment_pins() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pins = {}
    for entry in env["dependencies"]:
        if isinstance(entry, dict):
            for requirement in entry["pip"]:
                if requirement.startswith("-e"):
                    continue
                name, _, version = requirement.partition("==")
                pins[_normalise(name)] = version
        else:
            name, _, version = entry.partition("=")
            if name not in ("python", "pip"):
                pins[_normalise(name)] = version
    return pins


def test_pyproject_and_environment_name_the_same_packages_and_versions():
    pyproject, environment = _pyproject_pins(_environment_python()), _environment_pins()
    assert sorted(pyproject) == sorted(environment), (
        f"only in pyproject.toml: {sorted(set(pyproject) - set(environment))}; "
        f"only in environment.yml: {sorted(set(environment) - set(pyproject))}"
    )
    differing = {n: (pyproject[n], environment[n]) for n in pyproject if pyproject[n] != environment[n]}
    assert not differing, f"versions differ (pyproject, environment): {differing}"


def test_environment_installs_the_package_itself():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(entry["pip"] for entry in env["dependencies"] if isinstance(entry, dict))
    assert "-e ." in pip_section
