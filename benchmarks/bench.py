"""etcd_env's speed and footprint, side by side with etcd itself and with torch's EtcdServer.

    python benchmarks/bench.py [--quick] [--repeat N] [--out benchmarks/results/latest.json]
    nox -s bench [-- --quick]

Everything runs in one process run, interleaved where it compares: see the
modules beside this file. Prints a table, writes JSON (with the machine it ran
on) and a PNG of the start-latency distributions next to the JSON.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # run from a clean clone without installing

import _cluster_bench  # noqa: E402
import _concurrent  # noqa: E402
import _footprint  # noqa: E402
import _ports_bench  # noqa: E402
import _report  # noqa: E402
import _startstop  # noqa: E402
from _stats import machine_load  # noqa: E402

from etcd_env import EtcdBinary, resolve_binary  # noqa: E402
from etcd_env._common.paths import state_root  # noqa: E402


def machine(binary: EtcdBinary, torch_why: str) -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "etcd_version": binary.version,
        "etcd_source": binary.source,
        "etcd_path": binary.path,
        "torch": torch_why,
        "state_dir": str(state_root()),
        "state_dir_filesystem": _footprint.filesystem(state_root()),
        "setpriv": shutil.which("setpriv"),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run (<1 min): fewer repetitions, 8 processes")
    parser.add_argument("--repeat", type=int, help="start/stop repetitions (default 40, quick 5)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "latest.json", help="where the JSON goes")
    parser.add_argument("--no-torch", action="store_true", help="leave torch's EtcdServer out even if importable")
    args = parser.parse_args(argv)
    repeat = args.repeat or (5 if args.quick else 40)
    counts = [8] if args.quick else [8, 16, 32]

    began = time.perf_counter()
    binary = resolve_binary()
    torch_module, torch_why = (None, "left out (--no-torch)") if args.no_torch else _startstop.load_torch_reference()
    if torch_module is None:
        print(f"torch rows skipped: {torch_why}", file=sys.stderr)
    results: dict[str, Any] = {
        "machine": machine(binary, torch_why),
        "config": {"quick": args.quick, "repeat": repeat, "concurrent_counts": counts},
        "load_average_before": machine_load(),
    }
    print("start/stop, interleaved", file=sys.stderr)
    results.update(_startstop.run(binary, repeat, torch_module, torch_why))
    print("import time", file=sys.stderr)
    results["import"] = _startstop.import_time(3 if args.quick else 10)
    print("concurrent starts", file=sys.stderr)
    results["concurrent"] = _concurrent.run(counts, with_torch=torch_module is not None, binary_path=binary.path)
    print("ports", file=sys.stderr)
    results["ports"] = _ports_bench.run(200 if args.quick else 2000, torch_module)
    print("cluster", file=sys.stderr)
    results["cluster"] = _cluster_bench.run(1 if args.quick else 5)
    print("footprint", file=sys.stderr)
    results["footprint"] = _footprint.run(torch_module)
    results["load_average_after"] = machine_load()
    results["duration_s"] = round(time.perf_counter() - began, 1)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    plot_path = args.out.with_name("start_latency.png")
    _report.plot(results, plot_path)
    machine_line = results["machine"]
    print(
        f"\n{machine_line['cpu']}, {machine_line['cores']} cores, Linux {machine_line['kernel']}, "
        f"Python {machine_line['python']}, etcd {machine_line['etcd_version']} ({machine_line['etcd_source']}), "
        f"{machine_line['torch']}; load average {results['load_average_before']} -> {results['load_average_after']}"
    )
    print(_report.table(results))
    print(f"\nwrote {args.out} and {plot_path} in {results['duration_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
