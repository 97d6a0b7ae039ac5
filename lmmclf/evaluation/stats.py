"""Paired comparison of two methods on the same test images: bootstrap CI and McNemar's test.

Both tests look at per-image correctness of the two methods, paired by item id, on the images
both were tested on: when their test sets differ (fine-tuning tests on the whole test split, the
probes on the described images) the comparison is restricted to the common images and records
each method's own count (``items_a``, ``items_b``), so a report never hides it. The accuracy
difference gets a percentile bootstrap confidence interval (images resampled with
replacement, the same resample for both methods). McNemar's test uses only the discordant
images (b: A right and B wrong; c: A wrong and B right): the exact two-sided binomial test
when b + c < 25 (the chi-square approximation is poor there), else the chi-square statistic
with continuity correction. Pure numpy and math: no scipy needed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

EXACT_BELOW = 25  # discordant pairs under which McNemar's exact binomial form is used


@dataclass
class Comparison:
    """The paired comparison of method A against method B (difference = A - B)."""

    a: str
    b: str
    items: int  # the images both were tested on: the comparison's sample
    acc_a: float
    acc_b: float
    difference: float
    ci_low: float
    ci_high: float
    confidence: float
    a_only: int  # A right, B wrong
    b_only: int  # A wrong, B right
    test: str
    statistic: float | None
    p_value: float
    seeds: tuple[int, int]
    items_a: int = 0  # the images A was tested on (more than ``items`` when the test sets differ)
    items_b: int = 0

    @property
    def restricted(self) -> bool:
        """True when the test sets differ and only their common images are compared."""
        return self.items_a != self.items or self.items_b != self.items

    def to_dict(self) -> dict:
        return {**asdict(self), "restricted": self.restricted}


def bootstrap_difference(correct_a: np.ndarray, correct_b: np.ndarray, resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """``(difference, low, high)`` of accuracy A - B with a percentile bootstrap interval.

    Args:
        correct_a: per-image correctness of A (bool).
        correct_b: per-image correctness of B, same images in the same order.
        resamples: bootstrap resamples.
        confidence: interval level.
        seed: resampling seed (fixed so a report is reproducible).
    """
    a = np.asarray(correct_a, dtype=np.float64)
    b = np.asarray(correct_b, dtype=np.float64)
    diff = a - b
    rng = np.random.default_rng(seed)
    n = len(diff)
    samples = np.empty(resamples)
    block = max(1, min(resamples, 2_000_000 // max(n, 1)))  # bounded memory for large test sets
    for start in range(0, resamples, block):
        stop = min(start + block, resamples)
        draws = rng.integers(0, n, size=(stop - start, n))
        samples[start:stop] = diff[draws].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(samples, [alpha, 1.0 - alpha])
    return float(diff.mean()), float(low), float(high)


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> tuple[int, int, str, float | None, float]:
    """McNemar's test: ``(a_only, b_only, test name, statistic, two-sided p-value)``.

    Args:
        correct_a: per-image correctness of A.
        correct_b: per-image correctness of B (same images).
    """
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    a_only = int((a & ~b).sum())
    b_only = int((~a & b).sum())
    discordant = a_only + b_only
    if discordant == 0:
        return a_only, b_only, "exact binomial", None, 1.0
    if discordant < EXACT_BELOW:
        k = min(a_only, b_only)
        tail = sum(math.comb(discordant, i) for i in range(k + 1)) / 2.0**discordant
        return a_only, b_only, "exact binomial", None, min(1.0, 2.0 * tail)
    statistic = (abs(a_only - b_only) - 1.0) ** 2 / discordant
    return a_only, b_only, "chi-square (continuity corrected)", float(statistic), math.erfc(math.sqrt(statistic / 2.0))


def compare_runs(name_a: str, run_a, name_b: str, run_b, resamples: int = 2000, confidence: float = 0.95) -> Comparison:
    """Compare two :class:`~lmmclf.results.TrainingRun` s on their common test images (matched by id).

    The result records how many images each run was tested on, so a comparison restricted to
    the common images says so.

    Raises:
        ValueError: the runs share no test image.
    """
    rows_b = {item_id: row for row, item_id in enumerate(run_b.test_ids)}
    common = [(row, rows_b[item_id]) for row, item_id in enumerate(run_a.test_ids) if item_id in rows_b]
    if not common:
        raise ValueError(f"{name_a} and {name_b} share no test image")
    index_a = np.asarray([r for r, _ in common])
    index_b = np.asarray([r for _, r in common])
    correct_a = run_a.correct()[index_a]
    correct_b = run_b.correct()[index_b]
    difference, low, high = bootstrap_difference(correct_a, correct_b, resamples, confidence)
    a_only, b_only, test, statistic, p_value = mcnemar(correct_a, correct_b)
    return Comparison(
        a=name_a, b=name_b, items=len(common), acc_a=float(correct_a.mean()), acc_b=float(correct_b.mean()),
        difference=difference, ci_low=low, ci_high=high, confidence=confidence, a_only=a_only, b_only=b_only,
        test=test, statistic=statistic, p_value=p_value, seeds=(run_a.seed, run_b.seed),
        items_a=len(run_a.test_ids), items_b=len(run_b.test_ids),
    )


def pair_runs(runs_a: list, runs_b: list) -> tuple:
    """The runs to compare: the first seed both methods have, else each method's first run."""
    seeds_b = {run.seed: run for run in runs_b}
    for run in runs_a:
        if run.seed in seeds_b:
            return run, seeds_b[run.seed]
    return runs_a[0], runs_b[0]
