"""Start and stop latency: etcd_env, the raw etcd floor and torch's EtcdServer, interleaved.

Each repetition runs every contender once, in an order rotated per repetition,
so all of them share the same moments of the machine's load.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from _raw import start_raw, stop_raw
from _stats import paired_ratio, ratio, summary

from etcd_env import EtcdBinary, EtcdServer


def load_torch_reference() -> tuple[ModuleType | None, str]:
    """torch's etcd_server module, or None and the reason it is skipped."""
    try:
        from torch.distributed.elastic.rendezvous import etcd_server  # noqa: PLC0415
    except ImportError as error:
        return None, f"torch is not importable ({error})"
    return etcd_server, "torch " + sys.modules["torch"].__version__


def _time_ours() -> tuple[float, float]:
    server = EtcdServer()
    began = time.perf_counter()
    server.start()
    started = time.perf_counter()
    server.stop()
    return started - began, time.perf_counter() - started


def _time_raw(binary: EtcdBinary) -> tuple[float, float, float]:
    raw = start_raw(binary)
    term, rmtree = stop_raw(raw)
    return raw.start_s, term, rmtree


def _time_torch(module: ModuleType) -> tuple[float, float]:
    server = module.EtcdServer()
    began = time.perf_counter()
    server.start(stderr=subprocess.DEVNULL)  # etcd_env keeps etcd's log in a file: keep both off the terminal
    started = time.perf_counter()
    server.stop()
    return started - began, time.perf_counter() - started


def import_time(repeat: int) -> dict[str, Any]:
    """Wall time of `import etcd_env` in a fresh interpreter, minus a bare interpreter's start."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}

    def run(code: str) -> float:
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
        return time.perf_counter() - began

    bare, with_import = [], []
    for _ in range(repeat):
        bare.append(run("pass"))
        with_import.append(run("import etcd_env"))
    return {
        "python_start": summary(bare),
        "python_start_and_import": summary(with_import),
        "import_only_median_ms": round((summary(with_import)["median_ms"] - summary(bare)["median_ms"]), 3),
    }


def run(binary: EtcdBinary, repeat: int, torch_module: ModuleType | None, torch_why: str) -> dict[str, Any]:
    if torch_module is not None:
        os.environ["TORCHELASTIC_ETCD_BINARY_PATH"] = binary.path
    contenders: list[tuple[str, Callable[[], tuple[float, ...]]]] = [
        ("etcd_env", _time_ours),
        ("raw_etcd", lambda: _time_raw(binary)),
    ]
    if torch_module is not None:
        module = torch_module
        contenders.append(("torch", lambda: _time_torch(module)))
    for _, timed in contenders:  # warm caches (version probe, imports, page cache) untimed
        timed()
    samples: dict[str, list[tuple[float, ...]]] = {name: [] for name, _ in contenders}
    for index in range(repeat):
        shift = index % len(contenders)
        for name, timed in contenders[shift:] + contenders[:shift]:
            samples[name].append(timed())
        print(f"\r  start/stop repetition {index + 1}/{repeat}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)

    ours_start = [row[0] for row in samples["etcd_env"]]
    raw_start = [row[0] for row in samples["raw_etcd"]]
    start: dict[str, Any] = {"etcd_env": summary(ours_start), "raw_etcd": summary(raw_start)}
    stop: dict[str, Any] = {
        "etcd_env": summary([row[1] for row in samples["etcd_env"]]),
        "raw_sigterm_to_exit": summary([row[1] for row in samples["raw_etcd"]]),
        "raw_rmtree_data_dir": summary([row[2] for row in samples["raw_etcd"]]),
    }
    start["ratio_etcd_env_to_raw"] = ratio(start["etcd_env"], start["raw_etcd"])
    start["paired_ratio_etcd_env_to_raw"] = paired_ratio(ours_start, raw_start)
    stop["ratio_etcd_env_to_raw"] = ratio(stop["etcd_env"], stop["raw_sigterm_to_exit"])
    if torch_module is not None:
        start["torch"] = summary([row[0] for row in samples["torch"]])
        stop["torch"] = summary([row[1] for row in samples["torch"]])
        start["speedup_etcd_env_over_torch"] = round(start["torch"]["median_ms"] / start["etcd_env"]["median_ms"], 2)
        stop["ratio_etcd_env_to_torch"] = ratio(stop["etcd_env"], stop["torch"])
    else:
        start["torch"] = {"skipped": torch_why}
        stop["torch"] = {"skipped": torch_why}
    return {"start": start, "stop": stop}
