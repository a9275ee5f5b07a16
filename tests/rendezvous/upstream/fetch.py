"""Fetch PyTorch's upstream etcd tests listed in upstream.json, each checked against its SHA-256.

    python tests/rendezvous/upstream/fetch.py                 # from GitHub, by commit
    python tests/rendezvous/upstream/fetch.py --from DIR      # from a pytorch checkout's
                                                              # test/distributed/elastic/rendezvous
Files already present with the right SHA-256 are left alone, so this costs nothing offline
once done. The bytes are never edited: a mismatch is an error, not something to patch.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
RAW = "https://raw.githubusercontent.com/{repo}/{commit}/{path}"


def target(entry: dict[str, str]) -> Path:
    return HERE / entry["set"] / Path(entry["path"]).name


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch(entry: dict[str, str], repo: str, source_dir: Path | None) -> bytes:
    if source_dir is not None:
        return (source_dir / Path(entry["path"]).name).read_bytes()
    url = RAW.format(repo=repo, commit=entry["commit"], path=entry["path"])
    with urllib.request.urlopen(url, timeout=30) as response:
        return bytes(response.read())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="source_dir", type=Path, help="copy from this directory instead of GitHub")
    args = parser.parse_args(argv)
    manifest = json.loads((HERE / "upstream.json").read_text())
    failures = 0
    unreachable = 0
    for entry in manifest["files"]:
        path = target(entry)
        if path.exists() and sha256(path.read_bytes()) == entry["sha256"]:
            continue
        try:
            data = fetch(entry, manifest["repo"], args.source_dir)
        except OSError as error:
            print(f"fetch.py: {entry['path']}@{entry['commit'][:12]}: {error}", file=sys.stderr)
            unreachable += 1
            continue
        if sha256(data) != entry["sha256"]:
            print(
                f"fetch.py: {entry['path']}@{entry['commit'][:12]}: SHA-256 {sha256(data)} is not the "
                f"pinned {entry['sha256']}; not written",
                file=sys.stderr,
            )
            failures += 1
            continue
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        print(f"fetched {path.relative_to(HERE)} ({entry['commit'][:12]})")
    if unreachable:
        # Offline (CI here reaches only the package registries): not an error of the suite's. The
        # missing files are reported again, as skips with this reason, by test_files.py.
        print(
            f"fetch.py: {unreachable} file(s) could not be fetched, so their tests will be skipped. Without "
            "network to GitHub, pass --from a pytorch checkout's test/distributed/elastic/rendezvous directory.",
            file=sys.stderr,
        )
    # A file that arrived with other bytes than pinned is an error: never run, never written.
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
