r"""The chains' exact linear dispersion relation, in the frame of the mesoscopic data.

A chain with nearest-neighbour force ``F(r)`` on the strains ``r_n = x_{n+1} - x_n`` obeys
``r_n'' = F(r_{n+1}) - 2 F(r_n) + F(r_{n-1})`` in lattice time ``t``. Linearized about a uniform strain
``r_bar``, a mode ``exp(i (q n - omega t))`` has

.. math:: \omega(q) = 2 c(\bar r) \sin(q / 2), \qquad c(\bar r)^2 = F'(\bar r),

(FPUT: ``F' = c^2 + 2 alpha r + 3 beta r^2``; FENE: ``F' = H (1 + r^2/R^2) / (1 - r^2/R^2)^2``), the right-going
branch; the data are coarse-grained on it.

The mesoscopic fields (:func:`mesodyn.chains.data.fields_dataset`) use ``xi = eps (n - c t)`` (co-moving with the
linear sound speed ``c`` of the chain at rest), ``tau = eps^3 t`` and ``u = r / eps^2``. A mode
``exp(i (q n - omega t))`` is ``exp(i (k xi - Omega tau))`` there, with ``q = eps k`` and

.. math:: \Omega(k) = \frac{\omega(\epsilon k) - c\,\epsilon k}{\epsilon^3}
          = \frac{2 c(\epsilon^2 \bar u) \sin(\epsilon k / 2) - c\,\epsilon k}{\epsilon^3},

so that ``du_hat/dtau = lambda(k) u_hat`` with ``lambda(k) = -i Omega(k)`` (numpy's sign: ``u = sum u_hat(k)
exp(i k xi)``). At ``u_bar = 0`` and long waves ``lambda = i c k^3 / 24 + O(eps^2 k^5)``: the linear part of the
KdV (FPUT) and mKdV (FENE) limits of :mod:`mesodyn.baselines.classical`, which fixes the units. About the mean
strain ``u_bar`` of the data, the sound speed shifts, ``c(eps^2 u_bar) - c = eps^2 u_bar F''(0) / (2c) + ...``,
which is the KdV limit's ``u u_xi`` term linearized about ``u_bar``.

The data are simulated with velocity Verlet at the step ``h = dt_chain``, whose linear waves have the discrete
frequency ``omega_h`` with ``cos(omega_h h) = 1 - (omega h)^2 / 2`` (the exact ``omega`` as ``h -> 0``).
``mesoscopic_linear_rate(..., as_simulated=True)`` uses it: at the paper's step (FPUT ``c dt_chain = 0.17``) it
differs from the exact relation by about 3 % at ``k = 6``, and is what the data hold (measured on a linear chain,
``tests/test_identifiability.py``).

The relation is exact for the lattice's *linear* waves. What the data add: the nonlinearity (FPUT's ``alpha r^2``
at ``u`` of order one; FENE's cubic term), the coarse-graining (linear interpolation of the sites onto the
mesoscopic grid damps and delays high ``k``) and the slow-time sampling.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["sound_speed", "mesoscopic_linear_rate"]


def sound_speed(attrs: Mapping[str, Any], strain: float = 0.0) -> float:
    """``sqrt(F'(r))`` of the chain the fields file's attributes describe (``model``: ``fput`` or ``fene``), at
    the uniform lattice strain ``strain``."""
    model = str(attrs.get("model", ""))
    c = float(attrs["c"])
    r = float(strain)
    if model == "fput":
        stiffness = c**2 + 2 * float(attrs["alpha"]) * r + 3 * float(attrs.get("beta", 0.0)) * r**2
    elif model == "fene":
        eps = float(attrs["epsilon"])
        big_r = float(attrs.get("R", float(attrs["R_over_eps2"]) * eps**2))
        s = (r / big_r) ** 2
        if s >= 1:
            raise ValueError(f"a FENE strain must lie inside (-R, R) = ({-big_r}, {big_r}), got {r}.")
        stiffness = float(attrs.get("H", c**2)) * (1 + s) / (1 - s) ** 2
    else:
        raise ValueError(f"the dispersion relation is known for the chains 'fput' and 'fene', not {model!r}.")
    if stiffness <= 0:
        raise ValueError(f"the chain is unstable at strain {r}: F'(r) = {stiffness} <= 0.")
    return math.sqrt(stiffness)


def mesoscopic_linear_rate(attrs: Mapping[str, Any], k: Any, *, state: float = 0.0,
                           as_simulated: bool = False) -> np.ndarray:
    """``lambda(k) = -i Omega(k)`` of the linear chain about the uniform field ``u = state`` (the rescaled strain,
    ``r = eps^2 state``), in the data's co-moving, rescaled frame (module docstring).

    Parameters
    ----------
    attrs
        Attributes of the chain's fields file: ``model``, ``c``, ``epsilon`` and the force's parameters.
    k
        Mesoscopic wavenumbers (array).
    state
        The uniform field about which to linearize.
    as_simulated
        Use the discrete frequency of velocity Verlet at the data's ``dt_chain`` (an attribute of the file) instead
        of the exact one.

    Returns
    -------
    numpy.ndarray
        Complex rates, purely imaginary (the linear chain conserves energy).
    """
    eps, c = float(attrs["epsilon"]), float(attrs["c"])
    k = np.asarray(k, dtype=np.float64)
    c_state = sound_speed(attrs, eps**2 * float(state))
    omega = 2 * c_state * np.sin(eps * k / 2)
    if as_simulated:
        h = float(attrs["dt_chain"])
        omega = np.arccos(np.clip(1 - (omega * h) ** 2 / 2, -1.0, 1.0)) / h
    omega = (omega - c * eps * k) / eps**3
    return -1j * omega
