"""End-to-end: the Snakemake workflow on config/ci.yaml in a temporary copy of the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mesodyn.fields import read_fields

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    work = tmp_path_factory.mktemp("workflow")
    for item in ("Snakefile", "workflow", "config", "profiles", "envs"):
        src = ROOT / item
        if src.is_dir():
            shutil.copytree(src, work / item)
        elif src.exists():
            shutil.copy2(src, work / item)
    return work


def _run(work, *args, check=True):
    # the commit is pinned so that commits landing during the test cannot change the provenance attribute
    env = {**os.environ, "MESODYN_GIT_COMMIT": "pinned-for-test"}
    proc = subprocess.run([*SNAKEMAKE, "--cores", "2", *args], cwd=work, capture_output=True, text=True,
                          timeout=1500, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def test_ci_workflow_runs_end_to_end_and_is_byte_stable(workdir):
    _run(workdir, "--configfile", "config/ci.yaml")
    for name in ("fput", "fene"):
        ds = read_fields(workdir / "results" / "data" / f"{name}.nc")  # validates the contract
        assert ds.sizes["sample"] == 4 and ds.attrs["model"] == name
        assert (workdir / "results" / "micro" / f"{name}.nc").exists()
        assert (workdir / "logs" / "data" / f"{name}.log").stat().st_size > 0
    for name in ("fput", "fene", "kdv", "allen_cahn", "allen_cahn_2d"):
        read_fields(workdir / "results" / "data" / f"{name}.nc")
        run = workdir / "results" / "models" / name / "speconsnet" / "seed0"
        for item in ("weights.pt", "model.json", "history.csv", "split.json"):
            assert (run / item).stat().st_size > 0, run / item
    first = {p.relative_to(workdir): p.read_bytes() for p in (workdir / "results").rglob("*") if p.is_file()}
    _run(workdir, "--configfile", "config/ci.yaml", "--forceall")
    second = {p.relative_to(workdir): p.read_bytes() for p in (workdir / "results").rglob("*") if p.is_file()}
    assert first.keys() == second.keys()
    changed = [str(k) for k in first if first[k] != second[k]]
    assert not changed, f"outputs not byte-identical on rerun: {changed}"


def test_config_mistake_is_one_clear_line(workdir):
    proc = _run(workdir, "-n", "--configfile", "config/ci.yaml", "--config", "seeed=3", check=False)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("mesodyn:")]
    assert errors == ["mesodyn: unknown config key 'seeed' at the top level; allowed keys: "
                      + errors[0].split("allowed keys: ")[1]]
    assert "Traceback" not in proc.stderr
