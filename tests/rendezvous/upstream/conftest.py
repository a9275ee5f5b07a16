"""Run PyTorch's own etcd tests, unchanged, against etcd_env.

The files (``release/``, ``main/``; fetched by ``fetch.py``, pinned in ``upstream.json``)
import ``EtcdServer`` and ``find_free_port`` from torch's ``etcd_server`` module at
module level. While each of them is imported, that module's ``EtcdServer``,
``find_free_port`` and ``stop_etcd`` are etcd_env's; afterwards torch's module is
restored, so the suite's side-by-side tests still see the reference. A collected
upstream module that bound torch's own class instead is a usage error: nothing here
can pass on the reference by accident.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Generator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import etcd_env

HERE = Path(__file__).resolve().parent
SUBSTITUTED = {
    "EtcdServer": etcd_env.EtcdServer,
    "find_free_port": etcd_env.find_free_port,
    "stop_etcd": etcd_env.stop_etcd,
}


def manifest() -> dict[str, Any]:
    return dict(json.loads((HERE / "upstream.json").read_text()))


def torch_etcd_server() -> ModuleType | None:
    try:
        import torch.distributed.elastic.rendezvous.etcd_server as module  # noqa: PLC0415
    except ImportError:
        return None
    return module


@contextlib.contextmanager
def substituted(module: ModuleType) -> Iterator[None]:
    saved = {name: getattr(module, name) for name in SUBSTITUTED}
    for name, value in SUBSTITUTED.items():
        setattr(module, name, value)
    # Two upstream files sys.exit(0) at import under $CIRCLECI (a torch CI quirk): hermetic here.
    circleci = os.environ.pop("CIRCLECI", None)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(module, name, value)
        if circleci is not None:
            os.environ["CIRCLECI"] = circleci


def _upstream_module(collector: pytest.Collector) -> bool:
    return isinstance(collector, pytest.Module) and collector.path.parent.parent == HERE


def pytest_ignore_collect(collection_path: Path) -> bool | None:
    # Without torch the upstream files cannot even be imported; test_files.py says why they did not run.
    if collection_path.parent.parent == HERE and torch_etcd_server() is None:
        return True
    return None


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, Any]:
    module = torch_etcd_server() if _upstream_module(collector) else None
    if module is None:
        return (yield)
    with substituted(module):
        return (yield)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.parent.parent != HERE:
            continue
        namespace = vars(item.module) if item.module is not None else {}
        for name, value in SUBSTITUTED.items():
            if name in namespace and namespace[name] is not value:
                raise pytest.UsageError(f"{item.nodeid}: {name} is {namespace[name]!r}, not etcd_env's")


def upstream_file_status() -> list[tuple[dict[str, str], str]]:
    """Each manifest entry and what is wrong with its local copy ('' when present and unchanged)."""
    status = []
    for entry in manifest()["files"]:
        path = HERE / entry["set"] / Path(entry["path"]).name
        if not path.exists():
            problem = f"{path.relative_to(HERE)} is not fetched"
        elif hashlib.sha256(path.read_bytes()).hexdigest() != entry["sha256"]:
            problem = f"{path.relative_to(HERE)} differs from {entry['path']}@{entry['commit'][:12]}"
        else:
            problem = ""
        status.append((entry, problem))
    return status
