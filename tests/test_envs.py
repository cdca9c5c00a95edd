"""The conda environments offered for --sdm conda (workflow/envs/) are pinned, and every pin lies inside the range
pyproject.toml declares."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]
ENVS = ROOT / "workflow" / "envs"
CONDA_NAMES = {"torch": "pytorch", "netcdf4": "netcdf4"}
WORKFLOW_ONLY = {"snakemake", "snakemake-executor-plugin-slurm"}  # run the workflow; not needed inside a job


def _split(requirement: str) -> tuple[str, str]:
    name, spec = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", requirement.strip()).groups()
    return name.lower().replace("_", "-"), spec.replace(" ", "")


def _pyproject() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps = dict(_split(r) for r in data["project"]["dependencies"])
    return {CONDA_NAMES.get(k, k): v for k, v in deps.items() if k not in WORKFLOW_ONLY}


def _env(path: Path) -> dict[str, str]:
    spec = yaml.safe_load(path.read_text())
    return dict(_split(d) for d in spec["dependencies"] if isinstance(d, str) and not d.startswith("python"))


def _envs() -> list[Path]:
    paths = sorted(ENVS.glob("*.yaml"))
    assert paths, f"no conda environment in {ENVS}"
    return paths


def test_every_env_pin_is_exact_and_inside_pyproject_range():
    project = _pyproject()
    for path in _envs():
        for name, spec in _env(path).items():
            assert name in project, f"{path.name}: {name} is not a dependency in pyproject.toml"
            assert spec.startswith("==") and "*" not in spec, f"{path.name}: {name}{spec} is not pinned to a version"
            version = spec[2:]
            assert version in SpecifierSet(project[name]), (
                f"{path.name}: {name}=={version} is outside pyproject.toml's {name}{project[name]}")


def test_envs_agree_with_each_other():
    seen: dict[str, tuple[str, str]] = {}
    for path in _envs():
        for name, spec in _env(path).items():
            if name in seen:
                assert seen[name][1] == spec, f"{name}: {seen[name][0]} has {seen[name][1]}, {path.name} has {spec}"
            seen[name] = (path.name, spec)


def test_envs_cover_every_runtime_dependency():
    covered = set().union(*(_env(p) for p in _envs()))
    missing = set(_pyproject()) - covered
    assert not missing, f"no conda environment provides {sorted(missing)}"


def test_every_rule_names_an_existing_env():
    rules = list((ROOT / "workflow" / "rules").glob("*.smk"))
    named = 0
    for smk in rules:
        for env in re.findall(r'conda:\s*\n?\s*"([^"]+)"', smk.read_text()):
            named += 1
            assert (smk.parent / env).resolve().is_relative_to(ENVS), f"{smk.name}: {env} is not in workflow/envs/"
            assert (smk.parent / env).resolve().exists(), f"{smk.name} names missing env {env}"
    assert named, "no rule names a conda environment"
