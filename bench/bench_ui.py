"""The web UI in headless Chromium on loopback, with 10,000 pipelines in the database.

For each page: milliseconds from navigation start to its ``<main>``'s data-state="ready" (its data
drawn, not just its frame), read in the page itself (a MutationObserver installed through the DevTools
protocol before any page script runs), median and worst of --runs warm loads (goal < 300 ms). Then the
planner with a 7-day basic schedule: the request's time and the plot's drawing after the answer arrived
(the timeline's data-draw-ms; goal < 1 s). And the API calls the queue page makes, timed from Python.

The rows are inserted through the store in one transaction before the server starts, spread over the
last 6 hours, all finished (so the dispatcher has nothing to do) but for ``--queued`` of them.

    .venv/bin/python bench/bench_ui.py [--runs 10] [--rows 10000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.pipelines.server import ServeProcess  # noqa: E402
from tests.ui.conftest import make_driver  # noqa: E402

STATUSES = ("succeeded", "succeeded", "succeeded", "failed", "cancelled")
READY_OBSERVER = """
window.__readyAt = null;
new MutationObserver((changes) => {
  for (const c of changes) {
    if (c.target.id === 'page' && c.target.dataset.state === 'ready' && window.__readyAt === null) {
      window.__readyAt = performance.now();
    }
  }
}).observe(document, {subtree: true, attributes: true, attributeFilter: ['data-state']});
"""


def fill(url: str, rows: int, queued: int) -> None:
    from scheduler_server.pipelines.models import Pipeline
    from scheduler_server.pipelines.storage.store import Store

    store = Store(url)
    now = time.time()
    made = []
    for n in range(rows):
        created = now - 6 * 3600 + n * ((6 * 3600 - 120) / rows)  # each ends (80 s later) before now
        final = n >= queued
        made.append(
            Pipeline(
                status=STATUSES[n % len(STATUSES)] if final else "queued",
                project=f"project-{n % 17}",
                subject=f"subject-{n % 400}",
                session=f"session-{n}",
                script="qmroct.sh",
                spec={"project": f"project-{n % 17}", "subject": f"subject-{n % 400}", "session": f"session-{n}"},
                created_at=created,
                started_at=created + 20 if final else None,
                finished_at=created + 80 if final else None,
                attempt=1 if final else 0,
                cancel_requested=not final,  # queued ones are cancelled on the first tick: none runs
            )
        )
    store.add_pipelines(made)
    store.close()


SLOWEST_API = (
    "return Math.max(0, ...performance.getEntriesByType('resource')"
    ".filter((e) => e.name.includes('/api/') && e.responseEnd <= window.__readyAt).map((e) => e.duration))"
)


def page_ready_ms(driver, url: str) -> tuple[float, float]:
    """(ms to ready, ms of the slowest API call before it)."""
    driver.get(url)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready = driver.execute_script("return window.__readyAt")
        if ready is not None:
            return float(ready), float(driver.execute_script(SLOWEST_API))
        state = driver.execute_script("const m = document.getElementById('page'); return m && m.dataset.state")
        if state == "error":
            raise RuntimeError(f"{url}: {driver.find_element('id', 'error').text}")
        time.sleep(0.005)
    raise RuntimeError(f"{url}: not ready in 30 s")


def plan(driver, base: str, t1: str = "2026-12-08 00:00") -> tuple[float, float, int]:
    """Schedule basic from 2026-12-01 00:00 to t1 in the planner: (ms submit to drawn, ms drawing, bands)."""
    driver.get(base + "/ui/")
    while driver.execute_script("return document.getElementById('page').dataset.state") != "ready":
        time.sleep(0.01)
    driver.execute_script(
        "for (const [id, v] of [['t0', '2026-12-01 00:00'], ['t1', arguments[0]], ['policy', 'basic']]) {"
        " const e = document.getElementById(id); e.value = v; e.dispatchEvent(new Event('change')); }"
        "document.getElementById('page').dataset.state = 'submitted';",
        t1,
    )
    started = time.perf_counter()
    driver.find_element("id", "submit").click()
    while driver.execute_script("return document.getElementById('page').dataset.state") not in ("ready", "error"):
        time.sleep(0.005)
    total = (time.perf_counter() - started) * 1000
    timeline = driver.find_element("id", "timeline")
    return total, float(timeline.get_attribute("data-draw-ms")), len(driver.find_elements("css selector", ".band"))


def screenshots(driver, base: str, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    plan(driver, base, "2026-12-02 00:00")  # a day reads better than the week
    driver.execute_script("document.getElementById('result').scrollIntoView()")
    driver.save_screenshot(str(folder / "planner.png"))
    page_ready_ms(driver, base + "/ui/queue")
    driver.save_screenshot(str(folder / "queue.png"))


def api_ms(url: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        answer = requests.get(url, timeout=30)
        answer.raise_for_status()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def pages_table(driver, base: str, pid: int, runs: int) -> None:
    pages = {
        "planner /ui/": "/ui/",
        "sun /ui/sun": "/ui/sun",
        "queue /ui/queue": "/ui/queue",
        "pipeline /ui/pipeline?id=N": f"/ui/pipeline?id={pid}",
        "instances /ui/instances": "/ui/instances",
    }
    print("| page | median ms to data-state=ready | worst ms | median ms of its slowest API call |")
    print("|---|---|---|---|")
    for name, path in pages.items():
        page_ready_ms(driver, base + path)  # warm: assets cached, as a user's second visit
        found = [page_ready_ms(driver, base + path) for _ in range(runs)]
        times = [r[0] for r in found]
        api = statistics.median(r[1] for r in found)
        print(f"| {name} | {statistics.median(times):.0f} | {max(times):.0f} | {api:.0f} |")


def api_table(base: str, runs: int) -> None:
    print("\n| API call (10,000 rows) | median ms |\n|---|---|")
    for path in (
        "/api/v1/pipelines?limit=50&sort=-id",
        "/api/v1/pipelines?limit=50&sort=-submitted&status=failed",
        "/api/v1/pipelines?limit=50&q=session-99",
        "/api/v1/pipelines/summary",
    ):
        print(f"| `{path}` | {api_ms(base + path, runs):.1f} |")


def serve_with_rows(args) -> ServeProcess:
    home = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    url = args.database_url or f"sqlite:///{home / 'data' / 'pipelines.sqlite'}"
    (home / "scripts").mkdir()
    (home / "scripts" / "hello.sh").write_text("echo hello\n")
    config = home / "config.yaml"
    config.write_text(
        f"data_dir: {home / 'data'}\nlogging:\n  level: WARNING\n"
        f"pipelines:\n  local_scripts_folder: {home / 'scripts'}\n  database_url: {url}\n"
    )
    started = time.perf_counter()
    fill(url, args.rows, args.queued)
    print(f"inserted {args.rows} pipelines in {time.perf_counter() - started:.1f} s ({url.split(':')[0]})")
    return ServeProcess(home, config).start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--queued", type=int, default=0)
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temporary data directory")
    parser.add_argument("--screenshots", type=Path, default=None, help="save planner.png (a day) and queue.png here")
    args = parser.parse_args()
    server = serve_with_rows(args)
    driver = make_driver()
    try:
        pid = requests.post(server.url + "/api/v1/pipelines", json={"type": "script", "script": "hello.sh"}).json()
        pid = pid["pipelines"][0]["id"]
        time.sleep(1.0)
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": READY_OBSERVER})
        pages_table(driver, server.url, pid, args.runs)
        total, draw, bands = plan(driver, server.url)
        print(f"\nplanner, 7-day basic schedule: {bands} bands; submit to drawn {total:.0f} ms, drawing {draw:.0f} ms")
        if args.screenshots:
            screenshots(driver, server.url, args.screenshots)
        api_table(server.url, args.runs * 2)
    finally:
        driver.quit()
        server.stop()


if __name__ == "__main__":
    main()
