"""Numba kernels: velocity Verlet for periodic nearest-neighbour chains with unit masses.

Two state forms share one force law ``F(r)`` (the force between neighbours as a function of their strain):

- **strain form** (state ``r_n``, ``v_n = dr_n/dt``): ``r̈_n = F(r_{n+1}) − 2F(r_n) + F(r_{n−1})``;
- **displacement form** (state ``q_n``, ``p_n = dq_n/dt``): ``q̈_n = F(r_n) − F(r_{n−1})``,
  ``r_n = q_{n+1} − q_n`` (periodic).

The strain form is the image of the displacement form under the difference map, and Verlet commutes with that
linear map, so both conserve the same shadow Hamiltonian. One substep is: half kick, drift, new force, half kick;
the force of the last half kick is reused by the next substep's first half kick (exact: it is the same force).

Every sample of an ensemble is integrated independently (``prange`` over samples), so the result does not depend
on the number of threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = [
    "FORCE_POLYNOMIAL",
    "FORCE_FENE",
    "force_values",
    "advance_strain",
    "advance_displacement",
    "strain_acceleration",
    "displacement_acceleration",
]

FORCE_POLYNOMIAL = 0  # F(r) = c² r + α r² + β r³, params = (c², α, β)
FORCE_FENE = 1  # F(r) = H r / (1 − (r/R)²), params = (H, R)


@njit(inline="always", fastmath=False)
def _force(kind, params, r):
    if kind == FORCE_POLYNOMIAL:
        return params[0] * r + params[1] * r * r + params[2] * r * r * r
    R = params[1]
    x = r / R
    return params[0] * r / (1.0 - x * x)


@njit(cache=True)
def force_values(kind, params, r):
    """The force law at strains ``r`` (any shape), for tests and analysis."""
    out = np.empty_like(r)
    flat_r = r.ravel()
    flat_o = out.ravel()
    for i in range(flat_r.size):
        flat_o[i] = _force(kind, params, flat_r[i])
    return out


@njit(inline="always")
def _strain_acc(kind, params, r, f, a):
    n = r.shape[0]
    for i in range(n):
        f[i] = _force(kind, params, r[i])
    a[0] = f[1] - 2.0 * f[0] + f[n - 1]
    for i in range(1, n - 1):
        a[i] = f[i + 1] - 2.0 * f[i] + f[i - 1]
    a[n - 1] = f[0] - 2.0 * f[n - 1] + f[n - 2]


@njit(inline="always")
def _displacement_acc(kind, params, q, f, a, limit):
    """Acceleration of the displacement form; returns max |r| / limit (for the FENE bound check)."""
    n = q.shape[0]
    rmax = 0.0
    for i in range(n - 1):
        r = q[i + 1] - q[i]
        f[i] = _force(kind, params, r)
        rmax = max(rmax, abs(r))
    r = q[0] - q[n - 1]
    f[n - 1] = _force(kind, params, r)
    rmax = max(rmax, abs(r))
    a[0] = f[0] - f[n - 1]
    for i in range(1, n):
        a[i] = f[i] - f[i - 1]
    return rmax / limit


@njit(cache=True)
def strain_acceleration(kind, params, r):
    """``F(r_{n+1}) − 2F(r_n) + F(r_{n−1})`` for one chain ``r`` of shape ``(n,)``."""
    f = np.empty_like(r)
    a = np.empty_like(r)
    _strain_acc(kind, params, r, f, a)
    return a


@njit(cache=True)
def displacement_acceleration(kind, params, q):
    """``F(r_n) − F(r_{n−1})`` with ``r_n = q_{n+1} − q_n`` for one chain ``q`` of shape ``(n,)``."""
    f = np.empty_like(q)
    a = np.empty_like(q)
    _displacement_acc(kind, params, q, f, a, 1.0)
    return a


@njit(parallel=True, cache=True)
def advance_strain(kind, params, r, v, dt, n_slow, substeps, bound, alive, peak):
    """Advance every live sample of a strain-form ensemble by ``n_slow × substeps`` Verlet steps, in place.

    ``r, v``: ``(samples, n)``. A sample whose max |r| exceeds ``bound`` after a slow step, or becomes non-finite,
    is marked dead (``alive[s] = False``) and no longer advanced. ``peak[s]`` keeps the largest max |r| seen.
    """
    n_samples, n = r.shape
    half = 0.5 * dt
    for s in prange(n_samples):
        if not alive[s]:
            continue
        rs = r[s]
        vs = v[s]
        f = np.empty(n)
        a = np.empty(n)
        _strain_acc(kind, params, rs, f, a)
        for _ in range(n_slow):
            for _ in range(substeps):
                for i in range(n):
                    vs[i] += half * a[i]
                    rs[i] += dt * vs[i]
                _strain_acc(kind, params, rs, f, a)
                for i in range(n):
                    vs[i] += half * a[i]
            big = 0.0
            finite = True
            for i in range(n):
                big = max(big, abs(rs[i]))
                if not (np.isfinite(rs[i]) and np.isfinite(vs[i])):
                    finite = False
            peak[s] = max(peak[s], big)
            if not (big <= bound and finite):
                alive[s] = False
                break


@njit(parallel=True, cache=True)
def advance_displacement(kind, params, q, p, dt, n_slow, substeps, bound, limit, alive, peak):
    """Advance a displacement-form ensemble in place, as :func:`advance_strain`.

    ``peak[s]`` tracks max |r| / ``limit`` checked after each slow step (and after every force evaluation, where
    reaching ``limit`` — e.g. the FENE maximal extension R — kills the sample at once); a sample is marked dead
    when that ratio exceeds ``bound`` after a slow step or anything becomes non-finite.
    """
    n_samples, n = q.shape
    half = 0.5 * dt
    for s in prange(n_samples):
        if not alive[s]:
            continue
        qs = q[s]
        ps = p[s]
        f = np.empty(n)
        a = np.empty(n)
        ratio = _displacement_acc(kind, params, qs, f, a, limit)
        for _ in range(n_slow):
            for _ in range(substeps):
                for i in range(n):
                    ps[i] += half * a[i]
                    qs[i] += dt * ps[i]
                ratio = _displacement_acc(kind, params, qs, f, a, limit)
                if not ratio < 1.0:
                    break
                for i in range(n):
                    ps[i] += half * a[i]
            peak[s] = max(peak[s], ratio)
            finite = True
            for i in range(n):
                if not (np.isfinite(qs[i]) and np.isfinite(ps[i])):
                    finite = False
            if not (ratio <= bound and finite):
                alive[s] = False
                break
