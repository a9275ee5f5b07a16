"""The pytest plugin's options as its fixtures read them, in a module of its own.

Both the plugin and its cluster fixtures need them, and the plugin imports the
cluster fixtures to register them: reading options here keeps that one-way.
"""

from __future__ import annotations

from typing import TypedDict

import pytest


class BinaryAndHost(TypedDict):
    binary: str | None
    host: str


def option(config: pytest.Config, name: str) -> str | None:
    """Command line first, then the ini file; None where neither sets it."""
    value = config.getoption(name, default=None) or config.getini(name)
    return str(value) if value else None


def binary_and_host(config: pytest.Config, binary: str | None, host: str | None) -> BinaryAndHost:
    """``binary`` and ``host`` for a server or cluster: the caller's, else the plugin's options."""
    return {
        "binary": binary or option(config, "etcd_binary"),
        "host": host or option(config, "etcd_host") or "127.0.0.1",
    }
