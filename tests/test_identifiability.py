"""What a model learned: its linear response, the known truths it is compared with (the PDEs' linear symbols and
the chains' lattice dispersion in the data's frame), and the spread across fits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import xarray as xr

from mesodyn.chains.data import make_chain_data
from mesodyn.chains.dispersion import mesoscopic_linear_rate, sound_speed
from mesodyn.diagnostics import identifiability, linear_response, relative_residual, relative_spread, \
    true_linear_rate
from mesodyn.models import build_model, cast_module, config_for_data
from mesodyn.onsager import SpecOnsNet
from mesodyn.tables import identifiability_table, write_identifiability_table

pytestmark = pytest.mark.usefixtures("torch_one_thread")

TWO_PI = 2 * math.pi
CHAIN_ATTRS = {
    "fput": {"model": "fput", "c": 1.0, "alpha": 1.0, "beta": 0.0, "epsilon": TWO_PI / 128},
    "fene": {"model": "fene", "c": 1.0, "H": 1.0, "R_over_eps2": 50.0, "epsilon": TWO_PI / 209},
}


def member(shape, seed, *, stepper="euler", operators="both", dt=1e-3):
    """A float64 SpecOnsNet with every parameter drawn at random (no V_nl: its linear part is then known)."""
    torch.manual_seed(seed)
    length = tuple(TWO_PI * (1 + 0.5 * i) for i in range(len(shape)))
    model = SpecOnsNet(shape=shape, length=length, dt=dt, operators=operators, hidden=8, nonlocal_modes=0,
                       stepper=stepper).double()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return model


def classical(shape, length, dt, **kwargs):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        model = build_model(config_for_data({"name": "classical"}, grid={"shape": list(shape),
                                                                           "length": list(length), "dt": dt},
                                            **kwargs))
    finally:
        torch.set_default_dtype(previous)
    return cast_module(model, device="cpu", dtype=torch.float64)


def f_second_derivative(model, s, h=1e-4):
    u = torch.tensor([s - h, s, s + h], dtype=torch.float64)
    with torch.no_grad():
        f = model.local_density(u).double().numpy()
    return (f[2] - 2 * f[1] + f[0]) / h**2


@pytest.mark.parametrize("shape, seed, state", [((32,), 0, 0.0), ((31,), 1, 0.4), ((6, 16), 2, -0.3)])
def test_linear_response_of_a_random_member_is_its_euler_map(shape, seed, state):
    """Explicit Euler of du/dt = -(M + W) dV/du linearized about u = s is, on mode k along x,
    G(k) = 1 - dt (m(k) + i phi(k)) (a + b k^2 + F''(s)): the probe must read exactly that."""
    model = member(shape, seed)
    dt = model.dt
    response = linear_response(model, state=state, delta=1e-5, device="cpu")
    with torch.no_grad():
        m, phi = model.operators.symbols(full=True)
    a, b = model.quadratic_coefficients()
    n = shape[-1]
    index = (0,) * (len(shape) - 1) + (slice(0, n // 2 + 1),)
    m, phi = m.double().numpy()[index], phi.double().numpy()[index]
    k = TWO_PI / model.config["length"][-1] * np.arange(n // 2 + 1)
    expected = 1 - dt * (m + 1j * phi) * (a + b * k**2 + f_second_derivative(model, state))
    np.testing.assert_allclose(response["G"], expected, rtol=0, atol=1e-8)
    np.testing.assert_allclose(response["k"], k)
    assert response["leakage"].max() < 1e-6  # the class is translation invariant
    np.testing.assert_allclose(response["euler_rate"], (expected - 1) / dt, atol=1e-5)


@pytest.mark.parametrize("system", ["allen_cahn", "kdv", "cahn_hilliard"])
@pytest.mark.parametrize("state", [0.0, 0.3])
def test_true_rates_are_those_of_the_classical_solvers_at_small_steps(system, state):
    """The PDEs' linear rates (signs, 1/eps^2, the KdV's 6 u u_x) agree with what our own classical SBDF1 step of
    the equation does to a small perturbation, read by the probe: the rate log(G)/dt tends to the truth as dt -> 0."""
    n, dt = 64, 1e-6
    attrs = {"dataset": system, **{"allen_cahn": {"epsilon": 0.1}, "cahn_hilliard": {"kappa": 0.1}}.get(system, {})}
    model = classical((n,), (TWO_PI,), dt, dataset=system, attrs=attrs)
    response = linear_response(model, state=state, delta=1e-6, device="cpu")
    k = response["k"][1:12]
    truth = true_linear_rate(system, k, state=state, attrs=attrs)
    err = np.abs(response["rate"][1:12] - truth) / np.sqrt(np.mean(np.abs(truth) ** 2))
    assert err.max() < 2e-3, err


@pytest.mark.parametrize("chain", ["fput", "fene"])
def test_lattice_dispersion_has_the_classical_limits_long_waves(chain):
    """At long waves the lattice rate in the data's frame is the linear part of our KdV (FPUT) / mKdV (FENE)
    limit, i c k^3 / 24 about u = 0 (and, for FPUT about u = s, minus i alpha s k): the units of the map."""
    attrs = CHAIN_ATTRS[chain]
    k = np.arange(1.0, 4.0)
    lattice = mesoscopic_linear_rate(attrs, k)
    np.testing.assert_allclose(lattice.imag, k**3 / 24, rtol=2e-3)
    assert np.all(lattice.real == 0)
    model = classical((64,), (TWO_PI,), 1e-7, dataset=chain, attrs=attrs)
    for state in (0.0, 0.5):
        probed = linear_response(model, state=state, delta=1e-6, device="cpu")["rate"][1:4]
        exact = mesoscopic_linear_rate(attrs, k, state=state)
        np.testing.assert_allclose(probed.imag, exact.imag, rtol=5e-3, atol=2e-3 * (1 + state))


def test_sound_speed_of_the_chains():
    assert sound_speed(CHAIN_ATTRS["fput"], 0.1) == pytest.approx(math.sqrt(1 + 0.2))
    fene = CHAIN_ATTRS["fene"]
    big_r = fene["R_over_eps2"] * fene["epsilon"] ** 2
    assert sound_speed(fene, 0.0) == 1.0
    assert sound_speed(fene, 0.5 * big_r) == pytest.approx(math.sqrt(1.25 / 0.75**2))
    with pytest.raises(ValueError, match="inside"):
        sound_speed(fene, 1.5 * big_r)
    with pytest.raises(ValueError, match="fput"):
        sound_speed({"model": "toda", "c": 1.0}, 0.0)


def _mode_ratios(fields):
    u_hat = np.fft.rfft(fields["u"].values, axis=-1)
    tau = fields["time"].values
    for s in range(u_hat.shape[0]):
        for k in fields["ic_k"].values[s]:
            yield int(k), u_hat[s, :, k] / u_hat[s, 0, k], tau


@pytest.mark.parametrize("substeps, as_simulated", [(50, True), (400, False)])
def test_a_linear_chain_follows_the_mapped_dispersion(substeps, as_simulated):
    """A linear FPUT chain (alpha = beta = 0) simulated and coarse-grained as the data sets are: every excited mode
    of u(xi, tau) turns as exp(lambda(k) tau) with the lattice's dispersion mapped into the data's frame, to 0.4 %
    over 200 slow steps. At the paper's chain step the data follow the velocity-Verlet dispersion (the exact one is
    then off by up to 5 %); at 8x smaller steps the exact relation."""
    params = dict(n_samples=2, n_sites=128, c=1.0, alpha=0.0, beta=0.0, dt_slow=1e-3, t_final=0.2, save_every=10,
                  substeps=substeps, n_modes=3, max_k=6, u_bound=20.0)
    fields, _ = make_chain_data("fput", params, seed=0, progress=False)
    worst, worst_other = 0.0, 0.0
    for k, ratio, tau in _mode_ratios(fields):
        lam = mesoscopic_linear_rate(fields.attrs, [k], as_simulated=as_simulated)[0]
        other = mesoscopic_linear_rate(fields.attrs, [k], as_simulated=not as_simulated)[0]
        worst = max(worst, float(np.abs(ratio - np.exp(lam * tau)).max()))
        worst_other = max(worst_other, float(np.abs(ratio - np.exp(other * tau)).max()))
    assert worst < 4e-3, worst
    if as_simulated:
        assert worst_other > 5 * worst  # the step's own dispersion is what the data hold


def test_spread_and_residual():
    q = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    assert relative_spread(q) == 0.0
    assert math.isnan(relative_spread(q[:1]))
    assert relative_spread(np.array([[1.0, 1.0], [1.2, 1.2]])) == pytest.approx(0.1 / 1.1)
    l2, worst = relative_residual(np.array([[1.1, 2.0]]), np.array([1.0, 2.0]))
    assert l2 == pytest.approx(0.1 / math.sqrt(5)) and worst == pytest.approx(0.1)
    _, worst_rms = relative_residual(np.array([[1.1, 2.0]]), np.array([1.0, 2.0]), per_mode=False)
    assert worst_rms == pytest.approx(0.1 / math.sqrt(2.5))


def _fields(shape=(32,), n=4, frames=3, seed=0, **attrs):
    rng = np.random.default_rng(seed)
    x = TWO_PI * np.arange(shape[-1]) / shape[-1]
    u = sum(rng.normal(size=(n, frames, 1)) * np.cos(k * x + rng.uniform(0, TWO_PI)) for k in (1, 2, 3))
    return xr.Dataset({"u": (("sample", "time", "x"), u)},
                      coords={"time": np.arange(frames) * 1e-3, "x": x},
                      attrs={"dataset": "allen_cahn", "length": TWO_PI, **attrs})


def test_identifiability_of_identical_and_different_fits(tmp_path):
    """Two copies of one member: zero spread; two different members: a spread the table reports; a member that
    is the truth (Allen–Cahn, M = 1 in the b = 1 gauge): its symbol's residual is round-off."""
    same = identifiability([member((32,), 0), member((32,), 0)], _fields(), labels=["a", "b"], samples=[0, 1])
    assert float(same["symbol_spread"]) == 0.0 and float(same["rate_zero_spread"]) == 0.0
    different = identifiability([member((32,), 0), member((32,), 5)], _fields(), labels=["a", "b"],
                                samples=[0, 1, 2], system="allen_cahn")
    assert float(different["symbol_spread"]) > 0.1
    assert float(different["k_energetic"]) == pytest.approx(3.0)
    assert different["energetic"].values.tolist()[:5] == [0, 1, 1, 1, 0]
    path = tmp_path / "identifiability.nc"
    different.attrs["run_dirs"] = "results/models/allen_cahn/speconsnet/seed1"
    different.to_netcdf(path)
    table = identifiability_table([path])
    assert table.loc[0, "identified"] is False or table.loc[0, "identified"] == False  # noqa: E712
    assert table.loc[0, "truth"] == "allen_cahn" and table.loc[0, "run"] == "speconsnet"
    paths = write_identifiability_table(table, tmp_path / "table")
    assert "| allen_cahn" in paths["md"].read_text()
    different.attrs["run"] = "halves"  # a group of runs (identifiability.compare) is named by the group
    different.to_netcdf(tmp_path / "group.nc")
    assert identifiability_table([tmp_path / "group.nc"]).loc[0, "run"] == "halves"


