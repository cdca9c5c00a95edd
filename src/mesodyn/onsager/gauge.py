"""Gauge of the Onsager factorization and gauge-invariant reporting.

The dynamics ``du/dt = -(M + W) dV/du`` are unchanged under ``(M, W, V) -> (M/c, W/c, c V + const)`` for any
``c > 0`` (and under adding to ``V`` terms that ``M + W`` annihilates, e.g. ``int u`` when ``m(0) = 0``).

Convention. The option ``gauge="unit_b"`` fixes ``b = 1``: ``V`` then contains ``1/2 int |grad u|^2`` exactly,
which selects one member of every gauge orbit. Without it, report only invariant quantities:

* ``b m(k)`` and ``b phi(k)``: the symbols of ``M`` and ``W`` in the ``b = 1`` gauge;
* ``V / b``, or the learned ``V`` fitted affinely to a reference ``V`` (slope, intercept, Pearson r): an
  affine relation ``V_learned = slope V_ref + intercept`` with ``r`` near 1 is what the gauge allows.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["gauge_invariant_symbols", "fit_affine", "symbol_fit"]


@torch.no_grad()
def gauge_invariant_symbols(model) -> dict[str, np.ndarray]:
    """Symbols of ``M`` and ``W`` multiplied by ``b``, on the full frequency grid, for a model with Fourier
    operators and a quadratic energy (:meth:`mesodyn.onsager.model.GradientFlowModel.quadratic_coefficients`).

    Returns
    -------
    dict
        ``k`` (wavenumber vectors, ``(ndim, *shape)``), ``b_m`` and ``b_phi`` (``(*shape)``; ``W`` acts as
        ``i * phi``), and the scalars ``a_over_b`` and ``b``.
    """
    m, phi = model.operators.symbols(full=True)
    a, b = model.quadratic_coefficients()
    return {"k": model.grid.full_wavenumbers(), "b_m": b * m.double().cpu().numpy(),
            "b_phi": b * phi.double().cpu().numpy(), "a_over_b": a / b, "b": b}


def fit_affine(learned, reference) -> dict[str, float]:
    """Least-squares fit ``learned ~ slope * reference + intercept`` with the Pearson correlation.

    Parameters
    ----------
    learned, reference
        1-D arrays of the same length (e.g. energies of test snapshots).
    """
    x = np.asarray(reference, dtype=float).ravel()
    y = np.asarray(learned, dtype=float).ravel()
    if x.shape != y.shape or x.size < 2:
        raise ValueError(f"learned and reference must be arrays of the same length >= 2, got {y.size} and {x.size}.")
    xc, yc = x - x.mean(), y - y.mean()
    sxx, syy = float(xc @ xc), float(yc @ yc)
    if sxx == 0.0:
        raise ValueError("reference must not be constant.")
    slope = float(xc @ yc) / sxx
    intercept = float(y.mean() - slope * x.mean())
    pearson = float(xc @ yc) / np.sqrt(sxx * syy) if syy > 0 else 0.0
    return {"slope": slope, "intercept": intercept, "pearson_r": float(pearson)}


def symbol_fit(symbol, basis) -> dict[str, float]:
    """Fit ``symbol ~ c * basis`` through the origin; returns ``c`` and the relative residual."""
    s = np.asarray(symbol, dtype=float).ravel()
    g = np.asarray(basis, dtype=float).ravel()
    c = float(g @ s) / float(g @ g)
    residual = float(np.linalg.norm(s - c * g) / max(np.linalg.norm(s), 1e-300))
    return {"coefficient": c, "relative_residual": residual}
