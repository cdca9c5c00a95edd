"""Config validation (one clear sentence per mistake), the fields contract, provenance."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
import yaml

from mesodyn.config import ConfigError, load_config, validate_config
from mesodyn.fields import FieldsContractError, read_fields, validate_fields, write_fields
from mesodyn.provenance import provenance_attrs, to_netcdf_attrs


@pytest.mark.parametrize("config, fragment", [
    ({"sed": 1}, "unknown config key 'sed' at the top level"),
    ({"data": {"fput": {"n_sample": 3}}}, "unknown config key 'n_sample' under 'data.fput'"),
    ({"data": {"fput": {"n_samples": 0}}}, "config key 'data.fput.n_samples' = 0 is invalid"),
    ({"coarse": {"method": "spline"}}, "config key 'coarse.method' is 'spline'; it must be one of"),
    ({"data": {"fene": {"substeps": "many"}}}, "config key 'data.fene.substeps' is 'many'; it must be a positive"),
    ({"datasets": ["fput", "water"]}, "config key 'datasets.1' is 'water'"),
    ({"data": {"fput": {"n_modes": 9}}}, "config section 'data.fput' is inconsistent: n_modes (9)"),
    ({"data": {"fene": {"r_bound": 1.5}}}, "config key 'data.fene.r_bound' = 1.5 is invalid"),
    ({"data": {"kdv": {"n_modes": 7}}}, "config section 'data.kdv' is inconsistent: kdv: n_modes = 7 exceeds"),
    ({"fit": {"models": {"fast": {"name": "speconsnet", "local_derivative": "chebyshev"}}}},
     "config 'fit.models.fast' is invalid: local_derivative must be one of exact, interpolant"),
    ({"fit": {"models": {"m": {"name": "speconsnet", "hiden": 8}}}},
     "config 'fit.models.m' is invalid: unknown option 'hiden' of model 'speconsnet'"),
    ({"fit": {"models": {"m": {"name": "fnoo"}}}}, "config 'fit.models.m' is invalid: model name must be one of"),
    ({"fit": {"models": {"m": {"name": "fno", "n_modes": 0}}}},
     "config 'fit.models.m' is invalid: n_modes must be a positive integer"),
    ({"datasets": ["allen_cahn_2d"], "fit": {"models": {"o": {"name": "onsagernet"}}}},
     "config 'fit.models.o' cannot be fitted on 'allen_cahn_2d': model 'onsagernet' does not apply"),
    ({"datasets": ["fput"], "fit": {"models": {"t": {"name": "speconsnet_true_v"}}}},
     "model 'speconsnet_true_v' does not apply to data set 'fput'"),
    ({"datasets": ["kdv"], "fit": {"datasets": {"kdv": {"models": ["nope"]}}}},
     "config 'fit.datasets.kdv.models' names 'nope', which is not a run of fit.models"),
    # cross-key training settings: once tracebacks from inside the fit rule
    ({"fit": {"train": {"split": [0.5, 0.5, 0.5]}}},
     "config 'fit' training settings of run 'speconsnet' on data set 'fput' (fit.train, fit.datasets.fput, "
     "fit.models.speconsnet.train) are inconsistent: split"),
    ({"datasets": ["kdv"], "fit": {"models": {"f": {"name": "fno", "train": {"max_epochs": 10, "valid_every": 20}}}}},
     "training settings of run 'f' on data set 'kdv' (fit.train, fit.datasets.kdv, fit.models.f.train) are "
     "inconsistent: max_epochs (10) must be at least valid_every (20)"),
    ({"fit": {"models": {"f": {"name": "fno", "train": {"max_epoch": 10}}}}}, "fit.models.f.train"),
    ({"datasets": ["kdv"], "fit": {"train": {"window": 2, "rollout_steps": 3}}},
     "are inconsistent: rollout_steps (3) must be smaller than window (2)"),
    ({"fit": {"train": {"schedule": "cosine", "max_epochs": 100, "warmup_epochs": 100}}},
     "warmup_epochs must be an integer in [0, max_epochs)"),
])
def test_config_mistakes_give_one_sentence(config, fragment):
    with pytest.raises(ConfigError) as info:
        validate_config(config)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


def test_defaults_are_the_paper_values():
    config = validate_config({})
    assert config["seed"] == 0
    assert config["data"]["fput"]["n_samples"] == 1000 and config["data"]["fput"]["substeps"] == 50
    assert config["data"]["fene"]["substeps"] == "auto" and config["data"]["fene"]["R_over_eps2"] == 50.0
    assert config["coarse"]["method"] == "linear"


def test_shipped_configs_are_valid():
    from mesodyn.figure_plan import hypotheses_settings

    for name in ("config/config.yaml", "config/ci.yaml", "config/paper.yaml", "config/hypotheses.yaml"):
        load_config(name)
    settings = hypotheses_settings(load_config("config/hypotheses.yaml"))
    assert sorted(settings["files"]) == ["allen_cahn", "kdv"] and len(settings["files"]["kdv"]) == 12


def test_bad_yaml_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("seed: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    path.write_text(yaml.safe_dump([1, 2]))
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(path)


def _tiny_fields():
    u = np.random.default_rng(0).normal(size=(2, 3, 8))
    return xr.Dataset(
        {"u": (("sample", "time", "x"), u, {"long_name": "u", "units": "1"}),
         "ic_k": (("sample", "mode"), np.ones((2, 1), dtype=int)),
         "ic_amplitude": (("sample", "mode"), np.ones((2, 1))),
         "ic_phase": (("sample", "mode"), np.zeros((2, 1)))},
        coords={"time": ("time", np.arange(3.0), {"long_name": "t", "units": "1"}),
                "x": ("x", np.arange(8.0), {"long_name": "x", "units": "1"})},
    )


def test_fields_roundtrip_is_byte_identical_and_validated(tmp_path):
    ds = _tiny_fields()
    a = write_fields(ds, tmp_path / "a.nc", params={"nested": {"k": [1, 2]}, "flag": True}, config={"seed": 0})
    b = write_fields(ds, tmp_path / "b.nc", params={"nested": {"k": [1, 2]}, "flag": True}, config={"seed": 0})
    assert a.read_bytes() == b.read_bytes()
    back = read_fields(a)
    np.testing.assert_array_equal(back.u.values, ds.u.values)
    assert back.attrs["nested"] == '{"k": [1, 2]}' and back.attrs["flag"] == 1
    for key in ("mesodyn_version", "git_commit", "config"):
        assert key in back.attrs
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary left behind


@pytest.mark.parametrize("mutate, match", [
    (lambda ds: ds.drop_vars("ic_phase"), "ic_phase"),
    (lambda ds: ds.assign(u=ds.u.astype("float32")), "float64"),
    (lambda ds: ds.assign(u=ds.u.transpose("x", "time", "sample")), "dims"),
    (lambda ds: ds.assign(u=ds.u.where(ds.u > 0)), "non-finite"),
])
def test_contract_violations_are_named(mutate, match):
    ds = _tiny_fields()
    ds.attrs.update(provenance_attrs({}))
    validate_fields(ds)
    with pytest.raises(FieldsContractError, match=match):
        validate_fields(mutate(ds))


def test_netcdf_attrs_are_plain():
    attrs = to_netcdf_attrs({"a": None, "b": np.float64(1.5), "c": (1, 2), "d": False})
    assert attrs == {"a": "none", "b": 1.5, "c": "[1, 2]", "d": 0}


def test_yaml_exponents_without_a_point_are_numbers():
    """PyYAML reads 4e-5 as a string; the config still means the number."""
    config = validate_config(yaml.safe_load("data:\n  kdv:\n    dt: 2e-4\n  fput:\n    dt_slow: 1e-3\n"))
    assert config["data"]["kdv"]["dt"] == 2e-4 and config["data"]["fput"]["dt_slow"] == 1e-3
    with pytest.raises(ConfigError, match="data.kdv.dt"):
        validate_config({"data": {"kdv": {"dt": "fast"}}})


def test_fit_runs_follow_the_per_data_set_models_and_per_run_seeds():
    from mesodyn.config import fit_runs, run_model_config

    config = validate_config({
        "datasets": ["kdv", "allen_cahn_2d"],
        "fit": {
            "models": {"s": {"name": "speconsnet"}, "f": {"name": "fno", "seeds": [7]},
                       "c": {"name": "classical"}, "o": {"name": "onsagernet"}},
            "seeds": [1, 2],
            "datasets": {"allen_cahn_2d": {"models": ["s", "f", "c"]}},
        },
    })
    runs = fit_runs(config)
    assert ("kdv", "o", 1) in runs and not any(d == "allen_cahn_2d" and r == "o" for d, r, _ in runs)
    assert [s for d, r, s in runs if (d, r) == ("kdv", "f")] == [7]  # the run's own seeds
    assert [s for d, r, s in runs if (d, r) == ("kdv", "c")] == [1]  # not trainable: the first seed only
    assert [s for d, r, s in runs if (d, r) == ("kdv", "s")] == [1, 2]
    assert run_model_config(config["fit"]["models"]["f"]) == {"name": "fno"}
