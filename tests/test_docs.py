"""The documentation stays checkable: README.md is a front door (at most 250 lines), every
relative link and anchor in README.md, docs/*.md and the studies' READMEs points to
something that exists, every ``python -m ssgan.X`` names a module that runs, module paths
name modules that exist, and every figure quoted from a results file is in that file.

Quoted figures are marked where they are quoted::

    <!-- figures: experiments/label_budget/results.md -->
    ... text or a table quoting that file ...
    <!-- /figures -->

Every number between the markers must be a number in the named file (compared as values,
so ``64.7%`` matches ``64.7 %``), and every 32-hex run id must appear in it: when the file
changes, the quote fails until it is updated. No TensorFlow: this reads text only.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "ssgan"
README = REPO / "README.md"
PAGES = [
    README,
    *sorted((REPO / "docs").glob("*.md")),
    *sorted(REPO.glob("experiments/*/README.md")),
]
README_MAX_LINES = 250
# Results files whose figures the README must quote inside a marked block.
README_QUOTES = ["experiments/methods/results.md", "experiments/test_timing/results.md"]
# Modules of the old flat layout: ``ssgan/<name>.py`` or ``ssgan.<name>.<attr>`` is stale.
REMOVED = {"model", "gan", "trainer", "run", "deploy", "sweep", "search", "serving_config",
           "verification", "losses", "averaging", "distribute"}  # fmt: skip

FENCE = re.compile(r"^```.*?^```[ \t]*$", re.S | re.M)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)|<img\s[^>]*src=\"([^\"]+)\"")
BLOCK = re.compile(r"<!-- figures: (\S+) -->(.*?)<!-- /figures -->", re.S)
NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?!\w)")
RUN_ID = re.compile(r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])")
PYTHON_M = re.compile(r"python -m (ssgan(?:\.\w+)+)")
DOTTED = re.compile(r"(?<![\w./])ssgan(?:\.[A-Za-z_]\w*)+")
MODULE_PATH = re.compile(r"(?<![\w/])(?:ssgan|tests)/[\w/]+\.py")


def page_id(page: Path) -> str:
    return str(page.relative_to(REPO))


def prose(text: str) -> str:
    """The text without fenced code blocks and code spans (links there are not links)."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in FENCE.sub("", page.read_text()).splitlines():
        match = re.match(r"#{1,6}\s+(.*)", line)
        if match:
            base = slug(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            out.add(base if count == 0 else f"{base}-{count}")
    return out


def numbers(text: str) -> list[tuple[str, float]]:
    return [
        (whole + (frac or ""), float(whole.replace(",", "") + (frac or "")))
        for whole, frac in NUMBER.findall(text)
    ]


def test_readme_is_a_front_door() -> None:
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines (at most {README_MAX_LINES}): move detail to docs/"
    )


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_relative_links_point_to_what_exists(page: Path) -> None:
    broken = []
    for match in LINK.finditer(prose(page.read_text())):
        target = match.group(1) or match.group(2)
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        where = (page.parent / path).resolve() if path else page
        if not where.exists():
            broken.append(f"{target}: no such file")
        elif anchor and where.suffix == ".md" and anchor not in anchors(where):
            broken.append(f"{target}: no heading with anchor #{anchor} in {where.name}")
    assert not broken, f"{page_id(page)}: " + "; ".join(broken)


def runnable(module: str) -> Path | None:
    """The file ``python -m <module>`` runs, if it has a ``__main__`` guard."""
    base = REPO.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__main__.py"):
        if path.is_file():
            text = path.read_text()
            if path.name == "__main__.py" or 'if __name__ == "__main__"' in text:
                return path
    return None


def test_readme_commands_name_entry_points() -> None:
    wrong = []
    for module in sorted(set(PYTHON_M.findall(README.read_text()))):
        parts = module.split(".")
        if len(parts) != 2 or runnable(module) is None:
            wrong.append(module)
    assert not wrong, f"README.md runs modules that are not entry points (ssgan/<name>.py): {wrong}"


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_python_m_commands_name_runnable_modules(page: Path) -> None:
    wrong = sorted({m for m in PYTHON_M.findall(page.read_text()) if runnable(m) is None})
    assert not wrong, f"{page_id(page)}: no runnable module for python -m {wrong}"


def top_level_names(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def module_file(parts: list[str]) -> Path | None:
    base = REPO.joinpath(*parts)
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def stale_reference(dotted: str) -> str | None:
    """Why ``ssgan.a.b[.attr]`` names nothing, or None. Names whose second part is no
    module (``ssgan.pruned``, ``ssgan.job_key``: MLflow tags) are not module references."""
    parts = dotted.split(".")
    if module_file(parts[:2]) is None:
        if parts[1] in REMOVED and len(parts) > 2:
            return "a module of the old layout"
        return None
    depth = max(n for n in range(2, len(parts) + 1) if module_file(parts[:n]) is not None)
    if depth == len(parts):
        return None
    path = module_file(parts[:depth])
    if path is not None and parts[depth] not in top_level_names(path):
        return f"{'.'.join(parts[:depth])} defines no {parts[depth]}"
    return None


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_module_references_name_what_exists(page: Path) -> None:
    text = page.read_text()
    wrong = [f"{p}: no such file" for p in sorted(set(MODULE_PATH.findall(text)))
             if not (REPO / p).is_file()]  # fmt: skip
    for dotted in sorted(set(DOTTED.findall(text))):
        why = stale_reference(dotted)
        if why:
            wrong.append(f"{dotted}: {why}")
    assert not wrong, f"{page_id(page)}: " + "; ".join(wrong)


def quoted_blocks(page: Path) -> list[tuple[str, str]]:
    return BLOCK.findall(page.read_text())


@pytest.mark.parametrize("page", [p for p in PAGES if quoted_blocks(p)], ids=page_id)
def test_quoted_figures_match_their_results_files(page: Path) -> None:
    wrong = []
    for source, block in quoted_blocks(page):
        path = REPO / source
        if not path.is_file():
            wrong.append(f"{source} is quoted but does not exist (commit it)")
            continue
        text = path.read_text()
        values = {value for _, value in numbers(text)}
        wrong += [f"{shown} is not in {source}" for shown, value in numbers(block)
                  if value not in values]  # fmt: skip
        wrong += [f"run {run} is not in {source}" for run in RUN_ID.findall(block)
                  if run not in text]  # fmt: skip
    assert not wrong, f"{page_id(page)}: " + "; ".join(wrong)


def test_readme_quotes_results_only_inside_marked_blocks() -> None:
    text = README.read_text()
    sources = {source for source, _ in BLOCK.findall(text)}
    missing = [source for source in README_QUOTES if source not in sources]
    assert not missing, f"README.md has no <!-- figures: … --> block for {missing}"
    outside = prose(BLOCK.sub("", text))
    percentages = re.findall(r"\d(?:\.\d+)?\s?%", outside)
    assert not percentages, (
        f"README.md states percentages outside a marked results quote: {percentages}"
    )
