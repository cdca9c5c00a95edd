"""A data set of the user's own (docs/your-data.md): the registry entry from the config, the bad files that stop
with one sentence and write nothing, and the worked example (examples/make_cahn_hilliard.py, config/example.yaml)
through the whole workflow."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from mesodyn.config import ConfigError, validate_config
from mesodyn.fields import FieldsContractError
from mesodyn.figure_plan import figure_plan
from mesodyn.pipeline import user_data_files
from mesodyn.registry import MODELS, USER_DATASETS, dataset_info

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "make_cahn_hilliard.py"
NAME = "cahn_hilliard"
TINY_DATA = ["--n-samples", "8", "--n-grid", "32", "--frames", "12"]
TINY_FIT = {
    "models": {"speconsnet": {"name": "speconsnet", "hidden": 8, "nonlocal_modes": 4},
               "fno": {"name": "fno", "n_modes": 4, "hidden_channels": 4},
               "onsagernet": {"name": "onsagernet", "hidden": 16, "rank_m": 2, "rank_w": 2},
               "res_onsagernet": {"name": "res_onsagernet", "hidden": 16},
               "conserved_m": {"name": "speconsnet", "hidden": 8, "nonlocal_modes": 0, "operators": "M",
                               "conserved": True, "stepper": "exponential", "substeps": 2},
               "classical": {"name": "classical"}},
    "seeds": [0], "threads": 1,
    "train": {"window": 5, "rollout_steps": 2, "batch_size": 2, "batches_per_epoch": 1, "max_epochs": 4,
              "valid_every": 2, "early_stopping": 2, "split": [0.5, 0.25, 0.25]},
}


def make_example(path: Path) -> Path:
    """The example's data, written by its script with mesodyn made unimportable (it must never need it)."""
    code = ("import runpy, sys; sys.modules['mesodyn'] = None; sys.argv = sys.argv[1:]; "
            "runpy.run_path(sys.argv[0], run_name='__main__')")
    subprocess.run([sys.executable, "-c", code, str(SCRIPT), str(path), *TINY_DATA], check=True,
                   capture_output=True, text=True)
    return path


def example_config() -> dict:
    """config/example.yaml with the tiny training settings of the tests."""
    config = yaml.safe_load((ROOT / "config" / "example.yaml").read_text(encoding="utf-8"))
    config["fit"] = copy.deepcopy(TINY_FIT)
    config["hypotheses"]["runs"] = ["speconsnet", "conserved_m"]
    return config


@pytest.fixture(scope="module")
def example_file(tmp_path_factory):
    return make_example(tmp_path_factory.mktemp("example") / "cahn_hilliard.nc")


