"""The queue, pipeline and instances pages in headless Chromium, against pipelines submitted through the API."""

from __future__ import annotations

import time

import pytest

from .conftest import HOSTILE, TOKEN, api, submit, wait_status


def _row_status(browser, pid: int) -> str:
    return browser.text(f'#pipelines tr[data-id="{pid}"] .status').strip()


def test_a_submitted_pipeline_appears_and_turns_succeeded_without_a_reload(browser, server):
    pid = submit(server, {"type": "script", "script": "sleep.sh", "args": ["2"]})
    browser.open(server.url + "/ui/queue")
    browser.js("window.__same_page = true")
    browser.wait(lambda: _row_status(browser, pid), what=f"row {pid}")
    assert browser.wait(lambda: _row_status(browser, pid) == "succeeded", timeout=30, what="succeeded")
    assert browser.js("return window.__same_page === true"), "the page was reloaded"
    assert browser.text("#counts"), "counts by status are shown"
    browser.shot("queue")


def test_its_log_is_shown_on_its_page(browser, server):
    pid = submit(server, {"type": "script", "script": "hello.sh"})
    wait_status(server, pid, ("succeeded",))
    browser.open(f"{server.url}/ui/pipeline?id={pid}")
    assert browser.wait(lambda: "hello from the pipeline" in browser.text("#log"), what="stdout")
    assert "succeeded" in browser.text("#history")
    browser.find("#tab-stderr").click()
    assert browser.wait(lambda: "a warning on stderr" in browser.text("#log"), what="stderr")
    browser.shot("pipeline")


def test_cancel_from_the_page_cancels_a_running_pipeline(browser, server):
    pid = submit(server, {"type": "script", "script": "sleep.sh", "args": ["60"]})
    wait_status(server, pid, ("running",))
    browser.open(f"{server.url}/ui/pipelines/{pid}")
    browser.find("#cancel").click()
    browser.wait(lambda: browser.find("#confirm").get_attribute("open") is not None, what="the confirmation")
    browser.find("#confirm-yes").click()
    assert wait_status(server, pid, ("cancelled",))["status"] == "cancelled"
    assert browser.wait(lambda: "cancelled" in browser.text("#history"), timeout=20, what="cancelled shown")


def test_hostile_log_lines_and_project_labels_are_text(browser, server):
    pid = submit(server, {"type": "script", "script": "hostile.sh"})
    xnat = {"project": HOSTILE[1], "subject": HOSTILE[0], "session": "s", "host": "http://x", "user": "u"}
    labelled = submit(server, {**xnat, "pwd": "pw-secret", "script": "hello.sh"})
    wait_status(server, pid, ("succeeded",))
    browser.open(f"{server.url}/ui/pipeline?id={pid}")
    assert browser.wait(lambda: HOSTILE[0] in browser.text("#log") and HOSTILE[1] in browser.text("#log"), what="log")
    assert not browser.pwned()
    browser.open(server.url + "/ui/queue")
    row = f'#pipelines tr[data-id="{labelled}"]'
    assert browser.wait(lambda: HOSTILE[1] in browser.text(row), what="the hostile project in its row")
    assert not browser.pwned()
    browser.open(f"{server.url}/ui/pipeline?id={labelled}")
    assert browser.wait(lambda: HOSTILE[1] in browser.text("#details"), what="the hostile project in the details")
    assert "pw-secret" not in browser.driver.page_source
    assert not browser.pwned()  # the onerror global stays unset on the pipeline page too


def test_the_instances_page(browser, server):
    assert browser.open(server.url + "/ui/instances") == "ready"
    assert browser.all("#instances")
    browser.shot("instances")


