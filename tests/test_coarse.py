"""Coarse-graining: the co-moving map and the three periodic interpolations."""

from __future__ import annotations

import numpy as np
import pytest

from mesodyn.chains import draw_sine_modes, sine_field
from mesodyn.coarse import METHODS, coarse_grain, interpolate_periodic, site_positions


def test_linear_matches_numpy_interp_on_periodic_extension():
    rng = np.random.default_rng(0)
    n_sites, n_grid = 37, 64
    positions = site_positions(n_sites, np.array([123.456]), c=1.3)[0]
    values = rng.normal(size=(3, n_sites))
    got = interpolate_periodic(values, positions, n_grid, method="linear")
    grid = np.arange(n_grid) * 2 * np.pi / n_grid
    xp = np.mod(positions, 2 * np.pi)
    order = np.argsort(xp)
    xp_ext = np.concatenate([xp[order][-1:] - 2 * np.pi, xp[order], xp[order][:1] + 2 * np.pi])
    for s in range(3):
        fp = values[s, order]
        fp_ext = np.concatenate([fp[-1:], fp, fp[:1]])
        np.testing.assert_allclose(got[s], np.interp(grid, xp_ext, fp_ext), rtol=0, atol=1e-13)


@pytest.mark.parametrize("n_sites", [128, 209])
def test_fourier_interpolation_exact_for_band_limited_fields(n_sites):
    draws = draw_sine_modes(np.random.default_rng(1), 4)
    positions = site_positions(n_sites, np.array([0.0, 17.3, 4321.0]))
    grid = np.arange(256) * 2 * np.pi / 256
    for pos in positions:
        got = interpolate_periodic(sine_field(draws, pos), pos, 256, method="fourier")
        np.testing.assert_allclose(got, sine_field(draws, grid), rtol=0, atol=1e-12)


def test_fourier_handles_the_site_nyquist_mode():
    n = 16
    pos = site_positions(n, np.array([0.37]))[0]
    values = np.cos(n / 2 * pos + 0.4)[None]  # the chain's Nyquist mode: (-1)^j times a constant on the sites
    grid = np.arange(64) * 2 * np.pi / 64
    got = interpolate_periodic(values, pos, 64, method="fourier")
    # its band-limited interpolant is the real cosine through the samples (the sine part is invisible on them)
    expected = np.cos(n / 2 * pos[0] + 0.4) * np.cos(n / 2 * (grid - pos[0]))
    np.testing.assert_allclose(got[0], expected, atol=1e-12)


@pytest.mark.parametrize("n_sites, linear_bound", [(128, 0.006), (209, 0.0025)])
def test_interpolation_error_ordering(n_sites, linear_bound):
    """Linear adds ~0.4 % (128 sites) / ~0.15 % (209 sites) rel. L2 error on the paper's fields; cubic and
    band-limited interpolation are orders of magnitude better."""
    draws = draw_sine_modes(np.random.default_rng(0), 16)
    grid = np.arange(256) * 2 * np.pi / 256
    exact = sine_field(draws, grid)
    errors = {}
    for method in METHODS:
        errs = []
        for t in (0.0, 0.31, 57.9):
            pos = site_positions(n_sites, np.array([t]))[0]
            got = interpolate_periodic(sine_field(draws, pos), pos, 256, method=method)
            errs.append(np.linalg.norm(got - exact) / np.linalg.norm(exact))
        errors[method] = max(errs)
    assert 0.2 * linear_bound < errors["linear"] < linear_bound
    assert errors["cubic"] < errors["linear"] / 100
    assert errors["fourier"] < 1e-12


def test_coarse_grain_moves_with_the_frame():
    """A travelling wave r_n(t) = g(ε(n − c t)) is stationary in the co-moving frame."""
    n_sites, c = 209, 1.0
    eps = 2 * np.pi / n_sites
    t_lab = np.array([0.0, 10.0, 1000.0])
    pos = site_positions(n_sites, t_lab, c=c)
    strain = eps**2 * np.sin(2 * pos)[None]
    u = coarse_grain(strain, t_lab, epsilon=eps, c=c, n_grid=256, method="fourier")
    grid = np.arange(256) * 2 * np.pi / 256
    np.testing.assert_allclose(u[0], np.broadcast_to(np.sin(2 * grid), (3, 256)), atol=1e-12)


def test_unknown_method_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown interpolation method 'quadratic'"):
        interpolate_periodic(np.zeros(8), np.arange(8.0), 16, method="quadratic")
