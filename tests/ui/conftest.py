"""Headless Chromium (Debian's chromium and chromium-driver) against a real `scheduler-server serve`.

Selenium is pointed at /usr/bin/chromium and /usr/bin/chromedriver and kept offline (SE_OFFLINE: Selenium
Manager never downloads a driver or a browser). Screenshots go to $UI_ARTIFACTS_DIR when set, else to
``ui-artifacts`` under pytest's base temporary directory (printed at the end of the run).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import requests

from tests.pipelines.server import ServeProcess

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
TOKEN = "ui-test-token"
HOSTILE = ["<script>window.__pwned=1</script>", '"><img src=x onerror="window.__pwned=1">']
SCRIPTS = {
    "hello.sh": 'echo "hello from the pipeline"; echo "a warning on stderr" >&2\n',
    "sleep.sh": 'last="${@: -1}"; case "$last" in ""|*[!0-9.]*) last=30;; esac; echo started; sleep "$last"\n',
    "fail.sh": 'echo "about to fail"; exit 3\n',
    # 400 numbered lines 50 ms apart: a live log that grows while the page tails it.
    "lines.sh": 'for i in $(seq 1 400); do echo "line $i"; sleep 0.05; done\n',
    # Log lines that would run if a page rendered them as HTML.
    "hostile.sh": "".join(f"printf '%s\\n' '{line}'\n" for line in HOSTILE),
}


def _home(root: Path, tokens: bool) -> Path:
    scripts = root / "scripts"
    scripts.mkdir(parents=True)
    for name, text in SCRIPTS.items():
        (scripts / name).write_text(text)
    config = f"data_dir: {root / 'data'}\npipelines:\n  local_scripts_folder: {scripts}\n  poll_interval: 0.1\n"
    if tokens:
        (root / "tokens").write_text(TOKEN + "\n")
        config += f"  tokens_file: {root / 'tokens'}\n"
    (root / "config.yaml").write_text(config)
    return root / "config.yaml"


def _serve(tmp_path_factory, name: str, tokens: bool):
    home = tmp_path_factory.mktemp(name)
    server = ServeProcess(home, _home(home, tokens)).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """An open server (no tokens_file)."""
    yield from _serve(tmp_path_factory, "ui-open", tokens=False)


@pytest.fixture(scope="session")
def token_server(tmp_path_factory):
    """A server whose pipeline API wants TOKEN."""
    yield from _serve(tmp_path_factory, "ui-tokens", tokens=True)


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> Path:
    chosen = os.environ.get("UI_ARTIFACTS_DIR")
    folder = Path(chosen) if chosen else tmp_path_factory.getbasetemp() / "ui-artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def make_driver():
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not fetch anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            pytest.fail(f"{path} is missing: run scripts/setup.sh test (Debian chromium, chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--window-size=1280,800", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")  # Chromium's sandbox refuses to run as root
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_window_size(1280, 800)
    return driver


@pytest.fixture(scope="session")
def driver():
    made = make_driver()
    yield made
    made.quit()


class Browser:
    """The session's Chromium, with the waits and checks the tests share."""

    def __init__(self, driver, artifacts: Path):
        self.driver, self.artifacts = driver, artifacts

    def open(self, url: str, states=("ready",), timeout: float = 15.0) -> str:
        self.driver.get(url)
        return self.wait_state(states, timeout)

    def state(self) -> str | None:
        return self.driver.execute_script("const m = document.getElementById('page'); return m && m.dataset.state;")

    def wait_state(self, states=("ready",), timeout: float = 15.0) -> str:
        found = self.wait(lambda: (s := self.state()) in states and s, timeout, f"data-state in {states}")
        return found

    def wait(self, check, timeout: float = 15.0, what: str = "the page"):
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                self.shot("timeout")
                error = self.text("#error")
                raise AssertionError(f"timed out waiting for {what} (state {self.state()!r}, #error {error!r})")
            time.sleep(0.05)

    def find(self, css: str):
        return self.driver.find_element("css selector", css)

    def all(self, css: str):
        return self.driver.find_elements("css selector", css)

    def text(self, css: str) -> str:
        found = self.all(css)
        return found[0].get_attribute("textContent") if found else ""

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def set_value(self, css: str, value: str) -> None:
        self.js(
            "const e = document.querySelector(arguments[0]); e.value = arguments[1];"
            "e.dispatchEvent(new Event('input', {bubbles: true})); e.dispatchEvent(new Event('change', {bubbles: true}));",
            css,
            value,
        )

    def console_errors(self) -> list[str]:
        return [e["message"] for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]

    def shot(self, name: str) -> Path:
        path = self.artifacts / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def pwned(self) -> bool:
        """Did anything hostile run, or get into the DOM as an element?"""
        return bool(self.js("return window.__pwned !== undefined || document.querySelector('img[src=\"x\"]') !== null"))


@pytest.fixture
def browser(driver, artifacts, request):
    """The browser, with a clean session; fails the test on any console error (unless it allows some)."""
    driver.get("about:blank")
    driver.delete_all_cookies()
    driver.get_log("browser")  # drain
    made = Browser(driver, artifacts)
    yield made
    allowed = getattr(request.node.get_closest_marker("console_allows"), "args", ())
    errors = [m for m in made.console_errors() if not any(a in m for a in allowed)]
    assert not errors, f"console errors: {errors}"


def api(server, method: str, path: str, token: str | None = None, **kwargs):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = requests.request(method, server.url + path, headers=headers, timeout=60, **kwargs)
    return answer


def submit(server, item: dict, token: str | None = None) -> int:
    answer = api(server, "post", "/api/v1/pipelines", token, json=item)
    assert answer.status_code == 201, answer.text
    return answer.json()["pipelines"][0]["id"]


def wait_status(server, pid: int, statuses, token: str | None = None, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        found = api(server, "get", f"/api/v1/pipelines/{pid}", token).json()
        if found["status"] in statuses:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"pipeline {pid} is {found['status']}, not {statuses}")
        time.sleep(0.1)


def pytest_configure(config):
    config.addinivalue_line("markers", "console_allows(*texts): console errors containing one of these are expected")
