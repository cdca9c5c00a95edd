"""The workflow deployed as a Snakemake module into a folder of one's own, as snakedeploy writes it (README, "Use it in
your own project"): an empty folder with its own ``config/config.yaml`` and a Snakefile that imports this workflow
with ``module`` and ``use rule *``. On ``config/ci.yaml`` it gives every file under ``results/`` byte-identical to the
workflow run in a copy of the repository (the suite's ``ci_workflow``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import run_snakemake

ROOT = Path(__file__).resolve().parents[1]

DEPLOYED_SNAKEFILE = '''\
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


# snakedeploy writes github("<owner>/mesodyn", path="workflow/Snakefile", tag="v<version>") here
module mesodyn:
    snakefile:
        "{snakefile}"
    config:
        config


use rule * from mesodyn
'''


@pytest.mark.workflow
@pytest.mark.slow
def test_module_deployment_reproduces_the_repository_run(tmp_path, ci_workflow):
    (tmp_path / "config").mkdir()
    shutil.copy2(ROOT / "config" / "ci.yaml", tmp_path / "config" / "config.yaml")
    (tmp_path / "Snakefile").write_text(DEPLOYED_SNAKEFILE.format(snakefile=ROOT / "workflow" / "Snakefile"))
    run_snakemake(tmp_path)
    ours = {p.relative_to(tmp_path): p.read_bytes() for p in (tmp_path / "results").rglob("*") if p.is_file()}
    reference = ci_workflow["first"]
    assert sorted(ours) == sorted(reference)
    differ = sorted(str(name) for name in reference if ours[name] != reference[name])
    assert not differ, f"the deployed workflow's outputs differ from the repository run's: {differ}"
    # nothing of the workflow was copied into the user's folder: it holds their config, Snakefile and the outputs
    assert {p.name for p in tmp_path.iterdir()} <= {"config", "Snakefile", "results", "logs", ".snakemake"}
