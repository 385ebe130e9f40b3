"""The XNAT simulator, driven by a client no one here wrote (pyxnat), and by raw requests for what pyxnat does not do.

pyxnat: connect (``/data/JSESSION`` with basic auth), list projects, subjects and experiments through its select
API, read an experiment's attributes (a ``columns=`` path), use an alias token issued over REST as its credentials.
Raw: sessions, tokens, listings' shapes, refusals; workflows and faults are in test_xnat_sim_workflows.py.
"""

from __future__ import annotations

import re
import time

import pytest
import requests
from pyxnat import Interface

from devtools.xnat_sim import SeedError, XnatSim, load_seed

from .conftest import XNAT_USERS

ALICE = ("alice", XNAT_USERS["alice"])
BOB = ("bob", XNAT_USERS["bob"])


def _get(sim: XnatSim, path: str, auth=ALICE, **params) -> requests.Response:
    return requests.get(sim.url + path, params=params, auth=auth, timeout=10)


def _token(sim: XnatSim, auth=ALICE) -> dict:
    answer = _get(sim, "/data/services/tokens/issue", auth=auth)
    assert answer.status_code == 200, answer.text
    return answer.json()


# --- pyxnat ------------------------------------------------------------------------------


def test_pyxnat_lists_projects_subjects_and_experiments(xnat_sim):
    xnat = Interface(server=xnat_sim.url, user=ALICE[0], password=ALICE[1])
    assert sorted(xnat.select.projects().get()) == ["big", "test"]
    assert xnat.select.project("test").subjects().get() == ["XNAT_S00001", "XNAT_S00002", "XNAT_S00003"]
    assert xnat.select.project("test").subject("S01").experiments().get() == ["XNAT_E00001", "XNAT_E00002"]
    labels = [e.label() for e in xnat.select.project("test").subject("S03").experiments()]
    assert labels == ["S03_MR1", "S03_CT1"]
    assert len(xnat.select.project("big").subjects().get()) == 100
    connects = xnat_sim.state.requests_seen("GET", "^/data/JSESSION$")
    assert len(connects) == 1 and connects[0]["auth"] == "password"


def test_pyxnat_reads_an_experiments_attributes(xnat_sim):
    xnat = Interface(server=xnat_sim.url, user=ALICE[0], password=ALICE[1])
    mr = xnat.select.project("test").subject("S01").experiment("S01_MR1")
    assert mr.exists() and mr.id() == "XNAT_E00001" and mr.label() == "S01_MR1"
    assert mr.datatype() == "xnat:mrSessionData"
    assert mr.attrs.get("xnat:mrSessionData/date") == "2024-01-02"
    ct = xnat.select.project("test").subject("S03").experiment("S03_CT1")
    assert ct.datatype() == "xnat:ctSessionData" and ct.attrs.get("xnat:ctSessionData/date") == "2024-01-08"
    assert not xnat.select.project("test").subject("S01").experiment("ncrc_S0132").exists()
    assert not xnat.select.project("nope").exists()


def test_pyxnat_with_a_wrong_password_sees_nothing(xnat_sim):
    xnat = Interface(server=xnat_sim.url, user="alice", password="not-her-password")
    assert not xnat.select.project("test").exists()
    assert {r["status"] for r in xnat_sim.state.requests_seen()} == {401}


def test_a_token_issued_over_rest_is_pyxnats_credentials_until_invalidated(xnat_sim):
    token = _token(xnat_sim)
    xnat = Interface(server=xnat_sim.url, user=token["alias"], password=token["secret"])
    assert xnat.select.project("test").subject("S02").experiment("S02_PET1").id() == "XNAT_E00003"
    used = [r for r in xnat_sim.state.requests_seen() if r["auth"] == "token"]
    assert used and {(r["user"], r["alias"]) for r in used} == {("alice", token["alias"])}
    done = _get(xnat_sim, f"/data/services/tokens/invalidate/{token['alias']}/{token['secret']}")
    assert done.json() == {"result": "OK"}
    again = Interface(server=xnat_sim.url, user=token["alias"], password=token["secret"])
    assert not again.select.project("test").exists()


# --- sessions and authentication ---------------------------------------------------------


def test_jsession_opens_a_cookie_session_and_delete_ends_it(xnat_sim):
    opened = requests.post(xnat_sim.url + "/data/JSESSION", auth=ALICE, timeout=10)
    assert opened.status_code == 200 and re.fullmatch(r"[0-9A-F]{32}", opened.text)
    assert opened.cookies["JSESSIONID"] == opened.text
    cookie = {"JSESSIONID": opened.text}
    assert requests.get(xnat_sim.url + "/data/projects?format=json", cookies=cookie, timeout=10).status_code == 200
    assert requests.delete(xnat_sim.url + "/data/JSESSION", cookies=cookie, timeout=10).status_code == 200
    assert requests.get(xnat_sim.url + "/data/projects?format=json", cookies=cookie, timeout=10).status_code == 401