@pytest.mark.console_allows("status of 401")
def test_with_tokens_the_pages_refuse_until_a_token_is_given(browser, token_server):
    pid = submit(token_server, {"type": "script", "script": "hello.sh"}, token=TOKEN)
    browser.driver.get(token_server.url + "/ui/queue")
    dialog = browser.wait(lambda: (d := browser.find("#token-dialog")).get_attribute("open") is not None and d)
    assert not browser.all(f'#pipelines tr[data-id="{pid}"]')
    browser.find("#token").send_keys("not-the-token")
    browser.find("#token-save").click()
    assert browser.wait(lambda: "token" in browser.text("#error").lower(), what="wrong token said")
    assert not browser.all(f'#pipelines tr[data-id="{pid}"]')
    browser.wait(lambda: dialog.get_attribute("open") is not None, what="asked again")
    browser.find("#token").send_keys(TOKEN)
    browser.find("#token-save").click()
    browser.wait(lambda: browser.all(f'#pipelines tr[data-id="{pid}"]'), what="the rows with the token")
    assert TOKEN not in browser.driver.current_url
    assert TOKEN not in browser.js("return JSON.stringify(Object.entries(localStorage))"), "never in localStorage"
    # The pipeline and instances pages refuse too until a token is given.
    for page, filled in ((f"/ui/pipeline?id={pid}", "#details dd"), ("/ui/instances", "#instances tbody tr")):
        browser.js("sessionStorage.clear()")
        browser.driver.get(token_server.url + page)
        browser.wait(lambda: browser.find("#token-dialog").get_attribute("open") is not None, what="the dialog")
        assert not browser.all(filled), f"{page} shows data before a token"
        browser.find("#token").send_keys("not-the-token")
        browser.find("#token-save").click()
        assert browser.wait(lambda: "token" in browser.text("#error").lower(), what=f"wrong token said on {page}")
        browser.wait(lambda: browser.find("#token-dialog").get_attribute("open") is not None, what="asked again")
        browser.find("#token").send_keys(TOKEN)
        browser.find("#token-save").click()
        assert browser.wait_state() == "ready"
    assert TOKEN not in browser.js("return JSON.stringify(Object.entries(localStorage))")
    # The observing pages stay open.
    assert browser.open(token_server.url + "/ui/sun") == "ready"
    assert api(token_server, "get", "/api/v1/pipelines").status_code == 401


def test_switching_tabs_while_the_log_grows_keeps_all_of_it(browser, server):
    pid = submit(server, {"type": "script", "script": "lines.sh"})
    wait_status(server, pid, ("running",))
    browser.open(f"{server.url}/ui/pipeline?id={pid}")
    for n in range(10):
        browser.find("#tab-stderr" if n % 2 == 0 else "#tab-stdout").click()
        time.sleep(0.8)
    browser.find("#tab-stdout").click()
    wait_status(server, pid, ("succeeded",), timeout=60)
    expected = "".join(f"line {i}\n" for i in range(1, 401))
    browser.wait(lambda: browser.text("#log-status") == "complete", timeout=20, what="the complete log")
    assert browser.text("#log") == expected


def test_long_labels_keep_the_queue_within_a_1280_px_window(browser, server):
    long = "AVeryLongProjectLabelWithoutBreaks" * 2  # 68 characters, no place to break
    item = {"project": long, "subject": long.upper(), "session": long + "session", "host": "http://x", "user": "u"}
    pid = submit(server, {**item, "pwd": "pw", "script": "hello.sh"})
    browser.open(server.url + "/ui/queue")
    browser.wait(lambda: long in browser.text(f'#pipelines tr[data-id="{pid}"]'), what="the long row")
    assert browser.js("return document.documentElement.scrollWidth") <= 1280


@pytest.mark.console_allows("status of 400")
@pytest.mark.parametrize("path", ["/ui/pipelines/0", "/ui/pipeline?id=9999999999"])
def test_a_bad_pipeline_id_is_shown_once_and_not_polled(browser, server, path):
    assert browser.open(server.url + path, states=("error",)) == "error"
    assert "id" in browser.text("#error")
    calls = "return performance.getEntriesByType('resource').map((e) => e.name).filter((n) => n.includes('/api/v1/'))"
    time.sleep(3.5)  # two poll periods
    names = browser.js(calls)
    assert len([n for n in names if "/logs" not in n]) == 1, names  # the pipeline, read once
    assert len([n for n in names if "/logs" in n]) <= 1, names  # and its log, read alongside it at most once


def test_the_queue_past_its_end_goes_to_the_last_page(browser, server):
    pid = submit(server, {"type": "script", "script": "hello.sh"})
    browser.open(server.url + "/ui/queue?offset=999999")
    browser.wait(lambda: browser.all("#pipelines tr[data-id]"), what="rows of the last page")
    total = api(server, "get", "/api/v1/pipelines?limit=1").json()["total"]
    assert browser.text("#range").endswith(f"to {total} of {total}"), browser.text("#range")
    assert "offset=999999" not in browser.driver.current_url
    assert browser.all(f'#pipelines tr[data-id="{pid}"]') or total > 50


