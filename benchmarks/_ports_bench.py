"""Reserving and releasing one port, against the reference's find_free_port (bind(0), no lock)."""

from __future__ import annotations

import time
from types import ModuleType
from typing import Any

from _stats import summary

from etcd_env import reserve_port


def _timed(operation: Any, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        began = time.perf_counter()
        operation()
        samples.append(time.perf_counter() - began)
    return samples


def _reserve_release() -> None:
    reserve_port().release()


def run(count: int, torch_module: ModuleType | None) -> dict[str, Any]:
    _timed(_reserve_release, 20)
    found: dict[str, Any] = {"etcd_env_reserve_release": summary(_timed(_reserve_release, count))}
    if torch_module is not None:
        find_free_port = torch_module.find_free_port
        found["torch_find_free_port_close"] = summary(_timed(lambda: find_free_port().close(), count))
    for row in found.values():
        row.pop("samples_ms")
    return found
