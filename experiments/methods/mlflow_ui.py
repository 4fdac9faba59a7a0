"""The README's picture of the MLflow UI: the study's runs at one label budget, grouped by
method, with their accuracy per epoch, as a researcher compares them (docs/methods.md).

    python experiments/methods/mlflow_ui.py [--tracking-uri sqlite:///mlflow.db]
                                            [--labels 1000] [--out PNG] [--chromium PATH]

Starts ``mlflow ui`` on a copy of the study's SQLite store (the study may still be writing
to it), drives the page with Playwright in a headless Chromium — Model training mode, the
search filter ``params.`data.num_labeled` = '1000'``, group by the ``ssgan.method`` tag,
the chart view, charts searched for ``accuracy`` with the one-point sections (best/,
export/) folded so that the per-epoch curves show — and saves the screenshot (default:
docs/images/mlflow_methods.png). Needs what the project does not install: ``pip install
playwright`` and a Chromium (Debian's ``chromium`` package; ``--chromium`` names another).
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SEARCH_BOX = 'metrics.rmse < 1 and params.model = "tree"'  # the runs page's placeholder


def copy_store(uri: str, folder: Path) -> Path:
    """A consistent copy of the SQLite store (SQLite's online backup: safe while written)."""
    if not uri.startswith("sqlite:///"):
        sys.exit(f"error: --tracking-uri {uri}: a sqlite:/// store is needed (the study's own)")
    source = Path(uri.removeprefix("sqlite:///"))
    if not source.exists():
        sys.exit(f"error: --tracking-uri {uri}: no such file")
    copy = folder / "mlflow.db"
    with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as live, sqlite3.connect(copy) as out:
        live.backup(out)
    return copy


@contextlib.contextmanager
def mlflow_ui(store: Path) -> Iterator[str]:
    """``mlflow ui`` on ``store`` at a free localhost port; its URL once it answers."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "ui", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{store}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=5)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    sys.exit("error: mlflow ui did not start")
                time.sleep(1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def experiment_id(store: Path) -> str:
    with sqlite3.connect(store) as db:
        row = db.execute("SELECT experiment_id FROM experiments WHERE name = 'methods'").fetchone()
    if row is None:
        sys.exit(f"error: no experiment 'methods' in {store}: run experiments/methods/run.py")
    return str(row[0])


def capture(url: str, labels: int, out: Path, chromium: str) -> None:
    """The experiment page at ``url`` set up as the module says, saved to ``out``."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sys.exit("error: this script needs Playwright: pip install playwright")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 860})
        page.goto(f"{url}/runs")
        page.get_by_text("Model training").wait_for(timeout=60_000)
        page.wait_for_timeout(3000)  # first-visit tips open late; dismissed below
        if page.get_by_text("Got it").count():
            page.get_by_text("Got it").first.click()
        page.keyboard.press("Escape")
        page.get_by_text("Model training").click()
        page.wait_for_timeout(1500)
        search = page.get_by_placeholder(SEARCH_BOX)
        search.fill(f"params.`data.num_labeled` = '{labels}'")
        # Enter at once after typing submitted the box's earlier (empty) text: every run
        # stayed on the page. Let the text settle, then wait for the filter to reach the URL.
        page.wait_for_timeout(1000)
        search.press("Enter")
        page.wait_for_url("**searchFilter=**", timeout=30_000)
        page.wait_for_timeout(2000)
        page.get_by_text("Group by").click()
        page.get_by_text("ssgan.method", exact=True).click()
        page.keyboard.press("Escape")
        page.locator("label:has(input[value=CHART])").click()
        page.get_by_placeholder("Search metric charts").fill("accuracy")
        for section in ("best", "export"):  # one point each: the per-epoch curves matter
            page.get_by_text(section, exact=True).first.click()
        page.get_by_role("button", name="Toggle sidebar").click()
        if page.get_by_role("button", name="Close").count():  # the assistant's side panel
            page.get_by_role("button", name="Close").last.click()
        page.wait_for_timeout(3000)
        page.screenshot(path=str(out))
        browser.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracking-uri", default="sqlite:///mlflow.db")
    parser.add_argument("--labels", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=REPO / "docs/images/mlflow_methods.png")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ssgan-mlflow-ui-") as folder:
        store = copy_store(args.tracking_uri, Path(folder))
        with mlflow_ui(store) as url:
            capture(f"{url}/#/experiments/{experiment_id(store)}", args.labels, args.out,
                    args.chromium)  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
