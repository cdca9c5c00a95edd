"""The bad-input corpus: every malformed config and data file a user may hand the command line ends in one
sentence on stderr naming the file, key or variable, exit status 2, no traceback and nothing written.

Built from a tiny valid config and a tiny valid KdV file (16 points, 8 trajectories, 11 frames), so the whole
module runs in seconds: a bad input is refused before any simulation or training.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr
import yaml

from mesodyn.cli import main
from mesodyn.config import ConfigError, validate_config
from mesodyn.fields import FieldsContractError, check_fields, write_fields, write_netcdf

pytestmark = pytest.mark.usefixtures("torch_one_thread")

TINY = {
    "seed": 0,
    "datasets": ["kdv"],
    "progress": False,
    "data": {
        "threads": 1,
        "kdv": {"n_samples": 8, "n_grid": 16, "max_k": 3, "n_modes": 2, "t_final": 0.01},
        "fput": {"n_samples": 2, "t_final": 0.01, "save_every": 5},
    },
    "fit": {
        "models": {"fno": {"name": "fno", "n_modes": 4, "hidden_channels": 4}},
        "seeds": [0],
        "threads": 1,
        "train": {"window": 3, "rollout_steps": 1, "batch_size": 2, "batches_per_epoch": 1, "max_epochs": 2,
                  "valid_every": 1, "early_stopping": 1, "split": [0.5, 0.25, 0.25], "device": "cpu"},
    },
}


def _with(path: str, value):
    """A copy of TINY with the dotted key ``path`` set to ``value`` (``...`` deletes it)."""
    config = copy.deepcopy(TINY)
    *parents, leaf = path.split(".")
    node = config
    for part in parents:
        node = node.setdefault(part, {})
    if value is ...:
        node.pop(leaf, None)
    else:
        node[leaf] = value
    return config


# -- the config corpus: (id, command, config or raw text, --set list, fragment of the one sentence) ------------
def _config_cases():
    raw = [  # the file itself
        ("empty_file", "", "is empty"),
        ("only_comments", "# nothing here\n", "is empty"),
        ("unclosed_list", "seed: [1,\n", "not valid YAML"),
        ("bad_indent", "data:\n  kdv:\n n_samples: 3\n", "not valid YAML"),
        ("tab_indent", "data:\n\tkdv: 1\n", "not valid YAML"),
        ("unclosed_quote", "seed: 'abc\n", "not valid YAML"),
        ("stray_colon", "seed: 1: 2\n", "not valid YAML"),
        ("top_level_list", "- 1\n- 2\n", "must hold a mapping of keys, not list"),
        ("top_level_string", "hello\n", "must hold a mapping of keys, not str"),
        ("top_level_int", "42\n", "must hold a mapping of keys, not int"),
        ("top_level_null_doc", "---\n...\n", "is empty"),
    ]
    cases = [(f"file:{name}", "solve", text, [], frag) for name, text, frag in raw]
    sets = [  # --set on a valid config
        ("no_equals", ["data.kdv.n_samples"], "--set expects KEY=VALUE"),
        ("empty_key", ["=3"], "--set expects KEY=VALUE"),
        ("empty_part", ["data..n_samples=3"], "--set expects KEY=VALUE"),
        ("trailing_dot", ["data.kdv.=3"], "--set expects KEY=VALUE"),
        ("not_a_section", ["seed.x=1"], "config key 'seed' is not a section"),
        ("bad_yaml_value", ["data.kdv.n_samples=[1,"], "is not valid YAML"),
        ("unknown_key", ["data.kdv.n_sample=3"], "unknown config key 'n_sample' under 'data.kdv'"),
        ("wrong_type", ["seed=abc"], "config key 'seed'"),
        ("negative_seed", ["seed=-1"], "config key 'seed'"),
        ("progress_word", ["progress=maybe"], "config key 'progress'"),
    ]
    cases += [(f"set:{name}", "solve", TINY, assignment, frag) for name, assignment, frag in sets]
    keys = [  # schema: one key at a time
        ("data.kdv.n_samples", 0), ("data.kdv.n_samples", -3), ("data.kdv.n_samples", "many"),
        ("data.kdv.n_samples", 1.5), ("data.kdv.n_grid", 4), ("data.kdv.n_grid", "fine"), ("data.kdv.dt", 0),
        ("data.kdv.dt", -1e-3), ("data.kdv.dt", "fast"), ("data.kdv.t_final", 0), ("data.kdv.t_final", -1.0),
        ("data.kdv.save_every", 0), ("data.kdv.save_every", 2.5), ("data.kdv.scheme", "rk4"),
        ("data.kdv.max_k", 0), ("data.kdv.n_modes", 0), ("data.kdv.u_bound", 0), ("data.kdv.u_bound", -1.0),
        ("data.kdv.epsilon", 0.1), ("data.fput.n_sites", 2), ("data.fput.c", 0), ("data.fput.dt_slow", 0),
        ("data.fput.alpha", "x"), ("data.fput.substeps", "many"), ("data.fene.r_bound", 1.5),
        ("coarse.method", "spline"), ("coarse.n_grid", 4), ("micro.keep", -1), ("datasets", ["kdv", "water"]),
        ("datasets", "kdv"), ("seed", 1.5), ("sed", 1), ("data.threads", 0), ("figures.samples", 0),
        ("hypotheses.runs", "speconsnet"), ("hypotheses.step", 0), ("hypotheses.tolerance", -0.1),
        ("hypotheses.preferred", "m"),
    ]
    for key, value in keys:
        leaf = key.split(".")[-1]
        cases.append((f"key:{key}={value!r}", "solve", _with(key, value), [], leaf))
    return cases + _consistency_and_fit_cases()


def _consistency_and_fit_cases():
    consistency = [  # several keys together
        ("kdv_modes_above_slots", {"data.kdv.n_modes": 5}, "solve", "n_modes = 5 exceeds"),
        ("kdv_short_t_final", {"data.kdv.t_final": 1e-4}, "solve", "shorter than one saved interval"),
        ("kdv_odd_grid", {"data.kdv.n_grid": 17}, "solve", "data.kdv.n_grid"),
        ("kdv_max_k_nyquist", {"data.kdv.n_grid": 8, "data.kdv.max_k": 6}, "solve", "Nyquist mode 4"),
        ("kdv_max_k_at_nyquist", {"data.kdv.n_grid": 8, "data.kdv.max_k": 4}, "solve", "Nyquist mode 4"),
        ("ac2d_max_k_nyquist", {"data.allen_cahn_2d.n_grid": 8, "data.allen_cahn_2d.max_k": 5}, "solve2d",
         "Nyquist mode 4"),
        ("kdv_memory", {"data.kdv.n_samples": 10**9}, "solve", "of memory"),
        ("kdv_memory_grid", {"data.kdv.n_grid": 2**20, "data.kdv.n_samples": 10**5}, "solve", "of memory"),
        ("ac2d_memory", {"data.allen_cahn_2d.n_grid": 8192, "data.allen_cahn_2d.n_samples": 10**4}, "solve2d",
         "of memory"),
        ("fput_memory", {"data.fput.n_samples": 10**9}, "simulate", "of memory"),
        ("fput_modes", {"data.fput.n_modes": 9}, "simulate", "n_modes (9)"),
        ("fput_t_final", {"data.fput.t_final": 0.0105}, "simulate", "whole number of dt_slow"),
        ("fput_save_every", {"data.fput.save_every": 3}, "simulate", "multiple of save_every"),
        ("fput_nyquist_sites", {"data.fput.n_sites": 8}, "simulate", "Nyquist mode n_sites/2"),
        ("coarse_odd", {"coarse.n_grid": 129}, "simulate", "coarse.n_grid"),
        ("coarse_nyquist", {"coarse.n_grid": 10}, "simulate", "coarse.n_grid"),
        ("fene_modes", {"data.fene.n_modes": 7}, "simulate_fene", "n_modes (7)"),
    ]
    cases = []
    for name, changes, command, frag in consistency:
        config = copy.deepcopy(TINY)
        for key, value in changes.items():
            config = _merge(config, key, value)
        cases.append((f"consistency:{name}", command, config, [], frag))
    fit = [  # what `mesodyn fit` uses: the run and the data set of the command
        ("fit.models.fno.n_modes", 0, "fit.models.fno"), ("fit.models.fno.hiden", 8, "fit.models.fno"),
        ("fit.models.fno.name", "fnoo", "fit.models.fno"),
        ("fit.train.window", 1, "window"), ("fit.train.rollout_steps", 3, "rollout_steps (3)"),
        ("fit.train.batch_size", 0, "batch_size"), ("fit.train.max_epochs", 0, "max_epochs"),
        ("fit.train.valid_every", 5, "valid_every (5)"), ("fit.train.lr", 0, "lr"),
        ("fit.train.lr", -1.0, "lr"), ("fit.train.lr", "fast", "lr"), ("fit.train.split", [0.5, 0.5, 0.5], "split"),
        ("fit.train.split", [1.0, 0.0, 0.0], "split"), ("fit.train.split", [0.5, 0.5], "split"),
        ("fit.train.schedule", "linear", "schedule"), ("fit.train.device", "tpu", "device"),
        ("fit.train.device", "cuda", "no CUDA device"), ("fit.train.dtype", "float16", "dtype"),
        ("fit.train.epochs", 3, "epochs"), ("fit.train.warmup_epochs", 5, "warmup_epochs"),
        ("fit.train.min_lr", 1.0, "min_lr"), ("fit.train.lr_factor", 2.0, "lr_factor"),
        ("fit.datasets.kdv.window", 1, "fit.datasets.kdv"), ("fit.train.early_stopping", 0, "early_stopping"),
        ("fit.models.fno.train.max_epochs", 0, "fit.models.fno.train"), ("fit.seeds", [], "fit.seeds"),
        ("fit.seeds", [-1], "fit.seeds"), ("fit.threads", 0, "fit.threads"),
        ("fit.models.fno.substeps", 2, "fit.models.fno"),
    ]
    for key, value, frag in fit:
        cases.append((f"fit:{key}={value!r}", "fit", _with(key, value), [], frag))
    cases += [
        ("fit:set_window_longer_than_file", "fit", TINY, ["fit.train.window=50"], "training window of 50"),
        ("fit:set_split_empty_valid", "fit", TINY, ["fit.train.split=[0.95, 0.025, 0.025]"], "too few for the split"),
        ("fit:model_unknown", "fit_nope", TINY, [], "--model 'nope'"),
        ("fit:model_not_for_data", "fit_true_v_2d", TINY, [], "--model speconsnet_true_v"),
    ]
    return cases


def _merge(config, key, value):
    config = copy.deepcopy(config)
    *parents, leaf = key.split(".")
    node = config
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return config


CONFIG_CASES = _config_cases()


# -- the data corpus: (id, mutation of the valid file's data set, command, fragment) ---------------------------
def _set_u(values):
    return lambda ds: ds.assign(u=(ds.u.dims, values(ds.u.values), ds.u.attrs))


def _nan_at(index):
    def put(u):
        u = u.copy()
        u[index] = np.nan
        return u
    return put


def _time(values):
    return lambda ds: ds.assign_coords(time=("time", values(ds.time.values), ds.time.attrs))


def _x(values):
    return lambda ds: ds.assign_coords(x=("x", values(ds.x.values), ds.x.attrs))


def _attrs(**changes):
    def mutate(ds):
        ds = ds.copy()
        for key, value in changes.items():
            if value is None:
                ds.attrs.pop(key, None)
            else:
                ds.attrs[key] = value
        return ds
    return mutate


def _var_attr(name, key):
    def mutate(ds):
        ds = ds.copy()
        ds[name].attrs.pop(key, None)
        return ds
    return mutate


def _raw(data: bytes | None, *, keep=None):
    """A file whose bytes are ``data`` (or the valid file's first ``keep`` bytes, or its bytes damaged)."""
    return ("raw", data, keep)


DATA_CASES = [
    ("nan", _set_u(lambda u: np.where(np.arange(u.size).reshape(u.shape) == 5, np.nan, u)), "non-finite"),
    ("nan_last_trajectory", _set_u(_nan_at((7, 10, 3))), "non-finite"),
    ("inf", _set_u(lambda u: np.where(u > 0.5, np.inf, u)), "non-finite"),
    ("minus_inf", _set_u(lambda u: np.where(u < -0.5, -np.inf, u)), "non-finite"),
    ("all_nan", _set_u(lambda u: np.full_like(u, np.nan)), "non-finite"),
    ("times_1e30", _set_u(lambda u: u * 1e30), "|u| = "),
    ("float32_paper", lambda ds: ds.assign(u=ds.u.astype("float32")), "float64"),
    ("int64", lambda ds: ds.assign(u=(ds.u * 100).astype("int64")), "int64"),
    ("int32", lambda ds: ds.assign(u=(ds.u * 100).astype("int32")), "int32"),
    ("renamed_sample", lambda ds: ds.rename_dims(sample="trajectory"), "'u' has dims"),
    ("renamed_time", lambda ds: ds.rename({"time": "t"}), "'u' has dims"),
    ("renamed_x", lambda ds: ds.rename({"x": "xi"}), "'u' has dims"),
    ("transposed", lambda ds: ds.assign(u=ds.u.transpose("x", "time", "sample")), "'u' has dims"),
    ("time_first", lambda ds: ds.assign(u=ds.u.transpose("time", "sample", "x")), "'u' has dims"),
    ("extra_dim", lambda ds: ds.assign(u=ds.u.expand_dims(channel=1, axis=3)), "'u' has dims"),
    ("flattened", lambda ds: xr.Dataset({"u": (("sample", "x"), ds.u.values.reshape(ds.sizes["sample"], -1))},
                                        attrs=ds.attrs), "'u' has dims"),
    ("no_u", lambda ds: ds.rename({"u": "v"}), "no variable 'u'"),
    ("drop_time", lambda ds: ds.drop_vars("time"), "coordinate 'time' is missing"),
    ("drop_x", lambda ds: ds.drop_vars("x"), "coordinate 'x' is missing"),
    ("one_frame", lambda ds: ds.isel(time=[0]), "1 frame(s)"),
    ("two_frames_window_3", lambda ds: ds.isel(time=[0, 1]), "fewer than the training window of 3"),
    ("no_samples", lambda ds: ds.isel(sample=[]), "no trajectories"),
    ("one_sample", lambda ds: ds.isel(sample=[0]), "too few for the split"),
    ("non_uniform_time", _time(lambda t: t ** 1.5), "coordinate 'time' is not uniformly spaced"),
    ("decreasing_time", _time(lambda t: t[::-1].copy()), "coordinate 'time' must be increasing"),
    ("repeated_time", _time(lambda t: np.where(np.arange(t.size) == 3, t[2], t)), "coordinate 'time' must be"),
    ("nan_time", _time(lambda t: np.where(np.arange(t.size) == 3, np.nan, t)), "coordinate 'time'"),
    ("float32_time", _time(lambda t: t.astype("float32")), "coordinate 'time'"),
    ("non_uniform_x", _x(lambda x: x ** 1.2), "coordinate 'x' is not uniformly spaced"),
    ("decreasing_x", _x(lambda x: x[::-1].copy()), "coordinate 'x' must be increasing"),
    ("string_x", _x(lambda x: np.asarray([f"p{i}" for i in range(x.size)])), "coordinate 'x'"),
    ("no_dataset_attr", _attrs(dataset=None), "attribute 'dataset'"),
    ("wrong_dataset_attr", _attrs(dataset="allen_cahn"), "holds data set 'allen_cahn'"),
    ("chain_dataset_attr", _attrs(dataset="fput"), "holds data set 'fput'"),
    ("missing_git_commit", _attrs(git_commit=None), "git_commit"),
    ("missing_version", _attrs(mesodyn_version=None), "mesodyn_version"),
    ("missing_config_attr", _attrs(config=None), "'config'"),
    ("missing_ic_k", lambda ds: ds.drop_vars("ic_k"), "ic_k"),
    ("missing_ic_phase", lambda ds: ds.drop_vars("ic_phase"), "ic_phase"),
    ("missing_ic_amplitude", lambda ds: ds.drop_vars("ic_amplitude"), "ic_amplitude"),
    ("u_without_units", _var_attr("u", "units"), "'u' lacks the CF attribute 'units'"),
    ("u_without_long_name", _var_attr("u", "long_name"), "'u' lacks the CF attribute 'long_name'"),
    ("time_without_units", _var_attr("time", "units"), "'time' lacks"),
    ("x_without_long_name", _var_attr("x", "long_name"), "'x' lacks"),
    ("empty_file", _raw(b""), "cannot be read as netCDF"),
    ("text_file", _raw(b"sample,time,x,u\n0,0,0,1.0\n"), "cannot be read as netCDF"),
    ("truncated", _raw(None, keep=600), "cannot be read"),
    ("corrupted_header", _raw(None, keep=-1), "cannot be read as netCDF"),
    ("missing_file", ("missing",), "does not exist"),
    ("directory", ("directory",), "is a folder"),
    # a user data set (no registered name): the user contract, still strict on what a model needs
    ("user_uint8", lambda ds: _user(ds).assign(u=(ds.u > 0).astype("uint8")), "uint8"),
    ("user_no_time", lambda ds: _user(ds).drop_vars("time"), "coordinate 'time' is missing"),
    ("user_nan", lambda ds: _user(_set_u(_nan_at((3, 2, 1)))(ds)), "non-finite"),
    ("user_one_frame", lambda ds: _user(ds).isel(time=[0]), "frame(s)"),
]


def _user(ds):
    """The valid file as a user's: no name, no draws, no provenance."""
    ds = ds.drop_vars(["ic_k", "ic_amplitude", "ic_phase", "ic_k_selected", "ic_std", "rng_trial"], errors="ignore")
    ds.attrs = {}
    return ds


# -- fixtures ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    """A valid config file, a valid paper fields file (tiny KdV) and a run folder fitted on it."""
    from mesodyn.continuum import make_dataset

    root = tmp_path_factory.mktemp("valid")
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    ds = make_dataset("kdv", params=TINY["data"]["kdv"], seed=0, progress=False, workers=1)
    data = write_fields(ds, root / "kdv.nc", config={"data": TINY["data"]["kdv"]})
    run = root / "run"
    assert main(["fit", str(data), "--model", "fno", "--config", str(config), "--out", str(run)]) == 0
    return {"root": root, "config": config, "data": data, "run": run, "fields": xr.load_dataset(data)}


def _one_sentence(capsys, *fragments):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("mesodyn: ") and lines[0].endswith("."), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def _config_argv(command, config, tmp_path, valid):
    out = tmp_path / "out"
    if command == "solve":
        return ["solve", "kdv", "--config", str(config), "--out", str(out / "kdv.nc")], out
    if command == "solve2d":
        return ["solve", "allen_cahn_2d", "--config", str(config), "--out", str(out / "ac.nc")], out
    if command.startswith("simulate"):
        name = "fene" if command.endswith("fene") else "fput"
        return ["simulate", name, "--config", str(config), "--out", str(out / "f.nc"), "--micro",
                str(out / "m.nc")], out
    model = {"fit": "fno", "fit_nope": "nope", "fit_true_v_2d": "speconsnet_true_v"}[command]
    data = valid["data"]
    if command == "fit_true_v_2d":  # the ablation does not apply to a chain: the file claims to be one
        data = tmp_path / "fput.nc"
        write_netcdf(valid["fields"].assign_attrs(dataset="fput"), data)
        return ["fit", str(data), "--model", model, "--config", str(config), "--out", str(out)], out
    return ["fit", str(data), "--model", model, "--config", str(config), "--out", str(out)], out


@pytest.mark.parametrize("name, command, config, assignments, fragment", CONFIG_CASES,
                         ids=[case[0] for case in CONFIG_CASES])
def test_bad_config_is_one_sentence(name, command, config, assignments, fragment, tmp_path, capsys, valid):
    path = tmp_path / "bad.yaml"
    if isinstance(config, str):
        path.write_text(config)
    else:
        path.write_text(yaml.safe_dump(config))
    argv, out = _config_argv(command, path, tmp_path, valid)
    for item in assignments:
        argv += ["--set", item]
    assert main(argv) == 2
    _one_sentence(capsys, fragment)
    assert not out.exists()


def _bad_file(case, tmp_path, valid):
    mutation = case[1]
    path = tmp_path / "bad.nc"
    if isinstance(mutation, tuple) and mutation[0] == "missing":
        return tmp_path / "missing.nc"
    if isinstance(mutation, tuple) and mutation[0] == "directory":
        path.mkdir()
        return path
    if isinstance(mutation, tuple):
        _, data, keep = mutation
        good = valid["data"].read_bytes()
        if data is None and keep == -1:  # the HDF5 signature and superblock overwritten
            data = b"\x00" * 64 + good[64:]
        elif data is None:
            data = good[:keep]
        path.write_bytes(data)
        return path
    bad = mutation(valid["fields"].copy())
    if bad.sizes.get("sample", 1) == 0:  # netCDF stores an empty dimension only as an unlimited one
        bad.to_netcdf(path, engine="netcdf4", unlimited_dims=["sample"])
    else:
        write_netcdf(bad, path)
    return path


@pytest.mark.parametrize("case", DATA_CASES, ids=[case[0] for case in DATA_CASES])
def test_bad_data_file_is_refused_by_fit(case, tmp_path, capsys, valid):
    path = _bad_file(case, tmp_path, valid)
    out = tmp_path / "run"
    argv = ["fit", str(path), "--model", "fno", "--config", str(valid["config"]), "--out", str(out)]
    if case[0] in ("no_dataset_attr",) or case[0].startswith(("missing_", "directory", "empty", "text",
                                                                "truncated", "corrupted")):
        argv += ["--dataset", "kdv"]  # the data set named on the command line: the file must agree
    if case[0] in ("wrong_dataset_attr", "chain_dataset_attr"):
        argv += ["--dataset", "kdv"]
    assert main(argv) == 2
    _one_sentence(capsys, case[2])
    assert not out.exists()


EVALUATE_CASES = [case for case in DATA_CASES if case[0] in (
    "nan", "nan_last_trajectory", "inf", "minus_inf", "times_1e30", "float32_paper", "int64", "renamed_sample",
    "drop_time", "drop_x", "wrong_dataset_attr", "missing_git_commit", "corrupted_header", "missing_file",
    "no_u", "non_uniform_time")]


@pytest.mark.parametrize("case", EVALUATE_CASES, ids=[case[0] for case in EVALUATE_CASES])
def test_bad_data_file_is_refused_by_evaluate(case, tmp_path, capsys, valid):
    path = _bad_file(case, tmp_path, valid)
    out = tmp_path / "metrics.nc"
    argv = ["evaluate", str(valid["run"]), str(path), "--out", str(out), "--dataset", "kdv"]
    assert main(argv) == 2
    _one_sentence(capsys, case[2])
    assert not out.exists()


def test_evaluate_refuses_non_finite_true_data_rather_than_scoring_it(tmp_path, capsys, valid):
    """NaN in a held-out true trajectory was once scored as the model diverging (every later error 1)."""
    test = json.loads((valid["run"] / "split.json").read_text())["test"]
    u = valid["fields"].u.values.copy()
    u[test[0], 6, 2] = np.nan
    path = write_netcdf(valid["fields"].assign(u=(valid["fields"].u.dims, u, valid["fields"].u.attrs)),
                        tmp_path / "nan.nc")
    out = tmp_path / "m.nc"
    assert main(["evaluate", str(valid["run"]), str(path), "--out", str(out)]) == 2
    _one_sentence(capsys, "non-finite", f"trajectory {test[0]}", str(path))
    assert not out.exists()


def test_labels_come_from_the_command_and_must_match_the_file(tmp_path, capsys, valid):
    out = tmp_path / "m.nc"
    assert main(["evaluate", str(valid["run"]), str(valid["data"]), "--out", str(out), "--dataset", "fene"]) == 2
    _one_sentence(capsys, "holds data set 'kdv'", "not 'fene'")
    unnamed = write_netcdf(_attrs(dataset=None)(valid["fields"]), tmp_path / "unnamed.nc")
    assert main(["evaluate", str(valid["run"]), str(unnamed), "--out", str(out)]) == 2
    _one_sentence(capsys, "names no data set", "--dataset")
    assert not out.exists()
    assert main(["evaluate", str(valid["run"]), str(valid["data"]), "--out", str(out)]) == 0
    assert xr.open_dataset(out).attrs["dataset"] == "kdv"


@pytest.mark.parametrize("argv, fragment", [
    (["fit"], "the following arguments are required"),
    (["fit", "x.nc", "--model", "fno", "--out", "o", "--threads", "0"], "--threads"),
    (["fit", "x.nc", "--model", "fno", "--out", "o", "--seed", "-1"], "--seed"),
    (["evaluate", "r", "d.nc", "--out", "o.nc", "--batch-size", "0"], "--batch-size"),
    (["evaluate", "r", "d.nc", "--out", "o.nc", "--threads", "two"], "--threads"),
    (["table", "m.nc", "--out", "o", "--steps", "0"], "--steps"),
    (["simulate", "water", "--out", "o.nc"], "invalid choice"),
    (["frobnicate"], "invalid choice"),
    (["evaluate", "nowhere", "d.nc", "--out", "o.nc"], "run folder nowhere has no model.json"),
])
def test_bad_options_are_one_sentence(argv, fragment, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    _one_sentence(capsys, fragment)
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.nc").exists()


def test_a_set_overridden_by_a_more_specific_key_says_so(tmp_path, capsys, valid):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(_merge(TINY, "fit.models.fno.train", {"max_epochs": 2})))
    out = tmp_path / "run"
    assert main(["fit", str(valid["data"]), "--model", "fno", "--config", str(config), "--out", str(out),
                 "--set", "fit.train.max_epochs=3"]) == 0
    err = capsys.readouterr().err
    assert "--set fit.train.max_epochs=3 does not apply to this fit: fit.models.fno.train.max_epochs = 2" in err
    assert len((out / "history.csv").read_text().splitlines()) == 1 + 2


def test_fit_checks_only_its_own_run_and_data_set(tmp_path, valid):
    """A run on another data set with settings that a --set breaks does not stop this fit (it once did)."""
    config = _merge(TINY, "fit.models.other", {"name": "fno", "n_modes": 4, "hidden_channels": 4})
    config = _merge(config, "fit.datasets.fput", {"models": ["other"], "warmup_epochs": 5})
    config["datasets"] = ["kdv", "fput"]
    with pytest.raises(ConfigError, match="run 'other' on data set 'fput'"):
        validate_config(config)  # the workflow fits it: stopped at start-up
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["fit", str(valid["data"]), "--model", "fno", "--config", str(path), "--out",
                 str(tmp_path / "run")]) == 0  # this fit uses neither the run 'other' nor fput


