"""Out-of-distribution sets (mesodyn.ood): the generators' amplitude and k_offset, the variants' parameters, the
evaluation on every trajectory of every variant, and the table."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from mesodyn.chains.data import make_chain_data
from mesodyn.config import ConfigError, load_config
from mesodyn.continuum import make_dataset
from mesodyn.evaluation import evaluate
from mesodyn.fields import grid_from_data
from mesodyn.models import build_model, config_for_data
from mesodyn.ood import (check_ood, evaluate_ood, ood_data_files, ood_datasets, ood_metric_targets, ood_table,
                         ood_targets, variant_params, write_ood_table)

SHORT_KDV = {"n_samples": 4, "n_grid": 64, "t_final": 0.004}  # 4 frames of 1e-3


def _config(variants=None, datasets=("kdv", "fput", "allen_cahn_2d")):
    config = load_config("config/config.yaml")
    config["datasets"] = list(datasets)
    config["ood"] = {"variants": variants if variants is not None else
                     {"amp": {"amplitude": 2.0}, "band": {"k_offset": "band"}}, "n_samples": 20, "seed": 1}
    return config


def test_variant_params_scale_amplitude_bound_and_band():
    config = _config()
    amp = variant_params(config, "kdv", "amp")
    assert (amp["amplitude"], amp["k_offset"], amp["n_samples"]) == (2.0, 0, 20)
    assert amp["u_bound"] == 2 * config["data"]["kdv"]["u_bound"]
    band = variant_params(config, "kdv", "band")
    assert (band["amplitude"], band["k_offset"], band["u_bound"]) == (1.0, 6, config["data"]["kdv"]["u_bound"])
    assert variant_params(config, "fput", "band")["k_offset"] == config["data"]["fput"]["max_k"]
    assert variant_params(config, "allen_cahn_2d", "amp")["n_samples"] == 4  # a fifth in 2-D
    with pytest.raises(ValueError, match="no variant 'wide'"):
        variant_params(config, "kdv", "wide")
    with pytest.raises(ValueError, match="generated data sets"):
        variant_params(config, "my_data", "amp")
    config["ood"]["variants"]["far"] = {"k_offset": 200}
    with pytest.raises(ConfigError, match=r"ood.variants.far' cannot be drawn for kdv: .*Nyquist"):
        check_ood(config)


def test_targets_only_where_variants_are_named():
    config = _config()
    assert ood_datasets(config) == ["kdv", "fput", "allen_cahn_2d"]
    targets = ood_metric_targets(config)
    assert "results/ood/metrics/kdv/speconsnet/seed42.nc" in targets
    assert "results/ood/metrics/fput/speconsnet_avf/seed42.nc" in targets
    assert ood_targets(config) == ["results/tables/ood.csv", "results/tables/ood.md"]
    empty = _config(variants={})
    assert ood_datasets(empty) == [] and ood_metric_targets(empty) == [] and ood_targets(empty) == []


def test_continuum_amplitude_scales_and_k_offset_moves_the_band():
    base = make_dataset("kdv", params=SHORT_KDV, seed=3, progress=False, workers=1)
    doubled = make_dataset("kdv", params={**SHORT_KDV, "amplitude": 2.0, "u_bound": 20.0}, seed=3, progress=False,
                           workers=1)
    # the same draws, the initial field exactly twice the paper's (and a different solution after it)
    np.testing.assert_array_equal(doubled["u"].isel(time=0).values, 2 * base["u"].isel(time=0).values)
    assert not np.allclose(doubled["u"].isel(time=-1).values, 2 * base["u"].isel(time=-1).values)
    moved = make_dataset("kdv", params={**SHORT_KDV, "k_offset": 6}, seed=3, progress=False, workers=1)
    np.testing.assert_array_equal(moved["ic_k"].values, np.where(base["ic_k"] > 0, base["ic_k"] + 6, 0))
    power = np.abs(np.fft.rfft(moved["u"].isel(time=0).values, axis=-1)) ** 2
    assert power[:, 7:13].sum() / power[:, 1:].sum() > 0.9  # the drawn slots 7..12 (the x_len quirk leaks a little)
    with pytest.raises(ValueError, match="k_offset"):
        make_dataset("kdv", params={**SHORT_KDV, "k_offset": 27}, seed=3, progress=False)


def test_plane_waves_move_away_from_zero():
    params = {"n_samples": 2, "n_grid": 32, "t_final": 0.001, "max_k": 3}
    base = make_dataset("allen_cahn_2d", params=params, seed=0, progress=False, workers=1)
    moved = make_dataset("allen_cahn_2d", params={**params, "k_offset": 3}, seed=0, progress=False, workers=1)
    for axis in ("ic_kx", "ic_ky"):
        k0, k1 = base[axis].values, moved[axis].values
        np.testing.assert_array_equal(k1, k0 + 3 * np.sign(k0))


def test_chain_amplitude_and_k_offset():
    params = {"n_samples": 3, "n_sites": 64, "dt_slow": 1e-3, "t_final": 0.01, "save_every": 10, "substeps": 5}
    base, _ = make_chain_data("fput", params, seed=2, n_grid=64, keep_micro=0, progress=False)
    doubled, _ = make_chain_data("fput", {**params, "amplitude": 2.0}, seed=2, n_grid=64, keep_micro=0,
                                 progress=False)
    np.testing.assert_allclose(doubled["u"].isel(time=0).values, 2 * base["u"].isel(time=0).values, rtol=1e-12,
                               atol=1e-12)
    moved, _ = make_chain_data("fput", {**params, "k_offset": 6}, seed=2, n_grid=64, keep_micro=0, progress=False)
    power = np.abs(np.fft.rfft(moved["u"].isel(time=0).values, axis=-1)) ** 2
    assert power[:, 7:13].sum() / power[:, 1:].sum() > 0.99


def test_ood_files_evaluation_and_table(tmp_path, torch_one_thread):
    config = _config(variants={"amp": {"amplitude": 2.0}, "band": {"k_offset": "band"}}, datasets=("kdv",))
    config["data"]["kdv"] = {**config["data"]["kdv"], **SHORT_KDV}
    config["ood"]["n_samples"] = 3
    config["progress"] = False
    files = {v: ood_data_files("kdv", v, config, fields_path=tmp_path / f"{v}.nc", threads=1) for v in ("amp", "band")}
    variants = {v: xr.load_dataset(p) for v, p in files.items()}
    assert variants["amp"].attrs["ood_variant"] == "amp" and variants["amp"].sizes["sample"] == 3
    data = make_dataset("kdv", params=SHORT_KDV, seed=0, progress=False, workers=1)
    torch.manual_seed(0)
    model = build_model(config_for_data({"name": "speconsnet", "hidden": 8, "nonlocal_modes": 2},
                                        grid=grid_from_data(data), dataset="kdv"))
    out = evaluate_ood(model, variants, dataset="kdv", label="tiny", seed=0)
    assert out.sizes["variant"] == 2 and list(out["variant"].values) == ["amp", "band"]
    assert int(out["trained_on"].sum()) == 0 and (out["n_trajectories"] == 3).all()
    # each variant is its own evaluation set: the same numbers as an evaluation of that file alone
    alone = evaluate(model, variants["band"], split={"train": [], "valid": [], "test": [0, 1, 2]}, dataset="kdv",
                     paper=False)
    np.testing.assert_array_equal(out["rel_rmse"].sel(variant="band").values,
                                  alone["rel_rmse"].sel(set="heldout").values)
    ood_path = tmp_path / "ood.nc"
    out.to_netcdf(ood_path)
    heldout = evaluate(model, data, split={"train": [0], "valid": [1], "test": [2, 3]}, dataset="kdv", label="tiny",
                       paper=False)
    heldout_path = tmp_path / "heldout.nc"
    heldout.to_netcdf(heldout_path)
    table = ood_table([ood_path], [heldout_path], step=3)
    assert list(table["variant"]) == ["amp", "band"] and set(table["model"]) == {"tiny"}
    row = table.set_index("variant").loc["amp"]
    assert row["step3"] == pytest.approx(float(out["rel_rmse_mean"].sel(variant="amp", step=3)))
    inside = float(heldout["rel_rmse_mean"].sel(set="heldout", step=3))
    assert row["in_distribution_step3"] == pytest.approx(inside)
    assert row["ratio"] == pytest.approx(row["step3"] / inside)
    raw = out["rel_rmse_unclamped"].sel(variant="amp").values
    assert row["lost"] == int(((raw >= 1) | ~np.isfinite(raw)).any(axis=0).sum())
    assert row["nonfinite"] == int((~np.isfinite(raw)).any(axis=0).sum()) <= row["lost"]
    paths = write_ood_table(table, tmp_path / "ood")
    assert pd.read_csv(paths["csv"]).shape == table.shape
    assert "out of distribution" in paths["md"].read_text()
    assert math.isnan(ood_table([ood_path], step=3)["ratio"].iloc[0])  # no held-out file: no ratio
