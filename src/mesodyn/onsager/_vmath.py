"""``exp``, ``sin`` and ``cos`` in float64 that the compiler can vectorize, for the compiled kernels of this package.

Numba compiles ``np.exp``, ``np.sin`` and ``np.cos`` in a loop to one call of the C library per value (4-10 ns each
on this machine): in the kernels of the table nodes (:mod:`._nodes64`) and of ``V_nl``'s gradient
(:mod:`._nonlocal_kernels`) these calls were most of the time. The functions here are straight-line arithmetic
(no calls, no branches), so a loop over them becomes SIMD code (``sigmoid`` of 320 000 values: 4.4 -> 0.8 ns per
value, measured). Accuracy, tested against NumPy over wide ranges: a relative error of a few units in the last
place (float64).

* ``exp(x)``: ``x = k ln 2 + r`` (Cody-Waite, ``|r| <= ln 2 / 2``), ``exp(r)`` by its Taylor polynomial of degree
  13 (truncation below 1e-17), times ``2^k`` built from the exponent bits. ``x`` is clamped to ``[-708, 708]``
  (beyond it ``exp`` under- or overflows anyway; a sigmoid there is 0 or 1 to far below a float64 ulp).
* ``sin(x)``, ``cos(x)``: ``x = q pi/2 + r`` with ``pi/2`` split in three parts (``|r| <= pi/4``), Taylor
  polynomials of ``sin`` (degree 17) and ``cos`` (degree 18) on ``r``, and the quadrant ``q mod 4`` picks and signs
  them. Accurate for ``|x| <= TRIG_LIMIT``; callers check that bound (the largest ``|x|`` is a cheap reduction) and
  recompute with NumPy's functions where it fails.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["exp", "sin", "cos", "TRIG_LIMIT"]

# the reduction's q pi/2 products are exact up to q = 2^20 (pi/2's first two parts have 33 significant bits each)
TRIG_LIMIT = 2.0**20

_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01   # ln 2 with its last bits zero: k * _LN2_HI is exact for |k| < 2^11
_LN2_LO = 1.90821492927058770002e-10
_TWO_OVER_PI = 0.6366197723675814
_PIO2_1 = 1.57079632673412561417e+00   # pi/2 = _PIO2_1 + _PIO2_2 + _PIO2_3 (33 + 33 + 53 bits)
_PIO2_2 = 6.07710050630396597660e-11
_PIO2_3 = 2.02226624879595063154e-21

_E = tuple(1.0 / math.factorial(n) for n in range(14))
_S = tuple((-1.0) ** n / math.factorial(2 * n + 1) for n in range(1, 9))  # sin(r) = r + r^3 sum_n S_n r^(2n)
_C = tuple((-1.0) ** n / math.factorial(2 * n) for n in range(10))      # cos(r) = sum_n C_n r^(2n)


@intrinsic
def _bits_as_float(typingctx, bits):  # pragma: no cover (compiled)
    """The float64 whose bit pattern is the int64 ``bits``."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))
    return types.float64(types.int64), codegen


@njit(cache=True, inline="always", fastmath={"contract"}, error_model="numpy")
def _horner(coefficients, x):  # pragma: no cover (compiled)
    """``sum_n coefficients[n] x^n`` by Horner's rule (a constant tuple: the loop is unrolled)."""
    p = 0.0
    for n in range(len(coefficients) - 1, -1, -1):
        p = p * x + coefficients[n]
    return p


@njit(cache=True, inline="always", fastmath={"contract"}, error_model="numpy")
def exp(x):  # pragma: no cover (compiled; tested in test_onsager_kernels)
    x = min(max(x, -708.0), 708.0)
    k = np.floor(x * _LOG2E + 0.5)
    r = (x - k * _LN2_HI) - k * _LN2_LO
    return _horner(_E, r) * _bits_as_float((np.int64(k) + 1023) << 52)


@njit(cache=True, inline="always", fastmath={"contract"}, error_model="numpy")
def _reduce(x):  # pragma: no cover (compiled)
    """``(r, q mod 4, r^2)`` with ``x = q pi/2 + r``."""
    q = np.floor(x * _TWO_OVER_PI + 0.5)
    r = ((x - q * _PIO2_1) - q * _PIO2_2) - q * _PIO2_3
    return r, np.int64(q) & 3, r * r


@njit(cache=True, inline="always", fastmath={"contract"}, error_model="numpy")
def sin(x):  # pragma: no cover (compiled; tested in test_onsager_kernels)
    r, quadrant, r2 = _reduce(x)
    s, c = r + r * r2 * _horner(_S, r2), _horner(_C, r2)
    value = c if quadrant & 1 else s        # quadrants 0..3: s, c, -s, -c
    return -value if quadrant & 2 else value


@njit(cache=True, inline="always", fastmath={"contract"}, error_model="numpy")
def cos(x):  # pragma: no cover (compiled; tested in test_onsager_kernels)
    r, quadrant, r2 = _reduce(x)
    s, c = r + r * r2 * _horner(_S, r2), _horner(_C, r2)
    value = s if quadrant & 1 else c        # quadrants 0..3: c, -s, -c, s
    return -value if (quadrant + 1) & 2 else value
