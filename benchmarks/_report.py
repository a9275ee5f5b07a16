"""The printed table and the PNG plot, both read from the results dict that goes to JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _row(name: str, stats: dict[str, Any], note: str = "") -> str:
    if "skipped" in stats:
        return f"  {name:<44} skipped: {stats['skipped']}"
    if not stats.get("n"):
        return f"  {name:<44} (no samples)"
    return (
        f"  {name:<44} {stats['min_ms']:>9.2f} {stats['median_ms']:>9.2f} {stats['max_ms']:>9.2f} "
        f"{stats['n']:>4}  {note}"
    )


def table(results: dict[str, Any]) -> str:
    lines = [f"  {'':<44} {'min ms':>9} {'median':>9} {'max':>9} {'n':>4}"]
    start, stop = results["start"], results["stop"]
    lines.append("start latency")
    lines.append(_row("raw etcd, same flags (floor)", start["raw_etcd"], "1.00x"))
    lines.append(
        _row(
            "etcd_env EtcdServer.start()",
            start["etcd_env"],
            f"{start['ratio_etcd_env_to_raw']}x floor (paired {start['paired_ratio_etcd_env_to_raw']}x)",
        )
    )
    torch_note = f"etcd_env is {start['speedup_etcd_env_over_torch']}x faster" if "n" in start["torch"] else ""
    lines.append(_row("torch EtcdServer.start()", start["torch"], torch_note))
    lines.append("stop latency")
    lines.append(_row("raw etcd SIGTERM to exit (floor)", stop["raw_sigterm_to_exit"], "1.00x"))
    lines.append(_row("raw rmtree of the data dir", stop["raw_rmtree_data_dir"]))
    lines.append(_row("etcd_env stop()", stop["etcd_env"], f"{stop['ratio_etcd_env_to_raw']}x floor"))
    lines.append(_row("torch stop()", stop["torch"]))
    imports = results.get("import")
    if imports:
        lines.append(f"import etcd_env in a fresh interpreter: +{imports['import_only_median_ms']:.1f} ms (median)")
    lines.append("concurrent starts (barrier)")
    for kind, per_count in results["concurrent"].items():
        for count, row in per_count.items():
            note = f"failures {row['failures']}, retries {row['retries']}"
            lines.append(_row(f"{kind}: {count} processes at once", row["start"], note))
    lines.append("ports")
    for name, stats in results["ports"].items():
        lines.append(_row(name, stats))
    cluster = results["cluster"]
    lines.append("3-member cluster")
    if "skipped" in cluster:
        lines.append(f"  skipped: {cluster['skipped']}")
    else:
        lines.append(_row("EtcdCluster(3).start()", cluster["start"]))
        lines.append(_row("writes resume after killing the leader", cluster["writes_resume_after_leader_kill"]))
        lines.append(_row("writes resume after killing a follower", cluster["writes_resume_after_follower_kill"]))
    lines.append("footprint per server (after ready)")
    lines.append(f"  {'':<44} {'RSS MB':>9} {'disk MB':>9} {'apparent':>9} fs")
    for name, row in results["footprint"].items():
        lines.append(
            f"  {name:<44} {row['rss_bytes'] / 1e6:>9.1f} {row['allocated_bytes'] / 1e6:>9.1f} "
            f"{row['apparent_bytes'] / 1e6:>9.1f} {row['filesystem']}"
        )
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib  # noqa: PLC0415 - bench-only dependency

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    start = results["start"]
    series = [("raw etcd (floor)", start["raw_etcd"]), ("etcd_env", start["etcd_env"])]
    if "n" in start["torch"]:
        series.append(("torch", start["torch"]))
    for kind, per_count in results["concurrent"].items():
        for count, row in per_count.items():
            if row["start"].get("n"):
                series.append((f"{kind} x{count} at once", row["start"]))
    figure, axis = plt.subplots(figsize=(9, 0.55 * len(series) + 1.8))
    axis.boxplot(
        [stats["samples_ms"] for _, stats in series],
        vert=False,
        whis=(0, 100),
    )
    axis.set_yticks(range(1, len(series) + 1), [name for name, _ in series])
    axis.set_xscale("log")
    axis.set_xlabel("start latency, ms (log scale; whiskers are min and max)")
    machine = results["machine"]
    axis.set_title(f"EtcdServer.start() - {machine['cpu']}, {machine['cores']} cores, etcd {machine['etcd_version']}")
    axis.grid(axis="x", which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