@pytest.fixture
def user_dir(tmp_path, monkeypatch, example_file):
    """A working folder with the example's file at data/cahn_hilliard.nc (the config's relative path)."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "cahn_hilliard.nc").write_bytes(example_file.read_bytes())
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    USER_DATASETS.clear()


def test_the_config_joins_the_users_data_set_to_the_registry(user_dir):
    config = validate_config(example_config())
    info = dataset_info(NAME)
    assert (info.kind, info.ndim, info.shape, info.published, info.energy) == ("user", 1, (8, 12, 32), None, None)
    assert info.label == "Cahn–Hilliard 1-D (example)" and info.pde == "cahn_hilliard"
    # classical needs a known PDE (declared: Cahn-Hilliard), the true-V ablation a known energy (not among ours)
    assert MODELS["classical"].applies_to(NAME) and not MODELS["speconsnet_true_v"].applies_to(NAME)
    assert all(MODELS[m].applies_to(NAME) for m in ("speconsnet", "fno", "onsagernet", "res_onsagernet"))
    figures = {figure for figure, _ in figure_plan(config)}
    assert figures == {"rel_rmse", "energy_along_truth", "energy_change_vs_dt", "energy_order",
                       "stepper_comparison", "operator_symbols", "prediction", "long_horizon", "identifiability"}


def test_a_declared_pde_brings_the_classical_model_and_the_true_energy(user_dir):
    config = example_config()
    config["data"][NAME].update(pde="allen_cahn", epsilon=0.1)
    del config["data"][NAME]["kappa"]
    validate_config(config)
    assert dataset_info(NAME).energy == "allen_cahn" and MODELS["classical"].applies_to(NAME)
    figures = {figure for figure, _ in figure_plan(validate_config(config))}
    assert {"energy_vs_truth", "step_size_sweep"} <= figures


def test_the_checked_copy_is_the_users_data_in_float64(user_dir):
    config = validate_config(example_config())
    user_data_files(NAME, config, fields_path=user_dir / "results" / "data" / f"{NAME}.nc")
    with xr.open_dataset(user_dir / "data" / "cahn_hilliard.nc") as own, \
            xr.open_dataset(user_dir / "results" / "data" / f"{NAME}.nc") as copied:
        assert copied["u"].dtype == np.float64 and copied.attrs["dataset"] == NAME
        np.testing.assert_array_equal(copied["u"].values, own["u"].values)


# -- bad files: one sentence, nothing written -------------------------------------------------------------------------
def _rewrite(change):
    def apply(path: Path) -> None:
        with xr.open_dataset(path) as ds:
            data = ds.load()
        data = change(data)
        path.unlink()
        if data is not None:
            data.to_netcdf(path)
    return apply


def _poke(value, where=(0, 3, 5)):
    def change(ds):
        u = ds["u"].values.copy()
        u[where] = value
        return ds.assign(u=(ds["u"].dims, u, ds["u"].attrs))
    return change


def _coord(name, edit):
    def change(ds):
        values = ds[name].values.copy()
        edit(values)
        return ds.assign_coords({name: (name, values, ds[name].attrs)})
    return change


def _text(path: Path) -> None:
    path.write_text("sample,time,x,u\n0,0,0,1.0\n")


def _folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _drop_frames(n):
    return _rewrite(lambda ds: ds.isel(time=slice(0, n)))


CORRUPTIONS = {
    "missing_path": (lambda p: p.unlink(), "does not exist"),
    "not_netcdf": (_text, "cannot be read as netCDF"),
    "a_folder": (_folder, "is a folder"),
    "no_u": (_rewrite(lambda ds: ds.rename({"u": "phi"})), "has no variable 'u'"),
    "wrong_dims": (_rewrite(lambda ds: ds.transpose("time", "sample", "x")), "has dims"),
    "nan": (_rewrite(_poke(np.nan)), "non-finite values"),
    "inf": (_rewrite(_poke(np.inf, (1, 2, 3))), "non-finite values"),
    "integer_u": (_rewrite(lambda ds: ds.assign(u=ds["u"].astype("int32"))), "float32 or float64"),
    "non_uniform_grid": (_rewrite(_coord("x", lambda v: v.__setitem__(4, v[4] + 0.05))), "not uniformly spaced"),
    "non_uniform_time": (_rewrite(_coord("time", lambda v: v.__setitem__(7, v[7] + 0.004))),
                         "not uniformly spaced"),
    "decreasing_time": (_rewrite(_coord("time", lambda v: v.__setitem__(slice(None), v[::-1].copy()))),
                        "must be increasing"),
    "no_grid_coordinate": (_rewrite(lambda ds: ds.drop_vars("x")), "coordinate 'x' is missing"),
    "fewer_frames_than_window": (_drop_frames(4), "window = 5 is longer than the 4 frames"),
    "too_few_trajectories": (_rewrite(lambda ds: ds.isel(sample=slice(0, 1))), "leaves the train part"),
    "huge_values": (_rewrite(_poke(1e20)), "rescale u"),
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_a_bad_file_stops_with_one_sentence_and_writes_nothing(user_dir, name):
    corrupt, fragment = CORRUPTIONS[name]
    corrupt(user_dir / "data" / "cahn_hilliard.nc")
    before = sorted(p for p in user_dir.rglob("*"))
    out = user_dir / "results" / "data" / f"{NAME}.nc"
    with pytest.raises((ConfigError, FieldsContractError)) as caught:
        # at start-up where the header tells (the workflow's parse), else in the job that checks the values
        user_data_files(NAME, validate_config(example_config()), fields_path=out)
    message = str(caught.value)
    assert fragment in message, message
    assert "\n" not in message and message.endswith(".") and message.count(". ") == 0, message
    assert not out.exists() and sorted(p for p in user_dir.rglob("*")) == before


def test_a_name_that_is_neither_the_papers_nor_the_users_says_how_to_add_it(user_dir):
    config = example_config()
    config["datasets"] = ["heat"]
    with pytest.raises(ConfigError, match=r"'datasets.0' is 'heat'.*data.heat.path"):
        validate_config(config)


# -- the worked example through the workflow --------------------------------------------------------------------------
@pytest.mark.workflow
def test_the_worked_example_runs_through_the_workflow_to_table_figures_and_report(tmp_path, monkeypatch):
    from conftest import copy_workflow, run_snakemake

    work = copy_workflow(tmp_path)
    make_example(work / "data" / "cahn_hilliard.nc")  # as docs/your-data.md says: the script makes data/
    (work / "config" / "tiny_example.yaml").write_text(yaml.safe_dump(example_config(), allow_unicode=True),
                                                        encoding="utf-8")
    run_snakemake(work, "--configfile", "config/tiny_example.yaml")
    table = (work / "results" / "tables" / "rel_rmse_first5.md").read_text(encoding="utf-8")
    for model in ("speconsnet", "fno", "onsagernet", "res_onsagernet"):
        assert re.search(rf"\| {NAME} +\| {model} +\|", table), model
    assert "heldout" in table and "paper (n=" not in table and "published (n=" not in table
    monkeypatch.chdir(work)  # the config's data path is relative to the workflow's folder
    config = validate_config(yaml.safe_load((work / "config" / "tiny_example.yaml").read_text(encoding="utf-8")))
    for figure, dataset in figure_plan(config):
        for ext in ("png", "pdf", "json"):
            assert (work / "results" / "figures" / f"{figure}_{dataset}.{ext}").stat().st_size > 0
    USER_DATASETS.clear()
    run_snakemake(work, "--configfile", "config/tiny_example.yaml", "--report", "results/report.html")
    report = (work / "results" / "report.html").read_bytes()
    assert len(report) > 0 and b"prediction" in report
    # what the model learned, against the declared equation's truth, and the hypotheses compared
    ident = (work / "results" / "tables" / "identifiability.md").read_text(encoding="utf-8")
    assert re.search(rf"\| {NAME} +\| speconsnet +\| speconsnet +\| speconsnet/seed0 +\| cahn_hilliard", ident)
    hyp = pd.read_csv(work / "results" / "tables" / "hypotheses.csv")
    assert sorted(hyp["run"]) == ["conserved_m", "speconsnet"] and hyp["preferred"].sum() == 1
    assert set(hyp["hypothesis"]) == {"M (conserved); V local", "M + W; V local + nonlocal"}


def test_the_example_script_never_imports_mesodyn():
    text = SCRIPT.read_text(encoding="utf-8")
    imports = [line for line in text.splitlines() if line.startswith(("import ", "from "))]
    assert imports and not any("mesodyn" in line for line in imports)
