"""Statistics over repeated runs: groups, a description of one sample, and Welch's comparison of two.

Pure functions on plain numbers (no torch, no files): `compare` and the sweep summary call them.
A group is a set of runs that differ only in their seed, so each value of a sample is one seed's
result. Spreads are sample standard deviations (n - 1); intervals are 95% and two-sided, from
Student's t distribution (scipy.stats), never from tables written by hand.
"""

import math
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95


def _t():
    """Student's t distribution (scipy.stats, imported on first use: it takes a second)."""
    from scipy.stats import t

    return t


@dataclass(frozen=True)
class Sample:
    """One metric over the runs of a group. `std` and the interval are None with fewer than 2 values."""

    n: int
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True)
class Comparison:
    """Mean of `a` minus mean of `b`, the 95% interval of that difference and Welch's two-sided p-value.

    The interval and p are None when either sample has fewer than 2 values, or when neither varies
    (the t statistic is then undefined).
    """

    diff: float
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    df: float | None


def describe(values: Sequence[float]) -> Sample:
    """Mean, sample standard deviation, min, max and the 95% confidence interval of the mean."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        return Sample(0, None, None, None, None, None, None)
    mean = float(x.mean())
    if n < 2:
        return Sample(1, mean, None, mean, mean, None, None)
    std = float(x.std(ddof=1))
    half = float(_t().ppf(0.5 + CONFIDENCE / 2, n - 1)) * std / math.sqrt(n)
    return Sample(n, mean, std, float(x.min()), float(x.max()), mean - half, mean + half)


def welch(a: Sequence[float], b: Sequence[float]) -> Comparison:
    """Welch's unequal-variance comparison of the means of `a` and `b` (difference: a - b)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) == 0 or len(b) == 0:
        raise ValueError("welch needs at least one value on each side")
    diff = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return Comparison(diff, None, None, None, None)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return Comparison(diff, None, None, None, None)
    df = float((va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)))  # Welch-Satterthwaite
    half = float(_t().ppf(0.5 + CONFIDENCE / 2, df)) * se
    p = float(2 * _t().sf(abs(diff) / se, df))
    return Comparison(diff, diff - half, diff + half, p, df)


def group(items: Iterable, key: Callable[[object], Hashable]) -> dict[Hashable, list]:
    """Items with equal `key`, in the order each key is first met."""
    groups: dict[Hashable, list] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return groups


def mean_curve(curves: Sequence[Sequence[tuple[int, float]]]) -> list[tuple[int, int, float, float | None]]:
    """Per step (epoch) of several (step, value) curves: (step, n, mean, sample std or None when n < 2).

    Curves of different lengths are averaged over those that reach each step.
    """
    by_step = group((point for curve in curves for point in curve), key=lambda point: point[0])
    out = []
    for step in sorted(by_step):
        s = describe([value for _, value in by_step[step]])
        out.append((step, s.n, s.mean, s.std))
    return out
