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
    "advance_strain_serial",
    "advance_displacement_serial",
    "strain_acceleration",
    "displacement_acceleration",
]

FORCE_POLYNOMIAL = 0  # F(r) = c² r + α r² + β r³, params = (c², α, β)
FORCE_FENE = 1  # F(r) = H r / (1 − (r/R)²), params = (H, R)


@njit(inline="always", error_model="numpy")
def _polynomial(p0, p1, p2, r):
    return p0 * r + p1 * r * r + p2 * r * r * r


@njit(inline="always", error_model="numpy")
def _fene(p0, p1, r):
    # H r / (1 - (r/R)^2) written with one division: H R^2 r / (R^2 - r^2)
    r2 = p1 * p1
    return (p0 * r2) * r / (r2 - r * r)


@njit(inline="always", error_model="numpy")
def _force(kind, params, r):
    if kind == FORCE_POLYNOMIAL:
        return _polynomial(params[0], params[1], params[2], r)
    return _fene(params[0], params[1], r)


@njit(cache=True, error_model="numpy")
def force_values(kind, params, r):
    """The force law at strains ``r`` (any shape), for tests and analysis."""
    out = np.empty_like(r)
    flat_r = r.ravel()
    flat_o = out.ravel()
    for i in range(flat_r.size):
        flat_o[i] = _force(kind, params, flat_r[i])
    return out


# The force-law branch sits outside the site loops, and the parameters are scalars (loads from an array could
# alias the stores), so that each site loop is straight-line code LLVM vectorises.


@njit(inline="always", error_model="numpy")
def _strain_acc(kind, params, r, f, a):
    n = r.shape[0]
    p0, p1, p2 = params[0], params[1], params[2]
    if kind == FORCE_POLYNOMIAL:
        for i in range(n):
            f[i] = _polynomial(p0, p1, p2, r[i])
    else:
        for i in range(n):
            f[i] = _fene(p0, p1, r[i])
    a[0] = f[1] - 2.0 * f[0] + f[n - 1]
    for i in range(1, n - 1):
        a[i] = f[i + 1] - 2.0 * f[i] + f[i - 1]
    a[n - 1] = f[0] - 2.0 * f[n - 1] + f[n - 2]


@njit(inline="always", error_model="numpy")
def _displacement_acc(kind, params, q, f, a, limit):
    """Acceleration of the displacement form; returns the number of bonds with |r| >= limit."""
    n = q.shape[0]
    p0, p1, p2 = params[0], params[1], params[2]
    over = 0
    if kind == FORCE_POLYNOMIAL:
        for i in range(n - 1):
            f[i] = _polynomial(p0, p1, p2, q[i + 1] - q[i])
        f[n - 1] = _polynomial(p0, p1, p2, q[0] - q[n - 1])
    else:
        for i in range(n - 1):
            r = q[i + 1] - q[i]
            f[i] = _fene(p0, p1, r)
            over += abs(r) >= limit
        r = q[0] - q[n - 1]
        f[n - 1] = _fene(p0, p1, r)
        over += abs(r) >= limit
    a[0] = f[0] - f[n - 1]
    for i in range(1, n):
        a[i] = f[i] - f[i - 1]
    return over


@njit(inline="always", error_model="numpy")
def _max_bond_ratio(q, limit):
    n = q.shape[0]
    big = abs(q[0] - q[n - 1])
    for i in range(n - 1):
        big = max(big, abs(q[i + 1] - q[i]))
    return big / limit


@njit(cache=True, error_model="numpy")
def strain_acceleration(kind, params, r):
    """``F(r_{n+1}) − 2F(r_n) + F(r_{n−1})`` for one chain ``r`` of shape ``(n,)``."""
    f = np.empty_like(r)
    a = np.empty_like(r)
    _strain_acc(kind, params, r, f, a)
    return a


@njit(cache=True, error_model="numpy")
def displacement_acceleration(kind, params, q):
    """``F(r_n) − F(r_{n−1})`` with ``r_n = q_{n+1} − q_n`` for one chain ``q`` of shape ``(n,)``."""
    f = np.empty_like(q)
    a = np.empty_like(q)
    _displacement_acc(kind, params, q, f, a, np.inf)
    return a


