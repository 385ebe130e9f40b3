"""The web UI under /ui/: pages and assets served from the package, each with the CSP; no inline script or style.

The pages' behaviour in a browser is tests/ui/'s; these check what the server sends.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from importlib.resources import files

import pytest

from scheduler_server.web.ui.pages import CONTENT_SECURITY_POLICY, assets_version

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
PAGES = {
    "/ui/": "planner",
    "/ui/sun": "sun",
    "/ui/queue": "queue",
    "/ui/pipeline?id=7": "pipeline",
    "/ui/pipelines/7": "pipeline",
    "/ui/instances": "instances",
}
#: The DOM contract the browser tests drive (shared interfaces of issue 14).
IDS = {
    "planner": "t0 t1 policy preset config submit config-error timeline skyview verdict blocks script copy download",
    "sun": "now day az el limit crossings intervals day-plot distance-plot",
    "queue": "counts pipelines filter-status filter-project filter-subject filter-session search next prev summary-chart",
    "pipeline": "history log tab-stdout tab-stderr cancel retry confirm confirm-yes confirm-no details",
    "instances": "instances confirm confirm-yes confirm-no",
}
EVERY_PAGE = "page error token-dialog token token-save"
STATIC = files("scheduler_server.web.ui") / "static"
TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".txt": "text/plain"}


VERSIONED = re.compile(r"^/ui/static/([0-9a-f]{12})/([a-z0-9_.-]+)$")


def _asset_name(url: str) -> str:
    """The file a page's asset URL names: /ui/static/<this build's version>/<file>."""
    found = VERSIONED.match(url)
    assert found, url
    assert found[1] == assets_version()
    return found[2]


class Page(HTMLParser):
    """What a page holds: elements by id, script and stylesheet references, and anything inline."""

    def __init__(self):
        super().__init__()
        self.ids: dict[str, tuple[str, dict]] = {}
        self.labels: set[str] = set()
        self.fields: list[str] = []
        self.assets: list[str] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            assert a["id"] not in self.ids, f"duplicate id {a['id']}"
            self.ids[a["id"]] = (tag, a)
        for name in a:
            if name == "style" or name.startswith("on"):
                self.inline.append(f"<{tag} {name}=...>")
        if tag == "style":
            self.inline.append("<style>")
        if tag == "label" and "for" in a:
            self.labels.add(a["for"])
        if tag in ("input", "select", "textarea"):
            self.fields.append(a.get("id", "?"))
        if tag == "script":
            self._in_script = True
            self.assets.append(a.get("src") or "")
        if tag == "link" and a.get("href"):
            self.assets.append(a["href"])
        for name in ("href", "src", "action"):
            if (a.get(name) or "").strip().lower().startswith("javascript:"):
                self.inline.append(f"<{tag} {name}=javascript:...>")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.inline.append(f"<script> body {data.strip()[:40]!r}")


def _parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    return page


def test_the_csp_is_the_agreed_one():
    assert CONTENT_SECURITY_POLICY == CSP


@pytest.mark.parametrize("url", PAGES)
def test_every_page_is_html_with_the_csp_and_nothing_inline(client, url):
    response = client.get(url, headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.headers["Content-Security-Policy"] == CSP
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    page = _parse(response.get_data(as_text=True))
    assert page.inline == []
    main_tag, main = page.ids["page"]
    assert main_tag == "main"
    assert main["data-page"] == PAGES[url]
    assert main["data-state"] == "loading"
    missing = [i for i in (IDS[PAGES[url]] + " " + EVERY_PAGE).split() if i not in page.ids]
    assert missing == []
    unlabelled = [f for f in page.fields if f not in page.labels]
    assert unlabelled == []


def test_the_contract_elements_have_the_agreed_kinds(client):
    planner = _parse(client.get("/ui/").get_data(as_text=True)).ids
    assert planner["timeline"][0] == "svg" and planner["skyview"][0] == "svg"
    assert planner["config"][0] == "textarea" and planner["script"][0] == "pre"
    assert planner["submit"][0] == "button"
    pipeline = _parse(client.get("/ui/pipeline?id=1").get_data(as_text=True)).ids
    assert pipeline["confirm"][0] == "dialog"
    assert pipeline["token-dialog"][0] == "dialog" and pipeline["token"][1]["type"] == "password"


@pytest.mark.parametrize("url", PAGES)
def test_every_asset_a_page_names_is_served_from_the_package_with_its_type(client, url):
    page = _parse(client.get(url).get_data(as_text=True))
    assert len(page.assets) >= 2  # its script and the stylesheet
    for asset in page.assets:
        name = _asset_name(asset)
        assert (STATIC / name).is_file(), name
        response = client.get(asset)
        assert response.status_code == 200, asset
        assert response.mimetype == TYPES["." + name.rsplit(".", 1)[1]]
        assert response.headers["Content-Security-Policy"] == CSP
        assert response.data == (STATIC / name).read_bytes()
        assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"


def test_every_shipped_asset_is_served_and_their_module_imports_resolve(client):
    names = sorted(p.name for p in STATIC.iterdir() if p.is_file())
    assert {"api.js", "dom.js", "plot.js", "ui.css"} <= set(names)
    total = 0
    for name in names:
        body = (STATIC / name).read_bytes()
        total += len(body)
        response = client.get(f"/ui/static/{name}")
        assert response.status_code == 200, name
        if name.endswith(".js"):
            for imported in re.findall(r'from "\./([^"]+)"', body.decode()):
                assert (STATIC / imported).is_file(), f"{name} imports {imported}"
    assert total < 120_000  # the README states the size; keep it small


def _imports(script: str) -> set[str]:
    found, todo = set(), [script]
    while todo:
        for name in re.findall(r'from "\./([^"]+)"', (STATIC / todo.pop()).read_text()):
            if name not in found:
                found.add(name)
                todo.append(name)
    return found


@pytest.mark.parametrize("url", PAGES)
def test_a_page_preloads_every_module_its_script_needs(client, url):
    """All at once, instead of the browser finding them one import level after another."""
    page = _parse(client.get(url).get_data(as_text=True))
    script = f"{PAGES[url]}.js"
    names = [_asset_name(a) for a in page.assets]
    assert script in names
    preloaded = {n for n in names if n.endswith(".js") and n != script}
    assert preloaded == _imports(script)
    assert "dom.js" in preloaded


def test_no_script_builds_html_from_strings_or_evaluates_code():
    forbidden = re.compile(
        r"\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|"
        r"setAttribute\(\s*[\"'](style|on)|\.setHTMLUnsafe|createContextualFragment"
    )
    for path in STATIC.iterdir():
        if path.name.endswith(".js"):
            found = forbidden.findall(path.read_text())
            assert found == [], f"{path.name}: {found}"


def test_the_version_follows_the_assets_and_an_old_one_is_not_kept(client, monkeypatch, tmp_path):
    import shutil

    from scheduler_server.web.ui import pages

    old = client.get("/ui/static/000000000000/dom.js")
    assert old.status_code == 200 and old.headers["Cache-Control"] == "no-cache"  # a page from before an upgrade
    assert client.get("/ui/static/dom.js").headers["Cache-Control"] == "no-cache"
    before = pages.assets_version()
    shutil.copytree(str(STATIC), tmp_path / "static")
    monkeypatch.setattr(pages, "files", lambda _: tmp_path)
    try:
        pages.assets_version.cache_clear()
        assert pages.assets_version() == before  # the same bytes, the same version
        (tmp_path / "static" / "ui.css").write_text((STATIC / "ui.css").read_text() + "\n")
        pages.assets_version.cache_clear()
        assert pages.assets_version() != before
    finally:
        monkeypatch.undo()
        pages.assets_version.cache_clear()


@pytest.mark.parametrize(
    "url",
    [
        "/ui/static/nothing.js",
        "/ui/static/0123456789ab/../pages.py",
        "/ui/static/a/b/dom.js",
        "/ui/static/../pages.py",
        "/ui/static/%2e%2e/pages.py",
        "/ui/static/x.py",
    ],
)
def test_nothing_else_is_served_from_static(client, url):
    response = client.get(url)
    assert response.status_code == 404
    assert response.headers["Content-Security-Policy"] == CSP


@pytest.mark.parametrize(
    ("method", "url", "status"),
    [("GET", "/ui/pipelines/abc", 404), ("GET", "/ui/nothing", 404), ("GET", "/ui", 308), ("POST", "/ui/", 405)],
)
def test_answers_no_route_makes_carry_the_csp_too(client, method, url, status):
    response = client.open(url, method=method)
    assert response.status_code == status
    assert response.headers["Content-Security-Policy"] == CSP


def test_with_tokens_the_pages_load_and_the_api_asks(tmp_path):
    from scheduler_server.app import create_app
    from scheduler_server.config import Settings

    tokens = tmp_path / "tokens"
    tokens.write_text("right-token\n")
    app = create_app(Settings(data_dir=tmp_path / "data", pipelines={"tokens_file": str(tokens)}))
    client = app.test_client()
    try:
        assert client.get("/ui/queue").status_code == 200  # the page itself holds no data
        assert client.get("/ui/static/api.js").status_code == 200
        assert client.get("/api/v1/pipelines").status_code == 401
        ok = client.get("/api/v1/pipelines", headers={"Authorization": "Bearer right-token"})
        assert ok.status_code == 200
    finally:
        service = app.extensions.get("pipelines")
        if service is not None:
            service.service.close()


def test_package_data_ships_every_ui_file():
    """A wheel (not only this editable checkout) holds each template and asset: pyproject's globs match them all."""
    import glob
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    package = root / "src" / "scheduler_server"
    shipped = {
        p for pattern in patterns["scheduler_server"] for p in glob.glob(pattern, root_dir=package, recursive=True)
    }
    ui = package / "web" / "ui"
    wanted = [
        str(p.relative_to(package))
        for p in ui.rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
    ]
    assert len(wanted) >= 20
    assert [w for w in wanted if w not in shipped] == []


def test_the_queue_query_refuses_a_repeated_parameter_and_says_characters(client):
    # The queue page's list query (web/pipelines/api.py): to_dict() would keep one of two silently.
    answer = client.get("/api/v1/pipelines?status=failed&status=queued")
    assert answer.status_code == 400
    assert answer.get_json()["field"] == "status" and "given 2 times" in answer.get_json()["message"]
    long = client.get("/api/v1/pipelines?q=" + "x" * 5000)
    assert long.status_code == 400
    assert long.get_json()["message"] == "q: at most 255 characters, not 5000"


def test_the_ui_redirects_are_relative_and_carry_the_csp(client):
    slash = client.get("/ui?x=1", headers={"Host": "evil.example"})
    assert slash.status_code == 308
    assert slash.headers["Location"] == "/ui/?x=1"  # not http://evil.example/ui/
    assert slash.headers["Content-Security-Policy"] == CSP
    root = client.get("/", headers={"Accept": "text/html", "Host": "evil.example"})
    assert root.status_code == 302 and root.headers["Location"] == "/ui/"
    assert root.headers["Content-Security-Policy"] == CSP
