"""The package's shape, as rules on the real import graph (see docs/architecture.md).

Every ``import`` statement in ``ssgan/`` counts, also those inside functions: a lazy
import is still a dependency. The rules:

* packages import only downward (the table below), and modules form no cycle;
* nothing imports an entry-point module, and no private name crosses a module boundary;
* only ``ssgan/tracking/`` imports mlflow;
* serving and promotion never reach the training loop, not even transitively;
* a module stays under ~400 lines, an entry point under 60;
* docs/architecture.md's layout table lists every module in its part's row.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "ssgan"
ENTRY_POINTS = {"train", "tune", "report", "promote", "predict", "export", "bench", "data_stats"}
BASE = {"ssgan", "allocator", "bench_config", "config", "config_checks", "cli",
        "command_checks", "command_start", "completion", "console", "errors", "files", "hydra_help",
        "host", "job_context", "job_paths", "method_config", "old_flags", "preprocess", "plots",
        "runtime", "stopping"}  # fmt: skip
# What each part may import besides itself; "entry" may import anything but entry points.
ALLOWED = {
    "base": {"base"},
    "data": {"base"},
    "models": {"base"},
    "methods": {"base", "models"},
    "tracking": {"base"},
    "serving": {"base", "models", "tracking"},
    "training": {"base", "data", "models", "methods", "tracking", "serving"},
    "sweeps": {"base", "data", "models", "methods", "tracking", "serving", "training"},
    "benchmarks": {"base", "data", "models", "methods", "tracking", "serving", "training"},
}
MAX_MODULE_LINES = 400
MAX_ENTRY_LINES = 60


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def part_of(module: str) -> str:
    """``base``, ``entry`` or the subpackage a module belongs to."""
    parts = module.split(".")
    if len(parts) == 1 or (len(parts) == 2 and parts[1] in BASE):
        return "base"
    if len(parts) == 2 and parts[1] in ENTRY_POINTS:
        return "entry"
    return parts[1]


def imports_of(path: Path) -> list[tuple[str, str | None, int]]:
    """``(module, imported name or None, line)`` for every import in the file, resolving
    ``from ssgan.x import y`` to the module ``ssgan.x.y`` when ``y`` is one."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if submodule in MODULES:
                    found.append((submodule, None, node.lineno))
                else:
                    found.append((node.module, alias.name, node.lineno))
    return found


def graph() -> dict[str, set[str]]:
    return {
        module: {name for name, _, _ in imports_of(path) if name in MODULES}
        for module, path in MODULES.items()
    }


def reachable(start: str, edges: dict[str, set[str]]) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for target in edges[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    return seen


@pytest.mark.unit
def test_packages_import_only_downward() -> None:
    wrong = []
    for module, targets in graph().items():
        part = part_of(module)
        for target in targets:
            other = part_of(target)
            if other == "entry" or (other != part and part != "entry"
                                    and other not in ALLOWED[part]):  # fmt: skip
                wrong.append(f"{module} ({part}) imports {target} ({other})")
    assert not wrong, "\n".join(wrong)


@pytest.mark.unit
def test_modules_form_no_cycle() -> None:
    edges = graph()
    cyclic = sorted(m for m in edges if m in reachable(m, edges))
    assert not cyclic, f"modules on an import cycle: {cyclic}"


def python_files_outside_tests() -> list[Path]:
    return [*PACKAGE.rglob("*.py"), *(REPO / "experiments").rglob("*.py")]


@pytest.mark.unit
def test_no_private_name_crosses_a_module_boundary_and_no_entry_point_is_imported() -> None:
    wrong = []
    for path in python_files_outside_tests():
        for module, name, line in imports_of(path):
            where = f"{path.relative_to(REPO)}:{line}"
            if module.startswith("ssgan") and name and name.startswith("_"):
                wrong.append(f"{where} imports private {module}.{name}")
            if module in MODULES and part_of(module) == "entry":
                wrong.append(f"{where} imports the entry point {module}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.unit
def test_only_tracking_imports_mlflow() -> None:
    wrong = [
        f"{module}:{line}"
        for module, path in MODULES.items()
        for name, _, line in imports_of(path)
        if name.split(".")[0] == "mlflow" and part_of(module) != "tracking"
    ]
    assert not wrong, f"mlflow imported outside ssgan/tracking/: {wrong}"


@pytest.mark.unit
@pytest.mark.parametrize("start", ["ssgan.promote", "ssgan.predict", "ssgan.serving.bundle"])
def test_serving_never_reaches_the_training_loop(start: str) -> None:
    edges = graph()
    starts = [m for m in MODULES if m == start or m.startswith("ssgan.serving.")]
    reached = set().union(*(reachable(m, edges) for m in starts))
    loop = sorted(m for m in reached if part_of(m) in ("training", "sweeps", "methods"))
    assert not loop, f"{start} reaches the training loop through {loop}"


@pytest.mark.e2e
def test_promote_loads_no_training_code_at_run_time() -> None:
    """The same rule on the modules Python really loads for the promote command."""
    probe = (
        "import sys, ssgan.promote, ssgan.serving.bundle\n"
        "print(' '.join(m for m in sys.modules if m.startswith(('ssgan.training', "
        "'ssgan.sweeps', 'ssgan.methods'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == ""


@pytest.mark.unit
def test_modules_stay_small() -> None:
    too_long = []
    for module, path in MODULES.items():
        lines = len(path.read_text().splitlines())
        limit = MAX_ENTRY_LINES if part_of(module) == "entry" else MAX_MODULE_LINES
        if lines > limit:
            too_long.append(f"{module}: {lines} lines (at most {limit})")
    assert not too_long, "\n".join(too_long)


@pytest.mark.unit
def test_every_module_says_what_it_is_for() -> None:
    missing = [
        module
        for module, path in MODULES.items()
        if not ast.get_docstring(ast.parse(path.read_text()))
    ]
    assert not missing, f"modules without a docstring: {missing}"


@pytest.mark.unit
def test_the_layout_page_lists_every_module_in_its_part() -> None:
    """docs/architecture.md's layout table names each module in the row of its part, so
    the page a maintainer reads first cannot fall behind the code."""
    rows = {}
    for line in (REPO / "docs" / "architecture.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.split("|")[1:-1]]
        if len(cells) == 4 and cells[1].startswith("`"):
            rows[cells[0].strip("`").rstrip("/")] = cells[1]
    missing = []
    for module, path in MODULES.items():
        part = part_of(module)
        row = rows.get({"entry": "entry points"}.get(part, part), "")
        if path.name != "__init__.py" and f"`{path.name}`" not in row:
            missing.append(f"{module} (part {part})")
    assert not missing, f"docs/architecture.md's layout table lacks {missing}"
