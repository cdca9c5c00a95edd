"""End-to-end: the Snakemake workflow on config/ci.yaml in a temporary copy of the repository (the ``ci_workflow``
fixture of conftest.py: run, report, and a second run from scratch: the SLURM test's where it ran, else a local
--forceall rerun), every figure included."""

from __future__ import annotations

import pandas as pd
import pytest
import xarray as xr

from conftest import run_snakemake
from mesodyn.config import fit_runs, load_config
from mesodyn.fields import read_fields
from mesodyn.figure_plan import (hypotheses_targets, identifiability_entries, identifiability_plan,
                                 identifiability_targets, long_horizon_plan, long_horizon_targets)
from mesodyn.plotting import FIGURES, diagnostic_plan, figure_plan, figure_targets

pytestmark = pytest.mark.workflow


def test_ci_workflow_runs_end_to_end_and_is_byte_stable(ci_workflow):
    workdir = ci_workflow["workdir"]
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
    # every figure of the config, from tiny data: PDF, PNG and the numbers it shows
    config = load_config(workdir / "config" / "ci.yaml")
    plan = figure_plan(config)
    assert {figure for figure, _ in plan} == set(FIGURES)
    for target in figure_targets(config):
        assert (workdir / target).stat().st_size > 0, target
    for entry in diagnostic_plan(config).values():
        assert (workdir / entry["path"]).stat().st_size > 0, entry["path"]
    # the long horizons of every fitted run and their table (every ci run: 40 steps from each held-out state)
    horizons = long_horizon_plan(config)
    assert {(e["dataset"], e["run"]) for e in horizons} == {(d, r) for d, r, _ in fit_runs(config)}
    for entry in horizons:
        ds = xr.load_dataset(workdir / entry["path"])
        assert ds.sizes["step"] == 41 and ds["first_nonfinite_step"].sizes["sample"] > 0, entry["path"]
    table = pd.read_csv(workdir / "results" / "tables" / "long_horizon.csv")
    assert len(table) == len({(e["dataset"], e["run"]) for e in horizons}) and (table["n_steps"] == 40).all()
    assert long_horizon_targets(config) and all((workdir / t).stat().st_size > 0 for t in long_horizon_targets(config))
    # what the model learned: a row per data set the diagnosed run is fitted on, and one per other compared hypothesis
    # class (speconsnet_m_local on allen_cahn and kdv); one seed here: no spread
    ident = pd.read_csv(workdir / "results" / "tables" / "identifiability.csv")
    assert set(ident["dataset"]) == set(identifiability_plan(config))
    assert sorted(zip(ident["dataset"], ident["run"])) == sorted(
        (e["dataset"], e["run"]) for e in identifiability_entries(config))
    assert {("allen_cahn", "speconsnet_m_local"), ("kdv", "speconsnet_m_local")} <= set(zip(ident["dataset"],
                                                                                           ident["run"]))
    assert set(ident.loc[ident["dataset"].isin(["fput", "fene"]), "truth"]) == {"fput", "fene"}
    assert ident["rate_zero_spread"].isna().all() and ident["identified"].isna().all()
    # hypotheses compared where both runs are fitted (allen_cahn and kdv), one preferred per data set
    hyp = pd.read_csv(workdir / "results" / "tables" / "hypotheses.csv")
    assert sorted(set(hyp["dataset"])) == ["allen_cahn", "kdv"] and len(hyp) == 4
    assert hyp.groupby("dataset")["preferred"].sum().tolist() == [1, 1] and (hyp["free_parameters"] > 0).all()
    assert set(hyp["hypothesis"]) == {"M + W; V local + nonlocal", "M; V local"}
    for target in hypotheses_targets(config) + identifiability_targets(config):
        assert (workdir / target).stat().st_size > 0, target
    first, second = ci_workflow["first"], ci_workflow["rerun"]()
    assert first.keys() == second.keys()
    changed = [str(k) for k in first if first[k] != second[k]]
    assert not changed, f"outputs not byte-identical on rerun: {changed}"
    assert (workdir / "results" / "report.html").stat().st_size > 0


def test_config_mistake_is_one_clear_line(workflow_copy):
    proc = run_snakemake(workflow_copy, "-n", "--configfile", "config/ci.yaml", "--config", "seeed=3", check=False)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("mesodyn:")]
    assert errors == ["mesodyn: unknown config key 'seeed' at the top level; allowed keys: "
                      + errors[0].split("allowed keys: ")[1]]
    assert "Traceback" not in proc.stderr
