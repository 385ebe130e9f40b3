"""The password next to the other fields: equal to ``user`` (the seed's admin/admin) it is allowed and
``user`` is kept, passed and shown as a secret too; inside any other field it is refused, naming ``pwd``."""

from __future__ import annotations

import pytest

from scheduler_server.pipelines.secrets import MASK

from .conftest import wait_status, xnat


def _stored_bytes(service) -> bytes:
    return b"".join(path.read_bytes() for path in service.data_path.glob("pipelines.sqlite*"))


def test_user_equal_to_the_password_is_kept_and_shown_as_a_secret(make_client, scripts):
    # Exits 0 only if the script got the real user name (the password) after -user.
    (scripts / "check_user.sh").write_text(
        '[ "$9" = "-user" ] && [ "${10}" = "Adm1n-pw" ] || exit 3; echo "user ${10}"\n'
    )
    client = make_client()
    answer = client.post("/api/v1/pipelines", json=xnat(script="check_user.sh", user="Adm1n-pw", pwd="Adm1n-pw"))
    assert answer.status_code == 201, answer.json
    pipeline_id = answer.json["pipelines"][0]["id"]
    service = client.application.extensions["pipelines"].service
    assert wait_status(service, pipeline_id, ("succeeded", "failed")).status == "succeeded"
    view = client.get(f"/api/v1/pipelines/{pipeline_id}").json
    assert view["user"] == MASK and view["pwd"] == MASK and "user_is_pwd" not in view
    assert client.get(f"/api/v1/pipelines/{pipeline_id}/logs").json["data"] == f"user {MASK}\n"
    assert b"Adm1n-pw" not in _stored_bytes(service)


def test_with_env_credentials_a_user_equal_to_the_password_is_not_on_the_command_line(make_client, scripts):
    # Exits 0 only if the real user name is in $XNAT_USER and no argument carries it.
    (scripts / "env_user.sh").write_text(
        '[ "$XNAT_USER" = "Adm1n-pw" ] && [ "$XNAT_PASSWORD" = "Adm1n-pw" ] || exit 3\n'
        'case " $* $(tr "\\0" " " < /proc/$$/cmdline) " in *Adm1n-pw*|*" -user "*) exit 4;; esac\necho ok\n'
    )
    client = make_client(xnat_credentials="env")
    answer = client.post("/api/v1/pipelines", json=xnat(script="env_user.sh", user="Adm1n-pw", pwd="Adm1n-pw"))
    assert answer.status_code == 201, answer.json
    service = client.application.extensions["pipelines"].service
    pipeline_id = answer.json["pipelines"][0]["id"]
    assert wait_status(service, pipeline_id, ("succeeded", "failed")).status == "succeeded", service.get(
        pipeline_id
    ).history
    # An ordinary user keeps its -user argument and is in $XNAT_USER as well.
    (scripts / "env_user2.sh").write_text(
        '[ "$XNAT_USER" = "alice" ] && [ "$9" = "-user" ] && [ "${10}" = "alice" ] || exit 3\n'
    )
    answer = client.post("/api/v1/pipelines", json=xnat(script="env_user2.sh", user="alice", pwd="Adm1n-pw"))
    pipeline_id = answer.json["pipelines"][0]["id"]
    assert wait_status(service, pipeline_id, ("succeeded", "failed")).status == "succeeded"


def test_the_password_inside_another_field_is_refused_naming_pwd(make_client, scripts):
    client = make_client()
    pwd = "hunter2x"
    cases = {
        "project": {"project": pwd},
        "host": {"host": f"http://{pwd}.example/xnat"},
        "user": {"user": f"{pwd}-admin"},
        "options.1": {"options": ["-token", pwd]},
        "session": {"session": f"s-{pwd}"},
    }
    for where, fields in cases.items():
        answer = client.post("/api/v1/pipelines", json=xnat(pwd=pwd, **fields))
        assert answer.status_code == 400, (where, answer.json)
        assert answer.json["field"] == "pwd" and f"must not occur in {where}" in answer.json["message"], answer.json
    assert client.get("/api/v1/pipelines").json["total"] == 0


def test_a_user_equal_to_the_password_stored_by_an_earlier_version_is_hidden_at_start(make_service, scripts):
    from sqlalchemy import update

    from scheduler_server.pipelines.models import Pipeline

    (scripts / "check_user.sh").write_text('[ "${10}" = "admin" ] || exit 3\n')
    service = make_service(start=False)
    same, other = [r.id for r in service.submit([xnat(script="check_user.sh", pwd="admin"), xnat(pwd="admin")])]
    with service.store.write() as session:  # as the earlier version stored them: user in clear, no mark
        for pipeline_id, user in ((same, "admin"), (other, "u")):
            spec = {k: v for k, v in service.store.get_pipeline(pipeline_id).spec.items() if k != "user_is_pwd"}
            session.execute(update(Pipeline).where(Pipeline.id == pipeline_id).values(spec={**spec, "user": user}))
    version = service.store.get_pipeline(other).version
    service.close()

    restarted = make_service()
    assert restarted.store.get_pipeline(same).spec["user"] == MASK
    assert (
        restarted.store.get_pipeline(other).spec["user"] == "u"
        and restarted.store.get_pipeline(other).version == version
    )
    # (Its old bytes may linger in the database file's free pages until SQLite reuses them.)
    assert wait_status(restarted, same, ("succeeded", "failed")).status == "succeeded"  # still run as user admin


@pytest.mark.parametrize("pwd", ["*", "****", "********"])
def test_a_password_the_mask_would_show_is_refused_naming_pwd(make_client, pwd):
    answer = make_client().post("/api/v1/pipelines", json=xnat(pwd=pwd))
    assert answer.status_code == 400 and answer.json["field"] == "pwd", answer.json