def test_plausibility_warnings_reach_the_log(valid, caplog):
    ds = valid["fields"].copy()
    constant = ds.assign(u=(ds.u.dims, np.zeros_like(ds.u.values), ds.u.attrs))
    with caplog.at_level("WARNING", logger="mesodyn.fields"):
        check_fields(constant, source="c.nc", dataset="kdv")
    assert "8 of 8 checked trajectories of 'u' are constant" in caplog.text
    caplog.clear()
    slow = ds.assign_coords(time=("time", ds.time.values * 1000, ds.time.attrs))
    with caplog.at_level("WARNING", logger="mesodyn.fields"):
        check_fields(slow, source="t.nc")
    assert "the frames of coordinate 'time' are 1 apart but the attributes say 0.001" in caplog.text
    assert "t_final" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="mesodyn.fields"):
        check_fields(ds.isel(x=slice(0, 4)).assign_coords(x=("x", ds.x.values[:4] * 4, ds.x.attrs)),
                     source="g.nc")
    assert "n_grid says 16" in caplog.text and "only 4 points" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="mesodyn.fields"):
        check_fields(ds.isel(sample=[0, 1]), source="s.nc", split=(0.5, 0.5, 0.0))
    assert "leave the test part of the split" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="mesodyn.fields"):
        check_fields(ds, source="ok.nc", dataset="kdv", window=3, split=(0.5, 0.25, 0.25))
    assert caplog.text == ""  # the valid file: no warning


