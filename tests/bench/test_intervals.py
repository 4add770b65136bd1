"""The benchmark's percentile intervals: how far another run of the same code may put a p99."""
from __future__ import annotations

import math
import random

from bench.load import pct, pct_interval


def test_the_median_of_a_hundred_has_the_textbook_interval() -> None:
    # 95 % distribution-free interval for the median of n = 100: the 40th and the 61st smallest
    assert pct_interval(list(range(1, 101)), 50) == (40, 61)


def test_a_p99_of_400_calls_may_lie_anywhere_from_the_9th_slowest_to_the_slowest() -> None:
    calls = random.Random(7).sample(range(1000), 400)
    slowest = sorted(calls, reverse=True)
    assert pct(calls, 99) == slowest[5 - 1]
    assert pct_interval(calls, 99) == (slowest[9 - 1], slowest[0])


def test_the_interval_holds_the_true_percentile_about_as_often_as_it_says() -> None:
    rng = random.Random(11)
    true_p99 = -100 * math.log(0.01)  # of an exponential distribution with mean 100
    hits = 0
    for _ in range(400):
        lo, hi = pct_interval([rng.expovariate(1 / 100) for _ in range(400)], 99)
        hits += lo <= true_p99 <= hi
    assert 0.92 <= hits / 400 <= 0.995
