"""Long horizons: a step that guarantees decay never raises V over many steps on random members, a diverging toy
model is flagged at the step it overflows, and the table and figure of the long-horizon files are well formed."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from mesodyn.diagnostics import energy_rises, long_horizon, write_diagnostic
from mesodyn.onsager import SpecOnsNet
from mesodyn.plotting import plot_long_horizon
from mesodyn.tables import long_horizon_table, write_long_horizon_table

pytestmark = pytest.mark.usefixtures("torch_one_thread")

TWO_PI = 2 * math.pi


def random_fields(*, n_samples=4, n_time=6, nx=16, amplitude=1.5, seed=0):
    """Frames of random smooth fields (only frame 0 and the data's max |u| matter to the diagnostic)."""
    rng = np.random.default_rng(seed)
    x = np.arange(nx) * TWO_PI / nx
    u = np.zeros((n_samples, n_time, nx))
    for k in (1, 2, 3):
        a, p = rng.uniform(0, amplitude / 3, (n_samples, n_time, 1)), rng.uniform(0, TWO_PI, (n_samples, n_time, 1))
        u += a * np.sin(k * x + p)
    return xr.Dataset({"u": (("sample", "time", "x"), u, {"units": "1"})},
                      coords={"time": ("time", np.arange(n_time) * 0.1, {"units": "1"}),
                              "x": ("x", x, {"units": "1"})}, attrs={"dataset": "toy"})


def random_member(seed, *, stepper, dt):
    """A float64 SpecOnsNet with every parameter drawn at random (V non-quadratic, M and W both present)."""
    torch.manual_seed(seed)
    model = SpecOnsNet(shape=(16,), length=(TWO_PI,), dt=dt, operators="both", hidden=8, nonlocal_modes=3,
                       stepper=stepper).double()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return model


class Growth:
    """A toy model of the interface that multiplies trajectory ``i`` by ``factors[i]`` each step (no energy)."""

    def __init__(self, factors, dt=0.1):
        self.factors, self.dt, self.config = factors, dt, {"name": "growth"}

    def step(self, u):
        return u * torch.as_tensor(self.factors, dtype=u.dtype).reshape(-1, 1)


@pytest.mark.parametrize("stepper", ["stabilized", "avf"])
@pytest.mark.parametrize("seed", [0, 1])
def test_a_decay_guaranteeing_step_never_raises_v_over_a_long_horizon(stepper, seed):
    # dt = 0.5 is far beyond explicit Euler's stability on 16 modes; the guarantee holds for every dt
    model = random_member(seed, stepper=stepper, dt=0.5)
    ds = long_horizon(model, random_fields(seed=seed), samples=[0, 1, 2, 3], n_steps=60, dtype="float64",
                      device="cpu")
    assert (ds["first_nonfinite_step"].values == -1).all() and (ds["finite_fraction"].values == 1).all()
    energy = ds["energy"].values
    assert np.isfinite(energy).all() and energy.shape == (4, 61)
    assert (ds["energy_rise_steps"].values == 0).all()
    assert (np.diff(energy, axis=1) <= 1e-10 * np.maximum(np.abs(energy[:, :-1]), 1)).all()
    assert (ds["energy_max_rise"].values <= 1e-10).all() and (energy[:, -1] < energy[:, 0]).all()  # it dissipates
    assert ds["max_abs_u_ratio"].values.min() > 0 and ds.attrs["n_steps"] == 60 and ds.attrs["has_energy"] == 1


def test_an_interpolant_model_records_v_from_its_table_and_it_agrees_with_the_exact_v():
    """An interpolant SpecOnsNet's long horizon reads ``F`` from its verified table (``energy_density = "table"``);
    the same member with the exact ``F'`` records the exact ``V``: the two agree to the interpolant's tolerance
    (float64), and the AVF step raises neither."""
    model = random_member(0, stepper="avf", dt=0.5)
    exact = long_horizon(model, random_fields(), samples=[0, 1, 2, 3], n_steps=30, dtype="float64", device="cpu")
    model.local_derivative = "interpolant"
    tabled = long_horizon(model, random_fields(), samples=[0, 1, 2, 3], n_steps=30, dtype="float64", device="cpu")
    assert exact.attrs["energy_density"] == "exact" and tabled.attrs["energy_density"] == "table"
    a, b = exact["energy"].values, tabled["energy"].values
    assert np.isfinite(b).all() and (tabled["energy_rise_steps"].values == 0).all()
    assert np.abs(a - b).max() <= 1e-9 * np.abs(a).max() and not np.array_equal(a, b)


def test_explicit_euler_at_the_same_step_raises_v_and_is_counted():
    model = random_member(0, stepper="euler", dt=0.5)
    ds = long_horizon(model, random_fields(), samples=[0, 1], n_steps=60, dtype="float64", device="cpu")
    # explicit Euler has no such guarantee: V rises (or the state blows up) on the way
    assert (ds["energy_rise_steps"].values > 0).any() or (ds["first_nonfinite_step"].values > 0).any()


def test_a_diverging_toy_model_is_flagged_at_the_step_it_overflows():
    data = random_fields(n_samples=3)
    data["u"].values[:, 0] /= np.abs(data["u"].values[:, 0]).max(axis=1, keepdims=True)  # max |u0| = 1 each
    # float32 holds up to 3.4e38: 10**38 is finite, 10**39 is not; 4**64 = 3.4e38 * 1.0000...: finite at step 63
    ds = long_horizon(Growth([1.0, 10.0, 4.0]), data, samples=[0, 1, 2], n_steps=70, dtype="float32",
                      device="cpu")
    assert ds["first_nonfinite_step"].values.tolist() == [-1, 39, 64]
    frac = ds["finite_fraction"].values
    assert frac[38] == 1 and frac[39] == pytest.approx(2 / 3) and frac[64] == pytest.approx(1 / 3) and frac[0] == 1
    assert "energy" not in ds and ds.attrs["has_energy"] == 0
    ratio = ds["max_abs_u_ratio"].values
    data_max = float(ds["data_max_abs_u"])
    assert ratio[0] == pytest.approx(1 / data_max) and ratio[1] == pytest.approx(1e38 / data_max, rel=1e-5)


def test_energy_rises_ignores_round_off_and_stopped_rollouts():
    v = np.array([[1.0, 1.0 + 1e-7, 0.5, np.nan], [2.0, 3.0, np.nan, np.nan]])
    assert energy_rises(v, rtol=1e-5).tolist() == [[False, False, False], [True, False, False]]


def test_long_horizon_table_and_figure_are_well_formed(tmp_path):
    data = random_fields()
    paths = []
    for run, seed, model in (("speconsnet", 42, random_member(0, stepper="stabilized", dt=0.5)),
                             ("speconsnet", 43, random_member(1, stepper="stabilized", dt=0.5)),
                             ("growth", 0, Growth([1.0, 10.0, 1.0, 1.0]))):
        ds = long_horizon(model, data, samples=[0, 1, 2, 3], n_steps=50, dtype="float32", device="cpu")
        ds.attrs["run_dir"] = f"results/models/toy/{run}/seed{seed}"
        paths.append(write_diagnostic(ds, tmp_path / f"{run}{seed}.nc"))
    table = long_horizon_table(paths)
    assert table["run"].tolist() == ["speconsnet", "growth"]
    spec, growth = table.iloc[0], table.iloc[1]
    assert spec["seeds"] == "42 43" and spec["n_trajectories"] == 8 and spec["finite_fraction_last"] == 1.0
    assert spec["first_divergence_step"] == -1 and spec["energy_rose"] == 0 and spec["n_steps"] == 50
    assert growth["first_divergence_step"] == 39 and growth["finite_fraction_last"] == 0.75
    assert growth["energy_rose"] == -1 and growth["data_steps"] == 5
    out = write_long_horizon_table(table, tmp_path / "long_horizon")
    back = pd.read_csv(out["csv"])
    assert list(back.columns) == list(table.columns) and len(back) == 2
    md = out["md"].read_text()
    assert md.count("\n| ") == 3 and "no energy" in md and "| none " in md
    drawn = plot_long_horizon([xr.load_dataset(p) for p in paths], dataset="toy")
    assert drawn.numbers["growth"]["first_divergence_step"] == 39 and drawn.numbers["speconsnet"]["energy_rose"] == 0
    assert "all finite" in drawn.finding and "step 39" in drawn.finding


def test_long_horizon_plan_takes_the_configured_runs_and_data_sets():
    from mesodyn.config import ConfigError, load_config
    from mesodyn.figure_plan import long_horizon_plan

    config = load_config("config/config.yaml")
    plan = long_horizon_plan(config)
    assert {e["run"] for e in plan} == {"speconsnet_avf"}
    assert {e["dataset"] for e in plan} == {"fput", "fene", "kdv", "allen_cahn", "allen_cahn_2d"}
    config["figures"]["long_horizon_runs"] = None  # every run
    assert {"speconsnet", "res_onsagernet"} <= {e["run"] for e in long_horizon_plan(config)
                                                if e["dataset"] == "allen_cahn_2d"}
    config["figures"]["long_horizon_datasets"] = ["kdv"]
    assert {e["dataset"] for e in long_horizon_plan(config)} == {"kdv"}
    config["figures"]["long_horizon_datasets"] = ["kdv", "burgers"]
    with pytest.raises(ConfigError, match="long_horizon_datasets.*burgers"):
        long_horizon_plan(config)