def test_user_contract_accepts_float32_and_no_metadata(valid):
    user = _user(valid["fields"]).assign(u=valid["fields"].u.astype("float32"))
    check_fields(user, contract="user", source="mine.nc", dataset="mine", window=3, split=(0.5, 0.25, 0.25))
    with pytest.raises(FieldsContractError, match="float64"):
        check_fields(user, contract="paper", source="mine.nc")


@pytest.mark.parametrize("argv_tail, fragment", [
    (["solve", "kdv", "--config", "{missing}", "--out", "{out}"], "cannot be read"),
    (["fit", "{data}", "--model", "fno", "--config", "{config}", "--out", "{out}", "--dataset", "allen_cahn"],
     "holds data set 'kdv'"),
])
def test_no_traceback_in_a_real_process(argv_tail, fragment, tmp_path, valid):
    """The installed entry point: one line on stderr, status 2, no traceback, nothing written."""
    out = tmp_path / "out"
    names = {"missing": tmp_path / "none.yaml", "out": out, "data": valid["data"], "config": valid["config"]}
    argv = [part.format(**names) for part in argv_tail]
    proc = subprocess.run([sys.executable, "-m", "mesodyn.cli", *argv], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert fragment in proc.stderr
    assert not out.exists()


def test_corpus_size():
    """The issue's corpus: at least 96 bad configs and 49 bad data files."""
    assert len(CONFIG_CASES) >= 96
    assert len(DATA_CASES) >= 49


@pytest.mark.parametrize("changes, fragment", [
    ({"data.kdv.n_samples": 1}, "leaves the train part of data.kdv.n_samples = 1 trajectories empty"),
    ({"data.kdv.n_samples": 3}, "leaves the validation part of data.kdv.n_samples = 3 trajectories empty (2/0/1)"),
    ({"data.kdv.n_samples": 3, "fit.train.split": [0.1, 0.6, 0.3]}, "leaves the train part"),
    ({"fit.train.window": 20}, "window = 20 is longer than the 11 frames that data.kdv produces"),
    ({"fit.datasets.kdv": {"window": 12}}, "longer than the 11 frames"),
])
def test_workflow_start_up_checks_the_limits_of_every_job(changes, fragment):
    config = copy.deepcopy(TINY)
    for key, value in changes.items():
        config = _merge(config, key, value)
    with pytest.raises(ConfigError) as info:
        validate_config(config)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_workflow_start_up_warns_where_a_job_may_still_run(caplog):
    with caplog.at_level("WARNING", logger="mesodyn.config"):
        validate_config(_merge(TINY, "data.kdv.n_samples", 2))  # 1/1/0: fits, but nothing held out
    assert "leaves the test part of data.kdv.n_samples = 2 trajectories empty" in caplog.text
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        has_gpu = False
    if not has_gpu:
        caplog.clear()
        with caplog.at_level("WARNING", logger="mesodyn.config"):
            validate_config(_merge(TINY, "fit.train.device", "cuda"))  # a GPU node may run the fits
        assert "no CUDA device" in caplog.text