def test_wrong_or_missing_credentials_are_a_401_with_a_basic_challenge(xnat_sim):
    for auth in [("alice", "wrong"), ("nobody", "x"), None]:
        answer = _get(xnat_sim, "/data/projects", auth=auth, format="json")
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"] == 'Basic realm="XNAT"'
        assert "HTTP Status 401" in answer.text


def test_an_idle_session_times_out(make_xnat_sim):
    sim = make_xnat_sim(session_timeout=0.3)
    sid = requests.get(sim.url + "/data/JSESSION", auth=ALICE, timeout=10).text
    time.sleep(0.5)
    assert requests.get(sim.url + "/data/projects", cookies={"JSESSIONID": sid}, timeout=10).status_code == 401


# --- alias tokens ------------------------------------------------------------------------


def test_issue_answers_the_alias_token_entity_with_a_48_hour_expiry(xnat_sim):
    before = time.time()
    token = _token(xnat_sim)
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", token["alias"])
    assert re.fullmatch(r"[A-Za-z0-9]{64}", token["secret"])
    assert token["xdatUserId"] == "alice" and token["singleUse"] is False and token["enabled"] is True
    expires = token["estimatedExpirationTime"] / 1000
    assert before + 48 * 3600 - 5 <= expires <= time.time() + 48 * 3600


def test_validate_answers_the_user_null_for_a_wrong_secret_and_404_for_an_unknown_alias(xnat_sim):
    token = _token(xnat_sim)
    base = "/data/services/tokens/validate"
    assert _get(xnat_sim, f"{base}/{token['alias']}/{token['secret']}").json() == {"valid": "alice"}
    assert _get(xnat_sim, f"{base}/{token['alias']}/wrong").json() == {"valid": None}
    assert _get(xnat_sim, f"{base}/{token['alias']}/{token['secret']}", auth=BOB).status_code == 403
    unknown = _get(xnat_sim, f"{base}/00000000-0000-0000-0000-000000000000/x")
    assert unknown.status_code == 404 and "Can&#x27;t find an alias token" in unknown.text
    assert _get(xnat_sim, f"{base}/{token['alias']}").status_code == 401


def test_no_renewal_in_place_a_token_issues_a_new_one_and_the_old_lives_on(xnat_sim):
    first = _token(xnat_sim)
    second = _token(xnat_sim, auth=(first["alias"], first["secret"]))
    assert second["alias"] != first["alias"] and second["xdatUserId"] == "alice"
    for token in (first, second):
        assert _get(xnat_sim, "/data/projects", auth=(token["alias"], token["secret"])).status_code == 200


def test_tokens_expire_after_their_lifetime_and_when_the_fault_says_so(make_xnat_sim):
    sim = make_xnat_sim(token_lifetime=0.4)
    token = _token(sim)
    auth = (token["alias"], token["secret"])
    assert _get(sim, "/data/projects", auth=auth).status_code == 200
    time.sleep(0.6)
    assert _get(sim, "/data/projects", auth=auth).status_code == 401
    assert _get(sim, f"/data/services/tokens/validate/{token['alias']}/{token['secret']}").status_code == 404
    fresh = _token(sim)
    sim.faults.expire_tokens_after = 0
    assert _get(sim, "/data/projects", auth=(fresh["alias"], fresh["secret"])).status_code == 401


def test_a_user_may_not_issue_tokens_for_another_user(xnat_sim):
    assert _get(xnat_sim, "/data/services/tokens/issue/user/alice", auth=BOB).status_code == 403
    assert _get(xnat_sim, "/data/services/tokens/show/user/alice", auth=BOB).status_code == 403


def test_show_lists_the_users_live_tokens_as_entities(xnat_sim):
    kept, dropped, bobs = _token(xnat_sim), _token(xnat_sim), _token(xnat_sim, auth=BOB)
    _get(xnat_sim, f"/data/services/tokens/invalidate/{dropped['alias']}/{dropped['secret']}")
    shown = _get(xnat_sim, "/data/services/tokens/show").json()
    assert [t["alias"] for t in shown] == [kept["alias"]] and shown[0] == kept
    assert [t["alias"] for t in _get(xnat_sim, "/data/services/tokens/show", auth=BOB).json()] == [bobs["alias"]]


# --- listings and items ------------------------------------------------------------------