def test_identifiability_of_the_true_allen_cahn_model():
    """The true-V ablation at its initial operators (m = 1, W = 0) is Allen–Cahn itself: the symbol's residual is
    zero and the linear rates of its (small-step) Euler map are the truth's."""
    options = {"name": "speconsnet_true_v", "stepper": "euler", "init_m_cap": None}
    model = cast_module(build_model(config_for_data(options, grid={"shape": [32], "length": [TWO_PI], "dt": 1e-6},
                                                    dataset="allen_cahn", attrs={"epsilon": 0.1})),
                        device="cpu", dtype=torch.float64)
    out = identifiability([model], _fields(epsilon=0.1), labels=["true"], samples=[0, 1], system="allen_cahn")
    assert float(out["symbol_residual"]) < 1e-12
    assert float(out["rate_zero_residual"]) < 1e-3 and float(out["rate_mean_residual"]) < 1e-3
    assert math.isnan(float(out["symbol_spread"]))


def test_classical_cahn_hilliard_is_the_examples_own_scheme():
    """The classical row of a data set that declares pde: cahn_hilliard steps exactly as the worked example's
    generator (examples/make_cahn_hilliard.py, written without mesodyn): one frame of 25 steps agrees to round-off."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "make_cahn_hilliard", Path(__file__).resolve().parents[1] / "examples" / "make_cahn_hilliard.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    u, _, _ = example.simulate(n_samples=3, n_grid=32, kappa=0.1, dt=1e-3, save_every=25, n_frames=2, seed=4)
    model = classical((32,), (TWO_PI,), 1e-3, dataset="cahn_hilliard", attrs={"kappa": 0.1})
    assert model.cfg.pde == "cahn_hilliard" and model.cfg.kappa == 0.1
    v = torch.as_tensor(u[:, 0])
    with torch.no_grad():
        for _ in range(25):
            v = model.step(v)
    np.testing.assert_allclose(v.numpy(), u[:, 1], rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="kappa"):
        classical((32,), (TWO_PI,), 1e-3, dataset="cahn_hilliard", attrs={})


# -- which fits the workflow compares ----------------------------------------------------------------------------------
def _config_with_halves(**compare):
    import copy
    from pathlib import Path

    from mesodyn.config import read_config_file, validate_config

    raw = copy.deepcopy(read_config_file(Path(__file__).resolve().parents[1] / "config" / "ci.yaml"))
    models = raw["fit"]["models"]
    for i in (0, 1):
        models[f"half{i}"] = {**models["speconsnet"], "train": {"train_part": [i, 2]}}
    raw["fit"]["datasets"]["allen_cahn"]["models"] += ["half0", "half1"]
    raw["identifiability"] = {"compare": compare or {"halves": ["half0", "half1"]}}
    return validate_config(raw)


def test_identifiability_compares_the_diagnosed_run_the_hypotheses_and_the_groups():
    from mesodyn.figure_plan import identifiability_entries

    entries = {(e["dataset"], e["run"]): e for e in identifiability_entries(_config_with_halves())}
    assert ("allen_cahn", "speconsnet_m_local") in entries and ("kdv", "speconsnet_m_local") in entries
    halves = entries[("allen_cahn", "halves")]
    assert halves["run_dirs"] == ["results/models/allen_cahn/half0/seed0", "results/models/allen_cahn/half1/seed0"]
    assert halves["path"] == "results/diagnostics/allen_cahn/halves/identifiability.nc"
    # where both halves are fitted: allen_cahn (named there) and kdv (which fits every run in ci.yaml)
    assert {dataset for dataset, run in entries if run == "halves"} == {"allen_cahn", "kdv"}
    assert len({e["path"] for e in entries.values()}) == len(entries)


@pytest.mark.parametrize("compare, message", [
    ({"speconsnet": ["half0", "half1"]}, "must not take the name of a run"),
    ({"halves": ["half0", "nope"]}, "names 'nope', which is not a run of fit.models"),
    ({"halves": ["half0", "classical"]}, "names 'classical', a classical model"),
])
def test_a_wrong_identifiability_group_is_one_sentence(compare, message):
    from mesodyn.config import ConfigError
    from mesodyn.figure_plan import identifiability_entries

    with pytest.raises(ConfigError, match=message):
        identifiability_entries(_config_with_halves(**compare))
