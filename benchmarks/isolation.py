"""What per-test isolation costs: the plugin's fixtures against a bare test, in one pytest run.

    python benchmarks/isolation.py [--tests 200] [--baseline-ref GIT_REF] [--out benchmarks/results/isolation.json]

Generates a throwaway project whose tests are interleaved by kind (``KINDS``, in that
order: a namespace after tests that wrote nothing, after a write, around its own write;
a clean client after a write, its worst case), runs it
in one inner pytest, and records each test's setup + call + teardown time from
pytest's own reports. The overhead of a fixture is its median minus the bare test's
median, from the same run. With ``--baseline-ref`` the same project also runs against
that git revision's plugin (e.g. the commit before the fast isolation), for a
before/after on the same machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from _baseline import baseline_tree  # noqa: E402

from etcd_env import resolve_binary  # noqa: E402

#: In this order, test by test: each kind's place decides what state it finds (see the docstring).
KINDS = {
    "bare": ("", ""),
    "etcd_server": ("etcd_server", ""),
    "etcd_client": ("etcd_client", ""),
    # Follows tests that wrote nothing: the common case the raft-index check makes cheap.
    "etcd_namespace": ("etcd_namespace", ""),
    # The write's own cost, without isolation: what etcd_namespace_one_write adds to it is the cleanup.
    "etcd_client_one_write": ("etcd_client", "etcd_client.write('/k', 'v')"),
    # Writes nothing itself but follows a write: it must look for its keys (the slow path).
    "etcd_namespace_after_a_write": ("etcd_namespace", ""),
    "etcd_namespace_one_write": ("etcd_namespace, etcd_client", "etcd_client.write(etcd_namespace.key('k'), 'v')"),
    # Follows a write, so it always empties the key space: its worst case.
    "etcd_clean_client": ("etcd_clean_client", ""),
}

RECORDER = """
import json, os
from collections import defaultdict

durations = defaultdict(float)

def pytest_runtest_logreport(report):
    durations[report.nodeid] += report.duration

def pytest_sessionfinish(session):
    with open(os.environ["ISOLATION_OUT"], "w") as out:
        json.dump(dict(durations), out)
"""


def project(directory: Path, count: int, kinds: list[str]) -> None:
    directory.mkdir()
    lines = []
    for index in range(count):
        for kind in kinds:
            arguments, body = KINDS[kind]
            lines.append(f"def test_{index:04d}_{kind}({arguments}):\n    {body or 'pass'}\n")
    (directory / "test_isolation.py").write_text("\n".join(lines))
    (directory / "conftest.py").write_text(RECORDER)


def run(directory: Path, plugin_args: list[str], pythonpath: str | None) -> dict[str, float]:
    out = directory / "durations.json"
    env = {**os.environ, "ISOLATION_OUT": str(out)}
    env.pop("ETCD_ENV_ENDPOINTS", None)  # the plugin's own server, whatever the caller exports
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", *plugin_args],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"inner pytest failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return dict(json.loads(out.read_text()))


def summarize(durations: dict[str, float]) -> dict[str, Any]:
    by_kind: dict[str, list[float]] = {}
    for nodeid, seconds in durations.items():
        kind = nodeid.split("::test_", 1)[1].split("_", 1)[1]
        by_kind.setdefault(kind, []).append(seconds * 1000)
    # The first test of each kind pays one-off costs (the session server's start, the first connection).
    steady = {kind: sorted(values[1:]) for kind, values in by_kind.items()}
    bare = statistics.median(steady["bare"])
    rows = {}
    for kind, values in steady.items():
        median = statistics.median(values)
        rows[kind] = {
            "n": len(values),
            "median_ms": round(median, 3),
            "mean_ms": round(statistics.fmean(values), 3),
            "p90_ms": round(values[int(len(values) * 0.9)], 3),
            "overhead_vs_bare_median_ms": round(median - bare, 3),
            "per_100_tests_s": round(sum(values) / len(values) * 100 / 1000, 3),
        }
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tests", type=int, default=200, help="tests of each kind (default 200)")
    parser.add_argument("--baseline-ref", help="also run this git revision's plugin, e.g. 128f609")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "isolation.json")
    args = parser.parse_args(argv)
    binary = resolve_binary()
    results: dict[str, Any] = {
        "command": " ".join(["python", "benchmarks/isolation.py", *(argv if argv is not None else sys.argv[1:])]),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release()},
        "load_average_before": os.getloadavg()[0],
        "etcd": {"version": binary.version, "source": binary.source},
        "method": (
            "one inner pytest per plugin, kinds interleaved test by test; each test's setup+call+teardown "
            "from pytest's reports; the first test of each kind (one-off costs) left out; overhead = "
            "median of the kind minus median of the bare test in the same run"
        ),
    }
    with tempfile.TemporaryDirectory(prefix="etcd-env-isolation-") as temp:
        work = Path(temp) / "project"
        project(work, args.tests, list(KINDS))
        here = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        results["this_checkout"] = summarize(run(work, ["-p", "etcd_env.pytest_plugin", "-p", "no:etcd_env"], here))
        if args.baseline_ref:
            tree = baseline_tree(args.baseline_ref, Path(temp))
            pythonpath = os.pathsep.join(filter(None, [str(tree), os.environ.get("PYTHONPATH")]))
            # etcd_clean_client is new: the baseline runs every other kind.
            old_work = Path(temp) / "baseline-project"
            project(old_work, args.tests, [kind for kind in KINDS if kind != "etcd_clean_client"])
            old = run(old_work, ["-p", "etcd_env._pytest_plugin", "-p", "no:etcd_env"], pythonpath)
            results[f"baseline_{args.baseline_ref}"] = summarize(old)
            # Overheads as ratios (this checkout / baseline): what a loaded machine shifts least.
            results["overhead_ratio_to_baseline"] = {
                kind: round(row["overhead_vs_bare_median_ms"] / old_row["overhead_vs_bare_median_ms"], 3)
                for kind, row in results["this_checkout"].items()
                if (old_row := results[f"baseline_{args.baseline_ref}"].get(kind))
                and old_row["overhead_vs_bare_median_ms"] > 0
            }
    results["load_average_after"] = os.getloadavg()[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"load average before/after: {results['load_average_before']:.1f} / {results['load_average_after']:.1f}")
    for label in [key for key in results if key == "this_checkout" or key.startswith("baseline_")]:
        print(label)
        for kind, row in results[label].items():
            print(
                f"  {kind:<28} median {row['median_ms']:7.3f} ms  overhead {row['overhead_vs_bare_median_ms']:+7.3f} ms"
                f"  per 100 tests {row['per_100_tests_s']:.3f} s"
            )
    for kind, ratio in results.get("overhead_ratio_to_baseline", {}).items():
        print(f"  overhead ratio, this checkout / baseline, {kind}: {ratio}")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