def test_experiment_listing_takes_columns_and_xsitype_as_xnat_does(xnat_sim):
    path = "/data/projects/test/experiments"
    everything = _get(xnat_sim, path, format="json", columns="ID,label,subject_label,xsiType,project").json()
    assert everything["ResultSet"]["totalRecords"] == "5"
    first = everything["ResultSet"]["Result"][0]
    assert first == {
        "ID": "XNAT_E00001",
        "label": "S01_MR1",
        "subject_label": "S01",
        "xsiType": "xnat:mrSessionData",
        "project": "test",
        "URI": "/data/experiments/XNAT_E00001",
        "xnat:subjectassessordata/id": "XNAT_E00001",
    }
    ct = _get(xnat_sim, path, format="json", xsiType="xnat:ctSessionData").json()["ResultSet"]
    assert [r["label"] for r in ct["Result"]] == ["S03_CT1"] and "xnat:ctsessiondata/id" in ct["Result"][0]
    big = _get(xnat_sim, "/data/projects/big/experiments", format="json", columns="ID,label").json()
    assert big["ResultSet"]["totalRecords"] == "1000" and len(big["ResultSet"]["Result"]) == 1000
    paged = _get(xnat_sim, path, format="json", columns="label", offset=1, limit=2).json()["ResultSet"]
    assert [r["label"] for r in paged["Result"]] == ["S01_MR2", "S02_PET1"] and "totalRecords" not in paged
    csv = _get(xnat_sim, "/data/experiments", format="csv", project="test", columns="ID").text.splitlines()
    assert csv[0] == "ID,URI,xnat:experimentdata/id" and len(csv) == 6


def test_listing_filters_and_root_type_follow_xnats_query_organizer(xnat_sim):
    def labels(path="/data/projects/test/experiments", **params):
        answer = _get(xnat_sim, path, format="json", **params)
        assert answer.status_code == 200, answer.text
        return [r.get("label") for r in answer.json()["ResultSet"]["Result"]]

    assert labels(columns="label", label="S01_*") == ["S01_MR1", "S01_MR2"]
    assert labels(columns="label", label="S0_1MR1") == []  # no * or %: an exact match, '_' is no wildcard
    assert labels(columns="label", label="S0__MR%") == ["S01_MR1", "S01_MR2", "S03_MR1"]  # "_": one character
    assert labels(columns="label", subject_label="S02,S03") == ["S02_PET1", "S03_MR1", "S03_CT1"]
    assert labels(columns="label", **{"xnat:experimentData/label": "S03*"}) == ["S03_MR1", "S03_CT1"]
    # a column on a subtype narrows the root, as getRootElementName does: MR sessions only
    assert labels(columns="label,xnat:mrSessionData/date") == ["S01_MR1", "S01_MR2", "S03_MR1"]
    # a comma list of types is ignored by XNAT (no filtering at all)
    assert len(labels(columns="label", xsiType="xnat:ctSessionData,xnat:petSessionData")) == 5
    assert labels("/data/experiments", columns="label", project="test", label="*CT*") == ["S03_CT1"]
    assert len(labels("/data/experiments", columns="label", project="big")) == 1000
    dropped = _get(xnat_sim, "/data/projects/test/experiments", format="json", columns="ID,bogus").json()
    assert "bogus" not in dropped["ResultSet"]["Result"][0]  # XNAT logs an unknown alias and drops it
    defaults = _get(xnat_sim, "/data/experiments", format="json", xsiType="xnat:mrSessionData").json()
    assert {"subject_ID", "subject_label", "xnat:mrsessiondata/id"} <= set(defaults["ResultSet"]["Result"][0])


def test_items_are_found_by_label_or_id_in_xnats_item_shape(xnat_sim):
    for path in [
        "/data/projects/test/subjects/S03/experiments/S03_CT1",
        "/data/projects/test/subjects/XNAT_S00003/experiments/XNAT_E00005",
        "/data/projects/test/experiments/S03_CT1",
        "/data/experiments/XNAT_E00005",
    ]:
        (entry,) = _get(xnat_sim, path, format="json").json()["items"]
        assert entry["meta"]["xsi:type"] == "xnat:ctSessionData"
        assert entry["data_fields"]["ID"] == "XNAT_E00005" and entry["data_fields"]["subject_ID"] == "XNAT_S00003"
    xml = _get(xnat_sim, "/data/experiments/XNAT_E00005").text
    assert "<xnat:CTSession" in xml and 'label="S03_CT1"' in xml


