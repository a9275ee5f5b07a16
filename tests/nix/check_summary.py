"""The pytest summary a build log's check phase must end with.

    python tests/nix/check_summary.py BUILD_LOG

Prints the counts and exits 0 only when the log holds a pytest summary line with at least
one test passed and none failed or in error. A check phase that prints no summary ran no
tests (or none that reported), whatever Nix's exit status says, and counts as a failure.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|\x1b\][^\x07]*\x07")
# `==== 1 failed, 181 passed, 25 skipped in 123.45s (0:02:03) ====`, maybe behind a `name> ` prefix.
_SUMMARY = re.compile(r"=+ ((?:\d+ [a-z]+(?:, )?)+) in [\d.]+s(?: \([\d:]+\))? =+\s*$")
_COUNT = re.compile(r"(\d+) ([a-z]+)")


def summary(log: str) -> dict[str, int] | None:
    """The counts of the last pytest summary line in ``log`` (``error`` for errors), or None."""
    found = None
    for line in _ANSI.sub("", log).splitlines():
        match = _SUMMARY.search(line)
        if match:
            found = {kind.rstrip("s") if kind == "errors" else kind: int(n) for n, kind in _COUNT.findall(match[1])}
    return found


def verdict(log: str) -> tuple[bool, str]:
    counts = summary(log)
    if counts is None:
        return False, "no pytest summary in the build log: the check phase ran no tests"
    shown = ", ".join(f"{n} {kind}" for kind, n in counts.items())
    if counts.get("failed", 0) or counts.get("error", 0) or not counts.get("passed", 0):
        return False, f"check phase: {shown}"
    return True, f"check phase: {shown}"


def main() -> None:
    ok, said = verdict(Path(sys.argv[1]).read_text(errors="replace"))
    print(said, file=sys.stdout if ok else sys.stderr)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
