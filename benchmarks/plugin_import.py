"""What the pytest plugin costs a pytest session that uses no etcd at all.

    python benchmarks/plugin_import.py [--repeat 20] [--baseline-ref GIT_REF] [--out PATH]

etcd-env installs a ``pytest11`` entry point, so every pytest session of anyone who has it
installed loads ``etcd_env.pytest_plugin``. This times, in one run, fresh processes side by
side: a bare interpreter (``python -c pass``), ``import etcd_env``, and ``pytest --co -q`` on an
empty directory without the plugin (``-p no:etcd_env``, the baseline) and with this checkout's
plugin (``-p etcd_env.pytest_plugin``). With ``--baseline-ref`` the same two rows also run on
that git revision's package (e.g. the commit before a change), for a before/after on the same
machine under the same load. In each repetition every contender runs once, in an order that
rotates from one repetition to the next; the plugin's cost is the difference of the medians,
and the median of the per-repetition differences (each pair shares the machine's load).

The environment is the caller's minus every ``ETCD_ENV_*`` variable, with a fresh state dir,
``PYTHONPATH`` naming the package under test and ``PYTHONDONTWRITEBYTECODE`` unset, so
bytecode caches are warm from the first (untimed) round on, as they are for a user.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE)]

from _baseline import baseline_tree  # noqa: E402
from _stats import machine_load, summary  # noqa: E402

#: Runs pytest whatever plugins the caller's environment autoloads (xdist...): the baseline has them too.
PYTEST = [sys.executable, "-m", "pytest", "--co", "-q"]


def _environment(pythonpath: Path, state_dir: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ETCD_ENV_")}
    for key in ("PYTHONDONTWRITEBYTECODE", "PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        env.pop(key, None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), os.environ.get("PYTHONPATH")]))
    env["ETCD_ENV_STATE_DIR"] = str(state_dir)
    return env


def _cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(argv: list[str], cwd: Path, env: dict[str, str], ok: tuple[int, ...]) -> Callable[[], tuple[float, float]]:
    """A run of ``argv``: (wall seconds, CPU seconds of the child, user + system)."""

    def run() -> tuple[float, float]:
        cpu_before = _cpu_of_children()
        began = time.perf_counter()
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - began
        if done.returncode not in ok:
            raise SystemExit(
                f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
            )
        return elapsed, _cpu_of_children() - cpu_before

    return run


def _loaded_plugin(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Where the plugin row's etcd_env came from: proof it is the package under test, not an installed one."""
    probe = cwd / "conftest.py"
    probe.write_text(
        "import sys\n"
        "def pytest_collection_finish(session):\n"
        "    module = sys.modules.get('etcd_env.pytest_plugin')\n"
        "    print('PLUGIN-FILE', module.__file__ if module else None)\n"
    )
    try:
        done = subprocess.run([*argv, "-s"], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    finally:
        probe.unlink()
    for line in done.stdout.splitlines():
        if line.startswith("PLUGIN-FILE "):
            return line.split(" ", 1)[1]
    raise SystemExit(f"could not tell which plugin {' '.join(argv)} loaded:\n{done.stdout}\n{done.stderr}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20, help="timed repetitions of each row (default 20)")
    parser.add_argument("--baseline-ref", help="also time this git revision's package, e.g. the commit before a change")
    parser.add_argument(
        "--out",
        type=Path,
        default=HERE / "results" / "plugin_import.json",
        help="default: benchmarks/results/plugin_import.json",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="etcd-env-plugin-import-") as temp_name:
        temp = Path(temp_name)
        empty = temp / "empty"
        empty.mkdir()
        trees = {"this_checkout": REPO}
        if args.baseline_ref:
            trees[f"baseline_{args.baseline_ref}"] = baseline_tree(args.baseline_ref, temp / "baseline")
        rows: dict[str, Callable[[], tuple[float, float]]] = {}
        no_plugin = [*PYTEST, "-p", "no:etcd_env"]
        with_plugin = [*PYTEST, "-p", "no:etcd_env", "-p", "etcd_env.pytest_plugin"]
        plugin_files = {}
        for label, tree in trees.items():
            env = _environment(tree, temp / f"state-{label}")
            if label == "this_checkout":
                rows["python_pass"] = _timed([sys.executable, "-c", "pass"], empty, env, (0,))
                # Exit 5: no tests collected, which is what an empty directory is.
                rows["pytest_without_plugin"] = _timed(no_plugin, empty, env, (5,))
            rows[f"{label}.import_etcd_env"] = _timed([sys.executable, "-c", "import etcd_env"], empty, env, (0,))
            rows[f"{label}.pytest_with_plugin"] = _timed(with_plugin, empty, env, (5,))
            plugin_files[label] = _loaded_plugin(with_plugin, empty, env)
            if not plugin_files[label].startswith(str(tree)):
                raise SystemExit(f"{label}: pytest loaded {plugin_files[label]}, not the plugin under {tree}")

        results: dict[str, Any] = {
            "command": " ".join(
                ["python", "benchmarks/plugin_import.py", *(argv if argv is not None else sys.argv[1:])]
            ),
            "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release()},
            "pytest_command": " ".join(["pytest", *with_plugin[3:]]) + " (in an empty directory)",
            "plugin_files": plugin_files,
            "repeat": args.repeat,
            "load_average_before": machine_load(),
        }
        names = list(rows)
        for name in names:  # untimed: warms bytecode caches and the page cache
            rows[name]()
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
        for index in range(args.repeat):
            shift = index % len(names)
            for name in names[shift:] + names[:shift]:
                samples[name].append(rows[name]())
            print(f"\r  repetition {index + 1}/{args.repeat}", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
    results["load_average_after"] = machine_load()

    for clock, column in (("wall", 0), ("cpu", 1)):
        # CPU time (user + system of the child) is what a loaded machine moves least: waiting is not counted.
        series = {name: [sample[column] for sample in values] for name, values in samples.items()}
        block: dict[str, Any] = {
            "python_pass": summary(series["python_pass"]),
            "pytest_without_plugin": summary(series["pytest_without_plugin"]),
        }
        base = block["pytest_without_plugin"]["median_ms"]
        bare = block["python_pass"]["median_ms"]
        for label in trees:
            with_plugin_s = series[f"{label}.pytest_with_plugin"]
            stats = summary(with_plugin_s)
            imported = summary(series[f"{label}.import_etcd_env"])
            paired = [(a - b) * 1000 for a, b in zip(with_plugin_s, series["pytest_without_plugin"], strict=True)]
            block[label] = {
                "import_etcd_env": imported,
                "import_etcd_env_over_python_ms": round(imported["median_ms"] - bare, 1),
                "pytest_with_plugin": stats,
                "plugin_cost_ms": round(stats["median_ms"] - base, 1),
                "plugin_cost_paired_median_ms": round(statistics.median(paired), 1),
                "ratio_over_baseline": round(stats["median_ms"] / base, 3),
            }
        results[clock] = block
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")

    def line(name: str, stats: dict[str, Any], note: str = "") -> None:
        print(
            f"  {name:<32} median {stats['median_ms']:7.1f} ms  "
            f"(min {stats['min_ms']:6.1f}, p90 {stats['p90_ms']:6.1f}, max {stats['max_ms']:6.1f})  {note}"
        )

    print(
        f"{args.repeat} runs each, interleaved; load average {results['load_average_before']:.2f} before, "
        f"{results['load_average_after']:.2f} after"
    )
    for clock, title in (("wall", "wall time"), ("cpu", "CPU time of the process (user + system)")):
        block = results[clock]
        print(title)
        line("python -c pass", block["python_pass"])
        line("pytest --co -q -p no:etcd_env", block["pytest_without_plugin"], "(baseline)")
        for label in trees:
            row = block[label]
            print(f" {label}")
            line("python -c 'import etcd_env'", row["import_etcd_env"], f"+{row['import_etcd_env_over_python_ms']} ms")
            line(
                "pytest --co -q, with the plugin",
                row["pytest_with_plugin"],
                f"{row['plugin_cost_ms']:+} ms (paired {row['plugin_cost_paired_median_ms']:+} ms), "
                f"{row['ratio_over_baseline']}x the baseline",
            )
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
