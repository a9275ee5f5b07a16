"""Summaries of timing samples: min/median/max (and p90), always in milliseconds."""

from __future__ import annotations

import statistics
from typing import Any


def summary(samples_s: list[float]) -> dict[str, Any]:
    ms = sorted(value * 1000 for value in samples_s)
    if not ms:
        return {"n": 0}
    p90 = ms[min(len(ms) - 1, round(0.9 * (len(ms) - 1)))]
    return {
        "n": len(ms),
        "min_ms": round(ms[0], 3),
        "median_ms": round(statistics.median(ms), 3),
        "p90_ms": round(p90, 3),
        "max_ms": round(ms[-1], 3),
        "samples_ms": [round(value, 3) for value in ms],
    }


def ratio(numerator: dict[str, Any], denominator: dict[str, Any]) -> float | None:
    if not numerator.get("n") or not denominator.get("n") or not denominator["median_ms"]:
        return None
    return round(numerator["median_ms"] / denominator["median_ms"], 3)


def paired_ratio(numerators: list[float], denominators: list[float]) -> float | None:
    """Median of per-repetition ratios: each pair ran back to back, so it shares the machine's load."""
    pairs = [a / b for a, b in zip(numerators, denominators, strict=False) if b > 0]
    return round(statistics.median(pairs), 3) if pairs else None


def machine_load() -> float:
    with open("/proc/loadavg") as loadavg:
        return float(loadavg.read().split()[0])