@njit(inline="always", error_model="numpy")
def _strain_sample(kind, params, rs, vs, dt, n_slow, substeps, bound):
    """Advance one strain-form chain in place; returns (max |r| over the slow-step checks, still alive)."""
    n = rs.shape[0]
    half = 0.5 * dt
    f = np.empty(n)
    a = np.empty(n)
    peak = 0.0
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
        peak = max(peak, big)
        if not (big <= bound and finite):
            return peak, False
    return peak, True


@njit(inline="always", error_model="numpy")
def _displacement_sample(kind, params, qs, ps, dt, n_slow, substeps, bound, limit):
    """Advance one displacement-form chain in place; returns (max |r|/limit over the checks, still alive)."""
    n = qs.shape[0]
    half = 0.5 * dt
    f = np.empty(n)
    a = np.empty(n)
    peak = 0.0
    over = _displacement_acc(kind, params, qs, f, a, limit)
    for _ in range(n_slow):
        for _ in range(substeps):
            for i in range(n):
                ps[i] += half * a[i]
                qs[i] += dt * ps[i]
            over = _displacement_acc(kind, params, qs, f, a, limit)
            if over:
                break
            for i in range(n):
                ps[i] += half * a[i]
        ratio = _max_bond_ratio(qs, limit)
        peak = max(peak, ratio)
        finite = True
        for i in range(n):
            if not (np.isfinite(qs[i]) and np.isfinite(ps[i])):
                finite = False
        if over or not (ratio <= bound and finite):
            return peak, False
    return peak, True


# Each driver is its own Python function: Numba's on-disk cache keys entries by function, so one function
# compiled both with and without parallel=True would share (and overwrite) one cache entry.


@njit(parallel=True, cache=True, error_model="numpy")
def advance_strain(kind, params, r, v, dt, n_slow, substeps, bound, alive, peak):
    """Advance every live sample of a strain-form ensemble by ``n_slow × substeps`` Verlet steps, in place.

    ``r, v``: ``(samples, n)``. A sample whose max |r| exceeds ``bound`` after a slow step, or becomes non-finite,
    is marked dead (``alive[s] = False``) and no longer advanced. ``peak[s]`` keeps the largest max |r| seen.
    Samples are spread over the threads; each is integrated by one thread, so results do not depend on them.
    """
    for s in prange(r.shape[0]):
        if alive[s]:
            big, alive[s] = _strain_sample(kind, params, r[s], v[s], dt, n_slow, substeps, bound)
            peak[s] = max(peak[s], big)


@njit(cache=True, error_model="numpy")
def advance_strain_serial(kind, params, r, v, dt, n_slow, substeps, bound, alive, peak):
    """:func:`advance_strain` on one thread, for small ensembles where starting threads costs more."""
    for s in range(r.shape[0]):
        if alive[s]:
            big, alive[s] = _strain_sample(kind, params, r[s], v[s], dt, n_slow, substeps, bound)
            peak[s] = max(peak[s], big)


@njit(parallel=True, cache=True, error_model="numpy")
def advance_displacement(kind, params, q, p, dt, n_slow, substeps, bound, limit, alive, peak):
    """Advance a displacement-form ensemble in place, as :func:`advance_strain`.

    A bond reaching ``limit`` (the FENE maximal extension R) kills the sample at once; ``peak[s]`` tracks
    max |r| / ``limit`` checked after each slow step, and a sample is marked dead when that ratio exceeds
    ``bound`` or anything becomes non-finite.
    """
    for s in prange(q.shape[0]):
        if alive[s]:
            big, alive[s] = _displacement_sample(kind, params, q[s], p[s], dt, n_slow, substeps, bound, limit)
            peak[s] = max(peak[s], big)


@njit(cache=True, error_model="numpy")
def advance_displacement_serial(kind, params, q, p, dt, n_slow, substeps, bound, limit, alive, peak):
    """:func:`advance_displacement` on one thread."""
    for s in range(q.shape[0]):
        if alive[s]:
            big, alive[s] = _displacement_sample(kind, params, q[s], p[s], dt, n_slow, substeps, bound, limit)
            peak[s] = max(peak[s], big)
