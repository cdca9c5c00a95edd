"""The continuum data against the authors' reference files (../shared/reference, README §3–§5).

* Paper scheme (IMEX SBDF2, Δt = 4e-5, 2× padding, Nyquist dropped, seed 0): the first samples must equal the
  reference to 1e-9 absolute (README §5: a faithful float64 re-implementation lands at ~1e-12).
* ETDRK4: must agree within the README §5 bounds for a different integrator: AC a few 1e-5, KdV ~0.02–0.05
  absolute (~1 % relative L2) and 5e-3 after low-pass filtering to k ≤ 10.
"""

from __future__ import annotations

import numpy as np
import pytest

from mesodyn.continuum import make_dataset

PAPER_TOL = 1e-9


def _lowpass(u: np.ndarray, kmax: int = 10) -> np.ndarray:
    c = np.fft.rfft(u, axis=-1)
    c[..., kmax + 1:] = 0
    return np.fft.irfft(c, n=u.shape[-1], axis=-1)


@pytest.mark.parametrize("name", ["kdv", "allen_cahn"])
def test_paper_scheme_reproduces_reference_1d(reference, name):
    ref = reference(name)
    n = 3
    ds = make_dataset(name, params={"n_samples": n}, seed=0, progress=False)
    assert ds.u.shape == (n, 101, 256)
    # Frame 0 is the drawn IC, reproduced bit for bit with the authors' operation order.
    np.testing.assert_array_equal(ds.u.values[:, 0], ref.u.values[:n, 0])
    err = np.abs(ds.u.values - ref.u.values[:n]).max()
    assert err < PAPER_TOL, f"{name}: max |Δu| = {err:.3g} over all frames"
    # Dedalus' accumulated sim_time (2501 steps, 0.0999999999999966 at the last frame), exactly.
    np.testing.assert_array_equal(ds.time.values, ref.time.values)
    np.testing.assert_array_equal(ds.x.values, ref.x.values)
    # The IC draws in the contract's names, against the reference's own.
    np.testing.assert_array_equal(ds.ic_amplitude.values, ref.ic_amp.values[:n])
    np.testing.assert_array_equal(ds.ic_phase.values, ref.ic_phase.values[:n])
    np.testing.assert_array_equal(ds.ic_k_selected.values, ref.ic_k_selected.values[:n])
    np.testing.assert_array_equal(ds.ic_k.values, ref.ic_mode_selected.values[:n] * ref.k.values)
    np.testing.assert_array_equal(ds.ic_std.values, ref.ic_std.values[:n])
    np.testing.assert_array_equal(ds.rng_trial.values, ref.rng_trial.values[:n])
    assert ds.attrs["x_len"] == ref.attrs["x_len"]
    if name == "allen_cahn":
        np.testing.assert_array_equal(ds.ic_shift.values, ref.ic_shift.values[:n])
        np.testing.assert_array_equal(ds.ic_scale.values, ref.ic_scale.values[:n])


def test_paper_scheme_reproduces_reference_2d(reference):
    ref = reference("allen_cahn_2d")
    ds = make_dataset("allen_cahn_2d", params={"n_samples": 1}, seed=0, progress=False)
    assert ds.u.dims == ("sample", "time", "y", "x") and ds.u.shape == (1, 101, 128, 128)
    np.testing.assert_array_equal(ds.u.values[0, 0], ref.u.values[0, 0])
    err = np.abs(ds.u.values[0] - ref.u.values[0]).max()
    assert err < PAPER_TOL, f"allen_cahn_2d: max |Δu| = {err:.3g}"
    np.testing.assert_array_equal(ds.time.values, ref.time.values)
    for ours, theirs in (("ic_kx", "ic_kx"), ("ic_ky", "ic_ky"), ("ic_amplitude", "ic_amp"),
                         ("ic_phase", "ic_phase"), ("ic_mode_index", "ic_mode_index"),
                         ("ic_raw_min", "ic_raw_min"), ("ic_raw_max", "ic_raw_max")):
        np.testing.assert_array_equal(ds[ours].values[0], ref[theirs].values[0])


def test_second_2d_trajectory_draws_follow_the_rng_stream(reference):
    """Sample 1 (which has the opposite pair (4, -4)/(-4, 4)) needs trial 1's draws consumed first; check its
    IC exactly and its first saved interval against the reference."""
    ref = reference("allen_cahn_2d")
    ds = make_dataset("allen_cahn_2d", params={"n_samples": 2, "t_final": 0.002}, seed=0, progress=False)
    np.testing.assert_array_equal(ds.ic_mode_index.values, ref.ic_mode_index.values)
    np.testing.assert_array_equal(ds.u.values[1, 0], ref.u.values[1, 0])
    assert np.abs(ds.u.values[1, 1:3] - ref.u.values[1, 1:3]).max() < PAPER_TOL


def test_etdrk4_within_readme_bounds_allen_cahn(reference):
    ref = reference("allen_cahn").u.values[:2]
    ds = make_dataset("allen_cahn", params={"n_samples": 2, "scheme": "etdrk4", "dt": 2e-4, "save_every": 5},
                      seed=0, progress=False)
    assert np.abs(ds.time.values - reference("allen_cahn").time.values).max() < 1e-14
    err = np.abs(ds.u.values - ref).max()
    # README §5: converged at second order, "any accurate solver should agree to a few times 1e-5"
    # (the reference's own Δt/16 difference is 2.0e-5); we measure 2.0e-5.
    assert err < 5e-5, err
    assert err > 1e-7  # a different integrator: identical values would mean the scheme switch failed


def test_etdrk4_within_readme_bounds_kdv(reference):
    ref = reference("kdv").u.values[:2]
    ds = make_dataset("kdv", params={"n_samples": 2, "scheme": "etdrk4", "dt": 2e-4, "save_every": 5},
                      seed=0, progress=False)
    u = ds.u.values
    err = np.abs(u - ref).max()
    rel = np.sqrt(((u - ref) ** 2).mean(-1) / (ref**2).mean(-1)).max()
    low = np.abs(_lowpass(u) - _lowpass(ref)).max()
    # README §5: compare low-passed (k <= 10) fields with a tolerance of ~5e-3 (the reference's own Δt/16
    # difference is 2.3e-3 there); unfiltered, a dispersion-exact solver differs by ~0.02-0.05 absolute,
    # ~1 % rel. L2 (Δt/16: 0.044, 1.2 %), all in the 10 < k <= 40 band that SBDF2 damps.
    # Measured here: 1.4e-3 low-passed, 0.046 and 0.8 % unfiltered (8 samples: 2.3e-3, 0.055, 1.45 %).
    assert low < 5e-3, low
    assert err < 0.06, err
    assert rel < 0.015, rel


def test_etdrk4_within_readme_bounds_2d(reference):
    ref = reference("allen_cahn_2d").u.values[:1]
    ds = make_dataset("allen_cahn_2d", params={"n_samples": 1, "scheme": "etdrk4", "dt": 5e-4, "save_every": 2},
                      seed=0, progress=False)
    err = np.abs(ds.u.values - ref).max()
    # README §5: the reference's own Δt/2 difference is 2.5e-5 overall; we measure 3.3e-5.
    assert err < 5e-5, err