def test_retry_from_the_page_queues_a_failed_pipeline_again(browser, server):
    pid = submit(server, {"type": "script", "script": "fail.sh"})
    assert wait_status(server, pid, ("failed",))["attempt"] == 1
    browser.open(f"{server.url}/ui/pipeline?id={pid}")
    browser.wait(lambda: not browser.find("#retry").get_attribute("disabled"), what="retry enabled")
    browser.find("#retry").click()
    browser.wait(lambda: browser.find("#confirm").get_attribute("open") is not None, what="the confirmation")
    browser.find("#confirm-yes").click()
    again = browser.wait(lambda: (p := api(server, "get", f"/api/v1/pipelines/{pid}").json())["attempt"] == 2 and p)
    assert again["attempt"] == 2
    assert browser.wait(lambda: "about to fail" in browser.text("#log"), timeout=30, what="the second attempt's log")


def test_the_queue_filters_searches_and_pages(browser, server):
    base = {"subject": "subj", "host": "http://x", "user": "u", "pwd": "pw", "script": "hello.sh"}
    items = [{**base, "project": "pager", "session": f"s{i:02d}"} for i in range(27)]
    answer = api(server, "post", "/api/v1/pipelines", json=items)
    assert answer.status_code == 201, answer.text
    ids = sorted(p["id"] for p in answer.json()["pipelines"])
    other = submit(server, {**base, "project": "elsewhere", "session": "needle-session"})
    browser.open(server.url + "/ui/queue")
    browser.set_value("#page-size", "25")
    browser.set_value("#filter-project", "pager")
    read = "return [...document.querySelectorAll('#pipelines tr[data-id]')].map((r) => Number(r.dataset.id))"
    rows = lambda: browser.js(read)  # noqa: E731
    browser.wait(lambda: rows() == ids[::-1][:25], what="the first page of project pager")
    assert browser.text("#range").startswith("1 to 25 of 27")
    browser.find("#next").click()
    browser.wait(lambda: rows() == ids[::-1][25:], what="the second page")
    assert browser.text("#range").startswith("26 to 27 of 27") and browser.find("#next").get_attribute("disabled")
    browser.find("#prev").click()
    browser.wait(lambda: len(rows()) == 25, what="back to the first page")
    browser.set_value("#filter-project", "")
    browser.set_value("#search", "needle")
    browser.wait(lambda: rows() == [other], what="the search's one row")


# The server's answer to a retry whose XNAT token was released (the XNAT part is tests/xnat's); the page's
# fetch is wrapped to give it, and to pass a retry with a body on to the server without that body.
FRESH = """
const real = window.fetch;
window.fetch = (url, init) => {
  if (!String(url).endsWith('/retry')) return real(url, init);
  if (!init.body) return Promise.resolve(new Response(JSON.stringify({message: arguments[0], field: 'pwd'}),
    {status: 400, headers: {'Content-Type': 'application/json'}}));
  window.__retryBody = JSON.parse(init.body);
  return real(url, {...init, body: undefined, headers: {Accept: 'application/json'}});
};
"""


def test_a_retry_that_needs_fresh_credentials_asks_for_them_and_keeps_none(browser, server):
    pid = submit(server, {"type": "script", "script": "fail.sh"})
    wait_status(server, pid, ("failed",))
    browser.open(f"{server.url}/ui/pipeline?id={pid}")
    browser.js(FRESH, "pwd: its alias token was released; give fresh credentials (user and pwd, or alias and secret)")
    browser.wait(lambda: not browser.find("#retry").get_attribute("disabled"), what="retry enabled")
    browser.find("#retry").click()
    browser.wait(lambda: browser.find("#confirm").get_attribute("open") is not None, what="the confirmation")
    browser.find("#confirm-yes").click()
    browser.wait(lambda: browser.find("#credentials").get_attribute("open") is not None, what="the credentials")
    assert "fresh credentials" in browser.text("#credentials-why")
    browser.find("#cred-name").send_keys("alice")
    browser.find("#cred-secret").send_keys("s3cret-pw")
    browser.find("#credentials-send").click()
    assert browser.wait(lambda: browser.js("return window.__retryBody")) == {"user": "alice", "pwd": "s3cret-pw"}
    browser.wait(lambda: api(server, "get", f"/api/v1/pipelines/{pid}").json()["attempt"] == 2, what="attempt 2")
    stored = browser.js("return JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])")
    assert "s3cret-pw" not in stored and "s3cret-pw" not in browser.driver.page_source
    assert browser.find("#cred-secret").get_attribute("value") == ""
