"""What one server costs: etcd's resident memory and its data dir's bytes, per placement and option.

A fresh etcd 3.5 data dir holds two 64 MB WAL segments (the live one and the
next, pre-created by the WAL's file pipeline), each reserved with fallocate(2).
The segment size is a Go variable (wal.SegmentSizeBytes), not a flag, so the
variants below measure what the flags and placements that exist actually do.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

from etcd_env import EtcdServer


def disk_usage(root: Path) -> dict[str, int]:
    allocated = apparent = files = 0
    for directory, _, names in os.walk(root):
        for name in names:
            info = (Path(directory) / name).lstat()
            allocated += info.st_blocks * 512
            apparent += info.st_size
            files += 1
    return {"allocated_bytes": allocated, "apparent_bytes": apparent, "files": files}


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def filesystem(path: Path) -> str:
    """The type of the mount holding ``path`` (``stat -f`` names ext4 "ext2/ext3")."""
    done = subprocess.run(
        ["findmnt", "-n", "-o", "FSTYPE", "-T", str(path)], capture_output=True, text=True, check=False
    )
    return (done.stdout.split() or ["unknown"])[-1]  # the innermost of stacked mounts


def _measure(server: EtcdServer) -> dict[str, Any]:
    server.start()
    try:
        assert server.pid is not None and server.data_dir is not None
        return {
            "rss_bytes": rss_bytes(server.pid),
            "filesystem": filesystem(server.data_dir),
            **disk_usage(server.data_dir),
        }
    finally:
        server.stop()


def run(torch_module: ModuleType | None) -> dict[str, Any]:
    variants: dict[str, Any] = {"default (state dir in " + tempfile.gettempdir() + ")": _measure(EtcdServer())}
    if Path("/dev/shm").is_dir():
        shm = Path(tempfile.mkdtemp(prefix="bench-footprint-", dir="/dev/shm"))
        try:
            variants["data_dir on /dev/shm"] = _measure(EtcdServer(data_dir=shm / "data"))
        finally:
            shutil.rmtree(shm, ignore_errors=True)
    for flags in (["--max-wals", "1"], ["--snapshot-count", "100"], ["--quota-backend-bytes", str(16 * 1024 * 1024)]):
        variants[" ".join(flags)] = _measure(EtcdServer(extra_args=flags))
    if torch_module is not None:
        server = torch_module.EtcdServer()
        server.start(stderr=subprocess.DEVNULL)
        try:
            process = server._etcd_proc  # the reference keeps both privately
            data_dir = Path(server._base_data_dir)
            variants["torch EtcdServer (its own flags)"] = {
                "rss_bytes": rss_bytes(process.pid),
                "filesystem": filesystem(data_dir),
                **disk_usage(data_dir),
            }
        finally:
            server.stop()
    return variants
