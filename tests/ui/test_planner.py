"""The planner and the sun calculator in headless Chromium."""

from __future__ import annotations

import json

import pytest

from .conftest import HOSTILE, api

T0, T1 = "2026-12-01 00:00", "2026-12-02 00:00"


def _plan(browser, server, config: str = "{}", policy: str = "basic") -> str:
    browser.open(server.url + "/ui/")
    browser.set_value("#policy", policy)
    browser.set_value("#t0", T0)
    browser.set_value("#t1", T1)
    browser.set_value("#config", config)
    browser.js("document.getElementById('page').dataset.state = 'submitted'")
    browser.find("#submit").click()
    return browser.wait_state(("ready", "error"), timeout=30)


def test_the_planner_draws_a_24_h_basic_schedule(browser, server):
    body = {"t0": T0, "t1": T1, "policy": {"policy": "basic"}, "format": "json"}
    expected = api(server, "post", "/api/v1/schedule/", json=body).json()
    assert expected["blocks"], "the window has blocks to draw"
    assert _plan(browser, server) == "ready"
    bands = browser.all("#timeline .band")
    assert len(bands) == len(expected["blocks"])
    assert sorted(b.get_attribute("data-kind") for b in bands) == sorted(b["kind"] for b in expected["blocks"])
    assert browser.all("#skyview *"), "the sky view is drawn"
    assert browser.text("#verdict") == ("safe" if expected["check"]["safe"] else "unsafe")
    assert len(browser.all("#blocks tbody tr")) == len(expected["blocks"])
    assert browser.text("#script").strip() == expected["commands"].strip()
    browser.js("document.getElementById('result').scrollIntoView()")
    browser.shot("planner")


@pytest.mark.console_allows("/api/v1/schedule/ - Failed to load resource: the server responded with a status of 400")
def test_a_bad_config_key_is_shown_next_to_the_field(browser, server):
    _plan(browser, server, config='{"no_such_key": 1}')
    message = browser.wait(lambda: browser.text("#config-error"), what="#config-error")
    assert "policy.config.no_such_key" in message
    assert browser.find("#config-error").is_displayed()


@pytest.mark.console_allows("/api/v1/schedule/ - Failed to load resource: the server responded with a status of 400")
def test_a_hostile_patch_name_in_an_error_is_text(browser, server):
    patches = [
        {"name": HOSTILE[1], "ra": [0, 10], "dec": [-10, 0]},
        {"name": HOSTILE[0], "ra": [20, 30], "dec": [-10, 0]},
    ]
    _plan(browser, server, config=json.dumps({"master_generator": {"patches": patches}}))
    message = browser.wait(lambda: browser.text("#config-error") or browser.text("#error"), what="an error")
    assert "<img src=x" in message or "<script>" in message, message
    assert not browser.pwned()


def test_the_sun_calculator_shows_the_bodies_and_crossings(browser, server):
    assert browser.open(server.url + "/ui/sun") == "ready"
    assert len(browser.all("#now tbody tr")) >= 2  # at least the sun and the moon, now
    query = "t0=2026-12-01T00:00Z&t1=2026-12-02T00:00Z&az=100&el=50&limit_deg=30"
    expected = api(server, "get", f"/api/v1/sky/sun-limit?{query}").json()
    assert expected["crossings"], "the morning sun passes this pointing"
    for css, value in (("#day", "2026-12-01"), ("#az", "100"), ("#el", "50"), ("#limit", "30")):
        browser.set_value(css, value)
    browser.js("document.getElementById('page').dataset.state = 'submitted'")
    browser.find("#compute").click()
    assert browser.wait_state(("ready", "error")) == "ready"
    assert len(browser.all("#crossings tbody tr")) == len(expected["crossings"])
    assert len(browser.all("#intervals tbody tr")) == len(expected["intervals"])
    assert browser.all("#day-plot *") and browser.all("#distance-plot *")
    browser.shot("sun")


def test_a_browser_opening_the_root_lands_on_the_planner(browser, server):
    browser.driver.get(server.url + "/")
    assert browser.wait_state() == "ready"
    assert browser.driver.current_url == server.url + "/ui/"
    assert browser.find("#page").get_attribute("data-page") == "planner"
    assert api(server, "get", "/").json()["content"]["status"] == "ok"  # requests' */* keeps the JSON


def _page_width(browser) -> int:
    return browser.js("return document.documentElement.scrollWidth")


def test_a_sat_answer_fits_a_1280_px_window_and_draws_its_lanes(browser, server):
    browser.open(server.url + "/ui/")
    browser.set_value("#policy", "sat")
    browser.set_value("#preset", "satp1")
    browser.set_value("#t0", "2023-11-01 00:00")  # within the SATp1 baseline plan
    browser.set_value("#t1", "2023-11-01 08:00")
    browser.set_value("#config", "{}")
    browser.js("document.getElementById('page').dataset.state = 'submitted'")
    browser.find("#submit").click()
    assert browser.wait_state(("ready", "error"), timeout=60) == "ready", browser.text("#error")
    assert browser.text("#script").strip(), "the sat script is shown"
    assert _page_width(browser) <= 1280
    lanes = {e.get_attribute("data-lane") for e in browser.all("#timeline .event")}
    assert {"hwp", "boresight", "detectors"} <= lanes, lanes
    browser.shot("planner-sat")


def test_every_block_has_a_band_and_enter_on_one_marks_its_row(browser, server):
    body = {"t0": T0, "t1": "2026-12-01 06:00", "policy": {"policy": "dummy", "config": {"seed": 3}}, "format": "json"}
    expected = api(server, "post", "/api/v1/schedule/", json=body).json()
    assert any(b.get("az") is None for b in expected["blocks"]), "the dummy policy has blocks without az"
    browser.open(server.url + "/ui/")
    browser.set_value("#policy", "dummy")
    browser.set_value("#t0", T0)
    browser.set_value("#t1", "2026-12-01 06:00")
    browser.set_value("#config", '{"seed": 3}')
    browser.js("document.getElementById('page').dataset.state = 'submitted'")
    browser.find("#submit").click()
    assert browser.wait_state(("ready", "error"), timeout=30) == "ready", browser.text("#error")
    bands = browser.all("#timeline .band")
    assert len(bands) == len(expected["blocks"])
    assert all(b.get_attribute("tabindex") == "0" for b in bands)
    assert len(bands) > 1, "the seed gives several sleeps"
    last = bands[-1]
    browser.js("arguments[0].focus()", last)
    from selenium.webdriver.common.keys import Keys

    browser.driver.switch_to.active_element.send_keys(Keys.ENTER)
    index = last.get_attribute("data-index")
    assert browser.wait(lambda: browser.all(f'#blocks tbody tr.picked[data-index="{index}"]'), what="the marked row")
