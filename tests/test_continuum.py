"""Physics and contract tests of mesodyn.continuum: exact solutions, convergence orders, invariants,
energy decay, symmetry, the acceptance loop, clear errors, and the fields contract."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mesodyn.continuum import (
    BlowUpError,
    allen_cahn_energy,
    frame_schedule,
    kdv_hamiltonian,
    make_dataset,
    mass,
    solve_allen_cahn,
    solve_gkdv,
)
from mesodyn.continuum.initial import plane_waves_2d, sine_series_1d
from mesodyn.fields import read_fields, write_fields

TWO_PI = 2 * math.pi


def _order(dts, errors) -> float:
    """Least-squares slope of log(error) against log(dt)."""
    return float(np.polyfit(np.log(dts), np.log(errors), 1)[0])


def _kdv_soliton(x, t, *, speed, a, b, length, x0):
    """``u_t + a u u_x + b u_xxx = 0``: ``u = 3v/a sech²(√(v/b)/2 (x − vt − x0))`` (periodised; the tails are
    below 1e-12 at half a period for the parameters used)."""
    xi = (x - speed * t - x0 + length / 2) % length - length / 2
    return 3 * speed / a / np.cosh(np.sqrt(speed / b) / 2 * xi) ** 2


# ---------------------------------------------------------------------------------------------- schedule
def test_frame_schedule_follows_dedalus_accumulated_time():
    steps, times = frame_schedule(dt=4e-5, t_final=0.1, save_every=25)
    assert len(steps) == 101 and steps[-1] == 2500 and np.all(np.diff(steps) == 25)
    # 2500 accumulated steps stop short of 0.1, so Dedalus takes a 2501st (unrecorded) step.
    assert times[-1] == 0.0999999999999966
    assert times[-1] < 0.1


# ---------------------------------------------------------------------------------------------- KdV family
@pytest.mark.parametrize(
    ("a", "b", "speed", "length", "n", "t_end", "dts"),
    [
        (6.0, 1.0, 4.0, 40.0, 256, 1.0, [1 / 40, 1 / 80, 1 / 160, 1 / 320]),  # the paper's KdV
        (1.0, 1 / 24, 6.0, TWO_PI, 256, 0.05, [2.5e-3, 1.25e-3, 6.25e-4, 3.125e-4]),  # the FPUT limit
    ],
)
def test_kdv_soliton_and_etdrk4_fourth_order(a, b, speed, length, n, t_end, dts):
    x = length * np.arange(n) / n
    kw = dict(speed=speed, a=a, b=b, length=length, x0=length / 2)
    u0 = _kdv_soliton(x, 0.0, **kw)
    exact = _kdv_soliton(x, t_end, **kw)
    errors = [np.abs(solve_gkdv(u0, length=length, nonlinear=a, power=1, dispersion=b, times=[t_end], dt=dt)[0]
                     - exact).max() for dt in dts]
    order = _order(dts, errors)
    assert 3.6 < order < 4.6, (errors, order)  # ETDRK4: fourth order in time
    assert errors[-1] < 2e-5 * exact.max(), errors


def test_mkdv_soliton_with_fene_coefficients():
    """Focusing mKdV u_t + 0.664 u² u_x + u_xxx/24 = 0 (the FENE limit): u = √(6b/a) κ sech(κ(x − bκ²t))."""
    a, b, kappa, t_end, n = 0.664, 1 / 24, 8.0, 0.2, 256
    x = TWO_PI * np.arange(n) / n

    def exact(t):
        xi = (x - b * kappa**2 * t - math.pi + math.pi) % TWO_PI - math.pi
        return np.sqrt(6 * b / a) * kappa / np.cosh(kappa * xi)

    dts = [1e-3, 5e-4, 2.5e-4]
    errors = [np.abs(solve_gkdv(exact(0), length=TWO_PI, nonlinear=a, power=2, dispersion=b, times=[t_end],
                                dt=dt)[0] - exact(t_end)).max() for dt in dts]
    assert errors[-1] < 1e-6, errors  # amplitude 4.9: relative 2e-7
    assert _order(dts, errors) > 3.6, errors


def test_gkdv_batches_and_save_times():
    """Leading batch axes are independent solves; save time 0 returns the (Nyquist-free) initial field."""
    n = 64
    x = TWO_PI * np.arange(n) / n
    u0 = np.stack([np.stack([np.sin(x + p) * s for p in (0.0, 1.0, 2.0)]) for s in (0.5, 1.0)])  # (2, 3, n)
    times = [0.0, 0.01, 0.03]
    u = solve_gkdv(u0, length=TWO_PI, nonlinear=6.0, power=1, dispersion=1.0, times=times, dt=1e-3)
    assert u.shape == (2, 3, 3, n) and u.dtype == np.float64
    np.testing.assert_allclose(u[..., 0, :], u0, atol=1e-14)
    single = solve_gkdv(u0[1, 2], length=TWO_PI, nonlinear=6.0, power=1, dispersion=1.0, times=times, dt=1e-3)
    np.testing.assert_allclose(u[1, 2], single, atol=1e-13)
    assert np.abs(u[..., -1, :] - u0).max() > 1e-2  # it moved


def test_kdv_invariants_conserved():
    """ETDRK4 with conservative, alias-free products: mass exactly, ∫u² (conserved by the Galerkin
    truncation) and the Hamiltonian ∫u_x²/2 − u³ to the time-stepping error. Tolerance: 1e-10 relative at
    dt = 5e-5 over t = 0.1 (measured 3e-12)."""
    n = 256
    x = TWO_PI * np.arange(n) / n
    rng = np.random.default_rng(1)
    u0 = sum(rng.uniform() * np.sin(k * x + rng.uniform(0, TWO_PI)) for k in (1, 2, 3, 5))
    u0 = 0.3 + u0 / u0.std()
    u = solve_gkdv(u0, length=TWO_PI, nonlinear=6.0, power=1, dispersion=1.0,
                   times=np.linspace(0, 0.1, 11), dt=5e-5)
    h, m, p = kdv_hamiltonian(u), mass(u), (u**2).mean(-1)
    assert np.abs(m - m[0]).max() < 1e-12
    assert np.abs(p / p[0] - 1).max() < 1e-10
    assert np.abs(h / h[0] - 1).max() < 1e-10
    assert np.abs(u[-1] - u[0]).max() > 0.5  # a strongly nonlinear evolution, not a trivial one


def test_paper_kdv_conserves_mass():
    ds = make_dataset("kdv", params={"n_samples": 2, "t_final": 0.02}, seed=3, progress=False)
    m = mass(ds.u.values)
    # The k = 0 mode is untouched by the nonlinearity; only SBDF2's round-off (~5e-14 per frame) remains.
    assert np.abs(m - m[:, :1]).max() < 1e-11
    assert np.abs(m[:, 0]).max() > 1e-3  # the quirk: unselected slots give the KdV IC a non-zero mean


# ---------------------------------------------------------------------------------------------- Allen–Cahn
@pytest.mark.parametrize(("scheme", "dt"), [("paper", 4e-5), ("etdrk4", 2e-4)])
def test_allen_cahn_free_energy_never_increases(scheme, dt):
    u0 = sine_series_1d(np.random.default_rng(5), 3, n_grid=256, max_k=10, n_modes=3, normalize="minmax")["u0"]
    times = np.arange(101) * 1e-3
    u = solve_allen_cahn(u0, epsilon=0.1, times=times, dt=dt, scheme=scheme)
    energy = allen_cahn_energy(u, epsilon=0.1)
    assert np.all(np.diff(energy, axis=-1) < 0), energy  # strictly decreasing frame to frame
    assert np.all(energy[:, -1] < 0.9 * energy[:, 0])


def test_allen_cahn_2d_energy_never_increases():
    u0 = plane_waves_2d(np.random.default_rng(2), 2, n_grid=48, max_k=5, n_modes=5)["u0"]
    u = solve_allen_cahn(u0, epsilon=0.1, ndim=2, times=np.arange(21) * 2e-3, dt=4e-5, scheme="paper")
    energy = allen_cahn_energy(u, epsilon=0.1, ndim=2)
    assert np.all(np.diff(energy, axis=-1) < 0), energy


def test_sbdf2_paper_scheme_is_second_order():
    u0 = sine_series_1d(np.random.default_rng(0), 2, n_grid=256, max_k=10, n_modes=3, normalize="minmax")["u0"]
    t_end = 0.02
    ref = solve_allen_cahn(u0, epsilon=0.1, times=[t_end], dt=1e-5, scheme="etdrk4")
    dts = [4e-4, 2e-4, 1e-4, 5e-5]
    errors = [np.abs(solve_allen_cahn(u0, epsilon=0.1, times=[t_end], dt=dt, scheme="paper") - ref).max()
              for dt in dts]
    assert 1.85 < _order(dts, errors) < 2.15, errors  # measured 1.99


@pytest.mark.parametrize(("scheme", "dt"), [("paper", 4e-5), ("etdrk4", 2e-4)])
def test_allen_cahn_2d_symmetric_field_stays_symmetric(scheme, dt):
    n = 64
    x = TWO_PI * np.arange(n) / n
    rng = np.random.default_rng(7)
    base = plane_waves_2d(rng, 1, n_grid=n, max_k=4, n_modes=6)["u0"][0]
    u0 = 0.5 * (base + base.T) + 0.2 * (np.sin(x)[:, None] + np.sin(x)[None, :])
    assert np.array_equal(u0, u0.T)
    u = solve_allen_cahn(u0, epsilon=0.1, ndim=2, times=np.arange(11) * 2e-3, dt=dt, scheme=scheme)
    asym = np.abs(u - np.swapaxes(u, -1, -2)).max()
    assert asym < 1e-12, asym
    assert np.abs(u[-1] - u[0]).max() > 0.1  # the field evolved


def test_allen_cahn_1d_and_2d_agree_on_x_only_data():
    """A 2-D field constant in y evolves as the 1-D equation: checks the 2-D padding and axis handling."""
    n = 64
    u1 = sine_series_1d(np.random.default_rng(4), 1, n_grid=n, max_k=4, n_modes=2, normalize="minmax")["u0"][0]
    times = np.arange(6) * 2e-3
    one = solve_allen_cahn(u1, epsilon=0.1, times=times, dt=4e-5, scheme="paper")
    two = solve_allen_cahn(np.broadcast_to(u1, (n, n)).copy(), epsilon=0.1, ndim=2, times=times, dt=4e-5,
                           scheme="paper")
    np.testing.assert_allclose(two, np.broadcast_to(one[:, None, :], two.shape), atol=1e-12)


# ---------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("epsilon", [-0.1, 0.0, float("nan")])
def test_bad_epsilon_is_a_clear_error(epsilon):
    with pytest.raises(ValueError, match="epsilon"):
        make_dataset("allen_cahn", params={"epsilon": epsilon}, seed=0, progress=False)
    with pytest.raises(ValueError, match="epsilon"):
        solve_allen_cahn(np.zeros(16), epsilon=epsilon, times=[0.01], dt=1e-3)


def test_bad_parameters_are_clear_errors():
    with pytest.raises(ValueError, match="dt"):
        make_dataset("kdv", params={"dt": -1e-5}, seed=0, progress=False)
    with pytest.raises(ValueError, match="unknown parameter 'epsilon'"):
        make_dataset("kdv", params={"epsilon": 0.1}, seed=0, progress=False)
    with pytest.raises(ValueError, match="scheme"):
        make_dataset("kdv", params={"scheme": "euler"}, seed=0, progress=False)
    with pytest.raises(ValueError, match="n_grid"):
        make_dataset("allen_cahn", params={"n_grid": 101}, seed=0, progress=False)
    with pytest.raises(ValueError, match="unknown continuum data set"):
        make_dataset("burgers", params={}, seed=0, progress=False)
    with pytest.raises(ValueError, match="dt"):
        solve_gkdv(np.zeros(16), length=TWO_PI, nonlinear=1.0, power=1, dispersion=1.0, times=[0.1], dt=0.0)
    with pytest.raises(ValueError, match="times"):
        solve_gkdv(np.zeros(16), length=TWO_PI, nonlinear=1.0, power=1, dispersion=1.0, times=[0.2, 0.1],
                   dt=1e-3)


def test_non_finite_initial_data_is_a_clear_error():
    u0 = np.zeros(32)
    u0[3] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        solve_gkdv(u0, length=TWO_PI, nonlinear=6.0, power=1, dispersion=1.0, times=[0.01], dt=1e-3)
    u0[3] = np.inf
    with pytest.raises(ValueError, match="non-finite"):
        solve_allen_cahn(u0, epsilon=0.1, times=[0.01], dt=1e-3)


def test_blow_up_raises_instead_of_returning_nans():
    # A tall soliton with an explicit step far beyond the nonlinear stability limit.
    n = 256
    x = TWO_PI * np.arange(n) / n
    u0 = _kdv_soliton(x, 0.0, speed=100.0, a=6.0, b=1.0, length=TWO_PI, x0=math.pi)
    with pytest.raises(BlowUpError, match="non-finite"):
        solve_gkdv(u0, length=TWO_PI, nonlinear=6.0, power=1, dispersion=1.0, times=[0.02], dt=2e-3)
    with pytest.raises(BlowUpError, match="u_bound"):
        solve_allen_cahn(np.full(16, 0.9) + 0.1 * np.sin(TWO_PI * np.arange(16) / 16), epsilon=0.1,
                         times=[0.01], dt=1e-3, u_bound=0.5)
    # Data sets reject blown-up trials per the acceptance rule and give up with a clear error.
    with pytest.raises(BlowUpError, match="trials stayed finite"):
        make_dataset("allen_cahn", params={"n_samples": 2, "scheme": "etdrk4", "dt": 2e-2, "save_every": 1,
                                           "t_final": 0.2}, seed=0, progress=False)


# ---------------------------------------------------------------------------------------------- data sets
def test_acceptance_loop_keeps_first_accepted_trials_in_order():
    """With a bound that rejects some trials, the data set holds exactly the accepted trials, in stream
    order, with the values they have in a run that accepts everything."""
    params = {"t_final": 0.005}
    everything = make_dataset("kdv", params={**params, "n_samples": 12, "u_bound": 1e6}, seed=0, progress=False)
    peaks = np.abs(everything.u.values).max(axis=(1, 2))
    bound = 2.6
    expected = np.flatnonzero(peaks <= bound)[:6]
    assert expected.size == 6 and expected[-1] > 5  # some rejections happen before the 6th acceptance
    ds = make_dataset("kdv", params={**params, "n_samples": 6, "u_bound": bound}, seed=0, progress=False)
    np.testing.assert_array_equal(ds.rng_trial.values, expected + 1)
    np.testing.assert_array_equal(ds.u.values, everything.u.values[expected])
    np.testing.assert_array_equal(ds.ic_phase.values, everything.ic_phase.values[expected])
    assert ds.attrs["n_rejected"] == ds.attrs["n_trials"] - 6 > 0


@pytest.mark.parametrize("name", ["kdv", "allen_cahn", "allen_cahn_2d"])
def test_dataset_follows_fields_contract_and_is_reproducible(name, tmp_path):
    small = {"kdv": {}, "allen_cahn": {}, "allen_cahn_2d": {"n_grid": 32}}[name]
    params = {"n_samples": 3, "t_final": 0.004, "save_every": 25, **small}
    ds = make_dataset(name, params=params, seed=11, progress=False, workers=1)
    again = make_dataset(name, params=params, seed=11, progress=False, workers=2)
    np.testing.assert_array_equal(ds.u.values, again.u.values)  # threads do not change a bit
    other = make_dataset(name, params=params, seed=12, progress=False, workers=1)
    assert not np.array_equal(ds.u.values, other.u.values)
    assert ds.u.dtype == np.float64 and ds.sizes["time"] == 5
    for key in ("n_samples", "n_grid", "dt", "t_final", "save_every", "scheme", "max_k", "n_modes", "u_bound"):
        assert key in ds.attrs
    assert ds.attrs["seed"] == 11 and ds.attrs["scheme"] == "paper"
    paths = [tmp_path / "a.nc", tmp_path / "b.nc"]
    for path, data in zip(paths, (ds, again)):
        write_fields(data, path, params={"dataset": name}, config={"data": {name: params}, "seed": 11})
    assert paths[0].read_bytes() == paths[1].read_bytes()  # byte-identical outputs
    back = read_fields(paths[0])  # validates the contract
    np.testing.assert_array_equal(back.u.values, ds.u.values)
    if name == "allen_cahn_2d":
        assert back.u.dims == ("sample", "time", "y", "x")
        assert back.ic_kx.dims == ("sample", "mode")
    else:
        assert back.ic_k.dims == ("sample", "mode") and back.ic_k.sizes["mode"] == ds.attrs["max_k"]
        # ic_k holds each slot's frequency, zero for the unselected ones.
        assert np.all((back.ic_k.values > 0).sum(axis=1) == ds.attrs["n_modes"])
