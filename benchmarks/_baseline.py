"""A git revision's ``etcd_env/``, unpacked, for a before/after measured in one run on one machine."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def baseline_tree(ref: str, into: Path) -> Path:
    """``etcd_env/`` at ``ref`` under ``into`` (created if missing): put ``into`` first on PYTHONPATH."""
    archive = subprocess.run(["git", "archive", ref, "etcd_env"], cwd=REPO, capture_output=True, check=True)
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into
