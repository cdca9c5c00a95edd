"""File-level steps: byte-identical outputs whatever the thread count; the CLI's clear errors."""

from __future__ import annotations

import numba
import pytest

from mesodyn.cli import main
from mesodyn.config import validate_config
from mesodyn.pipeline import simulate_chain_files


@pytest.mark.parametrize("name", ["fput", "fene"])
def test_files_byte_identical_across_thread_counts(tmp_path, name, monkeypatch):
    monkeypatch.setenv("MESODYN_GIT_COMMIT", "pinned")
    config = validate_config({"progress": False, "micro": {"keep": 3},
                              "data": {name: {"n_samples": 5, "t_final": 0.02, "save_every": 10}}},
                             data=[name], fits=())  # what `mesodyn simulate` checks: 5 trajectories fit no split
    outputs = []
    for threads in (1, numba.config.NUMBA_NUM_THREADS):
        out = tmp_path / f"t{threads}"
        simulate_chain_files(name, config, fields_path=out / "f.nc", micro_path=out / "m.nc", threads=threads)
        outputs.append(((out / "f.nc").read_bytes(), (out / "m.nc").read_bytes()))
    assert outputs[0] == outputs[1]


def test_cli_reports_config_mistakes_in_one_line(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("data:\n  fput:\n    n_samples: -2\n")
    assert main(["simulate", "fput", "--config", str(config), "--out", str(tmp_path / "x.nc")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "mesodyn: config key 'data.fput.n_samples' = -2 is invalid: -2 is less than the minimum of 1."
    assert main(["simulate", "fput", "--config", str(tmp_path / "missing.yaml"), "--out", "x.nc"]) == 2
    assert "No such file" in capsys.readouterr().err


def test_cli_simulates_with_overrides(tmp_path):
    out = tmp_path / "fene.nc"
    rc = main(["simulate", "fene", "--config", "config/ci.yaml", "--set", "data.fene.n_samples=2",
               "--set", "progress=false", "--out", str(out)])
    assert rc == 0
    import xarray as xr

    assert xr.open_dataset(out).sizes["sample"] == 2


def test_cli_solves_a_pde_data_set(tmp_path):
    out = tmp_path / "ac.nc"
    rc = main(["solve", "allen_cahn", "--config", "config/ci.yaml", "--set", "data.allen_cahn.n_samples=2",
               "--set", "progress=false", "--out", str(out)])
    assert rc == 0
    from mesodyn.fields import read_fields

    ds = read_fields(out)
    assert ds.sizes["sample"] == 2 and float(abs(ds.u).max()) <= 1.0 + 1e-12


def test_the_longest_jobs_are_scheduled_first(workflow_copy):
    """Priorities (mesodyn.pipeline.job_priority): every data job first, then the 2-D data set's jobs, then the fits
    by their work (steps x stages), then everything else. Read off the default config's dry run."""
    import re

    from conftest import run_snakemake
    from mesodyn.pipeline import DATA_PRIORITY, job_priority

    avf = {"name": "speconsnet", "stepper": "avf", "substeps": 2, "train_stepper": "etdrk2", "train_substeps": 1}
    assert job_priority("allen_cahn_2d") == 5 and job_priority("fene") == 0
    assert job_priority("allen_cahn_2d", data=True) == DATA_PRIORITY + 5
    assert job_priority("fene", avf, {"max_epochs": 5000, "batches_per_epoch": 1}) == 3
    assert job_priority("fene", avf, {"max_epochs": 3000, "batches_per_epoch": 1}) == 2
    assert job_priority("fene", {"name": "speconsnet"}, {"max_epochs": 3000, "batches_per_epoch": 2}) == 2
    assert job_priority("fene", {"name": "speconsnet", "substeps": 4}, {"max_epochs": 3000}) == 3
    assert job_priority("fene", {"name": "onsagernet"}, {"max_epochs": 400, "batches_per_epoch": 1}) == 1
    assert job_priority("allen_cahn_2d", avf, {"max_epochs": 5000}) == 5
    assert job_priority("not_registered") == 0  # (fit.smk on its own takes any data set name)
    out = run_snakemake(workflow_copy, "-n", "--forceall").stdout
    seen = {}
    for block in out.split("\n\n"):
        rule = re.search(r"^(?:local)?rule (\w+):", block, re.M)
        wildcards = re.search(r"wildcards: (.*)", block)
        priority = re.search(r"priority: (\d+)", block)
        if rule and wildcards:
            seen[(rule.group(1), wildcards.group(1))] = int(priority.group(1)) if priority else 0
    assert seen[("solve_pde", "dataset=allen_cahn_2d")] == 105 and seen[("solve_pde", "dataset=kdv")] == 100
    assert seen[("simulate_chain", "dataset=fene")] == 100
    assert seen[("fit", "dataset=allen_cahn_2d, model=speconsnet, seed=43")] == 5
    assert seen[("fit", "dataset=fene, model=speconsnet_avf, seed=42")] == 3     # 8000 steps x 2 stages
    assert seen[("fit", "dataset=fene, model=speconsnet, seed=42")] == 2         # 8000 steps
    assert seen[("fit", "dataset=allen_cahn, model=speconsnet, seed=42")] == 1   # 3000 steps
    assert seen[("long_horizon", "dataset=allen_cahn_2d, model=speconsnet_avf, seed=42")] == 5
    assert seen[("evaluate", "dataset=allen_cahn_2d, model=classical, seed=42")] == 5
    assert seen[("evaluate", "dataset=fene, model=classical, seed=42")] == 0
    assert seen[("ood_evaluate", "dataset=allen_cahn_2d, model=speconsnet, seed=42")] == 5