def test_an_experiment_is_found_as_xnat_finds_it_by_id_anywhere_and_the_subject_unchecked(xnat_sim):
    """SubjAssessmentResource checks the path's project, not its subject; ExperimentResource neither: an ID is
    found through any path, a label only in its own project. A client verifying a session compares the fields."""
    other_subject = _get(xnat_sim, "/data/projects/test/subjects/S02/experiments/S01_MR1", format="json")
    assert other_subject.json()["items"][0]["data_fields"]["subject_ID"] == "XNAT_S00001"
    no_subject = _get(xnat_sim, "/data/projects/test/subjects/S99/experiments/S01_MR1", format="json")
    assert no_subject.status_code == 200
    by_id_elsewhere = _get(xnat_sim, "/data/projects/big/subjects/big_S0001/experiments/XNAT_E00005", format="json")
    assert by_id_elsewhere.json()["items"][0]["data_fields"]["project"] == "test"
    assert _get(xnat_sim, "/data/projects/nope/experiments/XNAT_E00001", format="json").status_code == 200
    assert _get(xnat_sim, "/data/projects/nope/subjects/S01/experiments/S01_MR1", format="json").status_code == 404


def test_unknown_names_are_404_pages_naming_them(xnat_sim):
    cases = {
        "/data/projects/nope/experiments": "Unable to identify project nope",
        "/data/projects/test/subjects/S09/experiments": "Unable to identify subject S09",
        "/data/projects/test/subjects/S01/experiments/ncrc_S0132": "Unable to find the specified experiment.",
        "/data/projects/big/experiments/S01_MR1": "Unable to find the specified experiment.",
        "/data/experiments/XNAT_E99999": "Unable to find the specified experiment.",
    }
    for path, message in cases.items():
        answer = _get(xnat_sim, path, format="json")
        assert answer.status_code == 404 and f"<h3>{message}</h3>" in answer.text


def test_a_project_the_user_cannot_read_is_not_found(make_xnat_sim):
    seed = {"users": [{"name": "carol", "password": "carol-pw", "projects": ["a"]}], "projects": {"a": {}, "b": {}}}
    sim = make_xnat_sim(seed)
    carol = ("carol", "carol-pw")
    listed = _get(sim, "/data/projects", auth=carol, format="json").json()["ResultSet"]["Result"]
    assert [p["ID"] for p in listed] == ["a"]
    assert _get(sim, "/data/projects/b/subjects", auth=carol, format="json").status_code == 404


def test_what_is_not_simulated_is_refused_never_a_silent_200(xnat_sim):
    unknown_param = _get(xnat_sim, "/data/projects/test/experiments", format="json", colums="ID")
    assert unknown_param.status_code == 400 and "colums" in unknown_param.text
    assert _get(xnat_sim, "/data/projects/test/experiments", format="json", xsiType="xnat:nope").status_code == 400
    assert _get(xnat_sim, "/data/projects/test/experiments", format="json", date="2024-01-02").status_code == 501
    assert _get(xnat_sim, "/data/projects", format="zip").status_code == 400
    scans = _get(xnat_sim, "/data/projects/test/subjects/S01/experiments/S01_MR1/scans", format="json")
    assert scans.status_code == 501 and "not simulated" in scans.text
    assert _get(xnat_sim, "/xapi/siteConfig").status_code == 501
    assert requests.delete(xnat_sim.url + "/data/projects/test", auth=ALICE, timeout=10).status_code == 405
    assert requests.options(xnat_sim.url + "/data/projects", auth=ALICE, timeout=10).status_code == 501
    encoded_slash = _get(xnat_sim, "/data/services/workflows/scheduler%2Frun.sh", experiment="XNAT_E00001")
    assert encoded_slash.status_code == 400 and "encoded slash" in encoded_slash.text  # as Tomcat refuses it


# --- seeds -------------------------------------------------------------------------------


def test_a_bad_seed_is_refused_naming_the_key(tmp_path):
    cases = [
        ({"users": [{"name": "x"}]}, "users[0]"),
        (
            {"projects": {"p": {"subjects": {"s": {"experiments": [{"label": "e", "xsiType": "xnat:fooData"}]}}}}},
            "xsiType",
        ),
        ({"projects": {"p": {"colour": "red"}}}, "projects.p"),
        ({"generate": [{"subjects": 2}]}, "generate[0]"),
        ({"projects": {"p": {"subjects": {"a": {"ID": "X1"}, "b": {"ID": "X1"}}}}}, "ID"),
    ]
    for seed, named in cases:
        with pytest.raises(SeedError, match=re.escape(named)):
            load_seed(seed)
    path = tmp_path / "seed.yaml"
    path.write_text(
        "projects:\n  p:\n    subjects:\n      s1:\n        experiments:\n          - {label: e1, date: 2024-03-04}\n"
    )
    site = load_seed(path)
    assert site.experiments["XNAT_E00001"].date == "2024-03-04" and site.subjects["XNAT_S00001"].label == "s1"
