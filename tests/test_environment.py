"""The conda environment and the pip requirements describe the same package set."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _pins(lines):
    pins = {}
    for line in lines:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)==([^\s;]+)", line.strip())
        if m:
            pins[m.group(1).lower()] = m.group(2)
    return pins


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["test"]
    pip_pins = _pins(declared)
    assert len(pip_pins) == len(declared), "every dependency in pyproject.toml is pinned with =="

    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_pins = _pins(pip_section)
    assert conda_pins == pip_pins
    assert pip_pins["torch"] == "2.13.0"


def test_installed_versions_match_pins():
    from importlib.metadata import version

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for name, pinned in _pins(project["dependencies"]).items():
        installed = version(name).split("+")[0]
        assert installed == pinned, f"{name}: installed {installed}, pinned {pinned}"
