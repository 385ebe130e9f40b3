"""A pipeline's ``env``: only names the site allows, none that a shell or the loader reads as code, values
passed literally. Through the HTTP API of a real ``scheduler-server serve``, on ``local`` and on ``ssh``
(a real sshd)."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from scheduler_server.pipelines.tasks import environment

from .backend_servers import serve
from .conftest import script, submit_ok, wait_status, wait_until

#: The variables the audit named (issue 10, item 1), and more of the same class.
DANGEROUS = [
    "BASH_ENV",
    "ENV",
    "BASH_FUNC_echo%%",
    "BASH_FUNC_x",
    "PROMPT_COMMAND",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
    "PS1",
    "IFS",
    "PATH",
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "LD_AUDIT",
    "PYTHONSTARTUP",
    "PYTHONPATH",
    "PYTHONWARNINGS",
    "PERL5OPT",
    "PERL5LIB",
    "RUBYOPT",
    "NODE_OPTIONS",
    "JAVA_TOOL_OPTIONS",
    "GIT_SSH_COMMAND",
    "GCONV_PATH",
    "GLIBC_TUNABLES",
    "HOME",
    "CDPATH",
    "http_proxy",
    "HTTPS_PROXY",
    "XNAT_PASSWORD",
    "SCHEDULER_SERVER__PIPELINES__SECRET_KEY",
    "path",
    "ld_preload",
    "bash_env",
]

PRINT_ENV = 'printf "%s\\n" "A=$PIPELINE_A" "B=$PIPELINE_B" "C=$PIPELINE_C" "$@"\n'


def _values(marker: Path) -> dict[str, str]:
    """Values that run ``touch <marker>`` if any shell expands, sources or imports them."""
    return {
        "PIPELINE_A": f"$(touch {marker})",
        "PIPELINE_B": f"() {{ :; }}; touch {marker}",
        "PIPELINE_C": f"`touch {marker}`; touch {marker} & ${{IFS}}'\"",
    }


@pytest.fixture(params=["local", "ssh"])
def server(request, tmp_path, key):
    # The broadest allow-list a site can write: the built-in never-list must still hold.
    with serve(tmp_path, request.param, key, allowed_env_names=["*"]) as (server, scripts):
        (scripts / "print_env.sh").write_text(PRINT_ENV)
        yield server


def _submit(server, item) -> requests.Response:
    return requests.post(f"{server.url}/api/v1/pipelines", json=item, timeout=10)


def _wait_final(server, pipeline_id: int) -> dict:
    def final():
        view = requests.get(f"{server.url}/api/v1/pipelines/{pipeline_id}", timeout=10).json()
        return view if view["status"] in ("succeeded", "failed", "cancelled") else None

    return wait_until(final, 30, message=f"pipeline {pipeline_id} to end")


def _stdout(server, pipeline_id: int) -> str:
    return requests.get(f"{server.url}/api/v1/pipelines/{pipeline_id}/logs", timeout=10).json()["data"]


def test_dangerous_names_are_refused_naming_the_field(server, tmp_path):
    marker = tmp_path / "pwned"
    for name in DANGEROUS:
        answer = _submit(server, script("print_env.sh", env={name: f"$(touch {marker})"}))
        assert answer.status_code == 400, (name, answer.text)
        body = answer.json()
        assert body["field"] == f"env.{name}" and body["message"].startswith(f"env.{name}: "), body
    listed = requests.get(f"{server.url}/api/v1/pipelines", timeout=10).json()
    assert listed["total"] == 0, listed
    assert not marker.exists()


def test_allowed_names_get_their_values_literally_and_nothing_runs(server, tmp_path):
    marker = tmp_path / "pwned"
    values = _values(marker)
    answer = _submit(server, script("print_env.sh", f"$(touch {marker})", env=values))
    assert answer.status_code == 201, answer.text
    pipeline_id = answer.json()["pipelines"][0]["id"]
    assert _wait_final(server, pipeline_id)["status"] == "succeeded"
    assert _stdout(server, pipeline_id).splitlines() == [
        f"A={values['PIPELINE_A']}",
        f"B={values['PIPELINE_B']}",
        f"C={values['PIPELINE_C']}",
        f"$(touch {marker})",
    ]
    assert not marker.exists()


# --- the rule itself, and the site's side of it ---------------------------------------------------


@pytest.mark.parametrize("name", DANGEROUS)
def test_never_list_wins_over_any_site_pattern(name):
    assert environment.problem_with(name, ["*", "?*", name]) is not None


def test_default_allows_only_pipeline_names(make_service):
    service = make_service(start=False)
    assert service.settings.allowed_env_names == ["PIPELINE_*"]
    ok, other = service.submit([script("ok.sh", env={"PIPELINE_RUN": "1"}), script("ok.sh", env={"GREETING": "hi"})])
    assert ok.accepted
    assert other.error.field == "env.GREETING"
    assert "not in pipelines.allowed_env_names (PIPELINE_*)" in other.error.message


def test_a_site_cannot_allow_a_never_name_explicitly(make_settings):
    from pydantic import ValidationError

    for entry in ("LD_PRELOAD", "BASH_ENV", "bad name", "$(x)"):
        with pytest.raises(ValidationError, match="allowed_env_names"):
            make_settings(allowed_env_names=[entry])
    assert make_settings(allowed_env_names=["OMP_NUM_THREADS", "MYLAB_*"]).pipelines.allowed_env_names == [
        "OMP_NUM_THREADS",
        "MYLAB_*",
    ]


def test_a_stored_spec_with_a_name_now_forbidden_fails_without_running(make_service, scripts, tmp_path):
    """A queued pipeline stored before the rule (or before the site narrowed it) is checked again at start."""
    marker = tmp_path / "ran"
    (scripts / "touch.sh").write_text(f"touch {marker}\n")
    service = make_service(start=False, allowed_env_names=["PIPELINE_*", "MYLAB_*"])
    narrow, never = submit_ok(
        service, script("touch.sh", env={"MYLAB_X": "1"}), script("touch.sh", env={"PIPELINE_Y": "1"})
    )

    def as_old_code_stored_it(session, p):
        p.spec = {**p.spec, "env": {"BASH_ENV": f"$(touch {marker})"}}

    service.store.update_pipeline(never, as_old_code_stored_it)
    service.close()
    restarted = make_service()  # the default allow-list: PIPELINE_* only
    for pipeline_id, name in ((narrow, "MYLAB_X"), (never, "BASH_ENV")):
        failed = wait_status(restarted, pipeline_id, ("succeeded", "failed"))
        assert failed.status == "failed" and f"env.{name}:" in failed.reason, failed.reason
    assert not marker.exists()


def test_run_script_refuses_a_name_that_is_not_one():
    from scheduler_server.pipelines.jobdir import render_run_script
    from scheduler_server.pipelines.tasks import Command

    with pytest.raises(ValueError):
        render_run_script("s.sh", Command(env={"X=1 touch /tmp/x; Y": "v"}))
