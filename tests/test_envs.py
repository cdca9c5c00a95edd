"""The conda environments offered for --sdm conda agree with pyproject.toml."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
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


def test_env_pins_equal_pyproject_pins():
    project = _pyproject()
    for path in sorted((ROOT / "envs").glob("*.yaml")):
        for name, spec in _env(path).items():
            assert name in project, f"{path.name}: {name} is not a dependency in pyproject.toml"
            assert spec == project[name], f"{path.name}: {name}{spec} but pyproject.toml has {name}{project[name]}"


def test_envs_cover_every_runtime_dependency():
    covered = set().union(*(_env(p) for p in (ROOT / "envs").glob("*.yaml")))
    missing = set(_pyproject()) - covered
    assert not missing, f"no conda environment provides {sorted(missing)}"


def test_every_rule_names_an_existing_env():
    for smk in (ROOT / "workflow" / "rules").glob("*.smk"):
        for env in re.findall(r'conda:\s*\n?\s*"([^"]+)"', smk.read_text()):
            assert (smk.parent / env).resolve().exists(), f"{smk.name} names missing env {env}"
