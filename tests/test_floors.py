"""The package's folders are its floors: every import inside ``etcd_env/`` runs down a floor or stays in its folder.

Lowest first (docs/contributing.md, "Where things are"):

0. ``_common/``, and the top's ``_version`` (a constant any floor may read);
1. ``_binary/`` (which etcd runs) and ``_process/`` (one etcd process, kept safe), side by
   side: neither imports the other;
2. the faces at the top of ``etcd_env/``.

Static reading of the source, so it holds for imports inside functions and behind
``TYPE_CHECKING`` too.
"""

from __future__ import annotations

import ast
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import etcd_env

#: The package under test: the checkout's, or the installed wheel's (``nox -s package``).
PACKAGE = Path(etcd_env.__file__).resolve().parent

#: Floor of each folder under etcd_env/ ("" is the top).
FLOORS = {"_common": 0, "_binary": 1, "_process": 1, "": 2}
#: Top-level modules that stand on the ground floor: they import nothing of etcd_env.
GROUND_AT_TOP = {"_version"}


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path = PACKAGE) -> Iterator[tuple[int, str]]:
    """(line, imported etcd_env module) for every import in ``path``, relative ones resolved."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            # `from . import cache` imports a module; `from .pin import X` imports names of one.
            submodules = [f"{stem}.{alias.name}" for alias in node.names]
            targets = [m for m in submodules if _exists(m, root)] or [stem]
        else:
            continue
        for target in targets:
            if target == "etcd_env" or target.startswith("etcd_env."):
                yield node.lineno, target


def _exists(module: str, root: Path) -> bool:
    relative = Path(*module.split(".")[1:]) if "." in module else Path()
    return (root / relative).with_suffix(".py").is_file() or (root / relative / "__init__.py").is_file()


def folder_of(module: str) -> str:
    parts = module.split(".")[1:]
    return parts[0] if len(parts) > 1 and parts[0] in FLOORS else ""


def floor_of(module: str) -> int:
    if module.split(".")[1:] and module.split(".")[1] in GROUND_AT_TOP:
        return 0
    return FLOORS[folder_of(module)]


def sources(root: Path = PACKAGE) -> list[Path]:
    return sorted(root.rglob("*.py"))


def wrong_imports(path: Path, root: Path = PACKAGE) -> list[str]:
    """Every import in ``path`` that runs up a floor, or sideways out of its folder."""
    importer = module_name(path, root)
    wrong = []
    for line, target in imports_of(path, root):
        if target in ("etcd_env", importer):
            if importer != "etcd_env":
                wrong.append(f"line {line}: {target} (the package's face, from inside it)")
            continue
        same_folder = folder_of(target) == folder_of(importer) and floor_of(target) == floor_of(importer)
        if not same_folder and floor_of(target) >= floor_of(importer):
            wrong.append(
                f"line {line}: {target} (floor {floor_of(target)}, {folder_of(target) or 'top'}) "
                f"from floor {floor_of(importer)} ({folder_of(importer) or 'top'})"
            )
    return wrong


def import_cycles(root: Path = PACKAGE) -> list[list[str]]:
    graph = {module_name(path, root): {t for _, t in imports_of(path, root)} - {"etcd_env"} for path in sources(root)}
    graph.pop("etcd_env")  # the face re-exports everything; nothing inside imports it (wrong_imports)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(module: str, trail: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                cycles.append([*trail[trail.index(target) :], target])
            elif target not in state:
                visit(target, [*trail, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return cycles


def test_where_things_are_names_every_file_of_every_folder() -> None:
    """docs/contributing.md's tree: a newcomer finds each module there, so a new one must be added."""
    guide = (Path(__file__).resolve().parent.parent / "docs" / "contributing.md").read_text()
    section = guide.split("## Where things are", 1)[1].split("\n## ", 1)[0]
    files = [path for path in PACKAGE.rglob("*") if path.is_file() and "__pycache__" not in path.parts]
    unnamed = sorted(
        str(path.relative_to(PACKAGE))
        for path in files
        if path.name not in ("__init__.py", "py.typed") and not path.name.endswith(".pyc") and path.name not in section
    )
    assert not unnamed, f"not in docs/contributing.md, 'Where things are': {unnamed}"
    for folder in set(FLOORS) - {""}:
        assert f"`etcd_env/{folder}/`" in section


def test_every_folder_of_the_package_has_a_floor() -> None:
    folders = {path.parent.name for path in sources() if path.parent != PACKAGE}
    assert folders == set(FLOORS) - {""}, "a new folder needs a floor here and a line in docs/contributing.md"


@pytest.mark.parametrize("path", sources(), ids=lambda path: str(path.relative_to(PACKAGE)))
def test_imports_run_down_the_floors(path: Path) -> None:
    wrong = wrong_imports(path)
    assert not wrong, f"{module_name(path)} imports up or sideways:\n" + "\n".join(wrong)


def test_the_module_graph_has_no_cycles() -> None:
    cycles = import_cycles()
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(cycle) for cycle in cycles)


def test_the_checks_catch_what_they_guard(tmp_path: Path) -> None:
    """On a copy: the member reaching up into resolution again, and a cycle inside a folder, are both caught."""
    root = tmp_path / "etcd_env"
    shutil.copytree(PACKAGE, root, ignore=shutil.ignore_patterns("__pycache__"))
    member = root / "_process" / "member.py"
    member.write_text(member.read_text() + "\nfrom .._binary.resolve import resolve_binary\n")
    assert [line.split(": ", 1)[1] for line in wrong_imports(member, root)] == [
        "etcd_env._binary.resolve (floor 1, _binary) from floor 1 (_process)"
    ]
    pin = root / "_binary" / "pin.py"
    pin.write_text(pin.read_text() + "\nfrom .resolve import EtcdBinary\n")
    assert wrong_imports(pin, root) == []  # inside its folder: allowed, but
    assert ["etcd_env._binary.pin", "etcd_env._binary.resolve", "etcd_env._binary.pin"] in import_cycles(root)
