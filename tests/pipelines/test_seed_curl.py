"""The pipeline seed's curl commands, verbatim, with real curl against `scheduler-server serve` on its defaults.

Defaults: no config file, so the local backend, LOCAL_SCRIPTS_FOLDER ~/.pipeline-scheduler/scripts, SQLite in
~/.local/share/scheduler-server; HOME is a temporary directory. Only the port differs (a free one).
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from .conftest import wait_until
from .server import ServeProcess, clean_env

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (apt-get install curl)")

VARIABLES = """\
server="127.0.0.1:{port}"
session="ncrc_S01323" # XNAT specific
project="test" # XNAT specific
subject="XNAT_S00013" # XNAT specific
host="http://127.0.0.1:1/xnat/" # XNAT installation
user="admin" # XNAT authentication
pwd="admin" # XNAT authentication
script="{script}"
"""

# Copied from seeds/pipeline-scheduler.md, unchanged.
SEED = {
    "list": "curl ${server}/pipeline",
    "register_one": """curl -X POST -H 'Content-Type: application/json' -d '{"project":"'${project}'","subject":"'${subject}'","session":"'${session}'","host":"'${host}'","user":"'${user}'","pwd":"'${pwd}'","script":"'${script}'"}' "${server}/pipeline\"""",
    "register_two": """curl -X POST -H 'Content-Type: application/json' -d '[{"project":"'${project}'","subject":"'${subject}'","session":"'${session}'","host":"'${host}'","user":"'${user}'","pwd":"'${pwd}'","script":"'${script}'"},{"project":"'${project}'","subject":"'${subject}'","session":"'${session}'","host":"'${host}'","user":"'${user}'","pwd":"'${pwd}'","script":"'${script}'"}]' "${server}/pipeline\"""",
    "instances": "curl ${server}/instance",
    "delete": "curl -X DELETE ${server}/instance",
}


@pytest.fixture
def seed_server(tmp_path):
    home = tmp_path / "home"
    scripts = home / ".pipeline-scheduler" / "scripts"
    scripts.mkdir(parents=True)
    (scripts / "qmroct.sh").write_text('echo "qmroct $*"\n')
    server = ServeProcess(home).start()
    yield server
    server.stop()


def _curl(server, name: str, script: str = "qmroct.sh") -> dict:
    command = VARIABLES.format(port=server.port, script=script) + SEED[name]
    done = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, timeout=30, env=clean_env(server.home)
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_seed_curl_commands_verbatim(seed_server):
    one = _curl(seed_server, "register_one")
    assert one["request"] == "success" and one["content"]["status"] == "queued"
    two = _curl(seed_server, "register_two")
    assert two["request"] == "success" and [r["request"] for r in two["content"]] == ["success", "success"]
    ids = [one["content"]["id"], *(r["id"] for r in two["content"])]

    listed = _curl(seed_server, "list")
    assert listed["request"] == "success" and isinstance(listed["content"], list)
    assert all(p["pwd"] == "********" for p in listed["content"])

    def finished():
        content = _curl(seed_server, "list")["content"]
        return not any(p["id"] in ids for p in content)

    wait_until(finished, timeout=60, interval=0.3, message="the three pipelines to finish")
    instances = _curl(seed_server, "instances")
    assert instances["request"] == "success" and isinstance(instances["content"], list)
    deleted = _curl(seed_server, "delete")
    assert deleted["request"] == "success" and "deleted" in deleted["content"]
    # The local backend ran the seed's script with the seed's argument contract. The seed's user and password
    # are both "admin", so every "admin" in the stored log is masked.
    log = seed_server.home / ".local" / "share" / "scheduler-server" / "logs" / str(ids[0]) / "1" / "stdout.log"
    assert log.read_text() == (
        "qmroct -project test -subject XNAT_S00013 -session ncrc_S01323 -host http://127.0.0.1:1/xnat/ -user ******** -pwd ********\n"
    )


def test_seed_curl_with_a_missing_script_gets_a_clear_error(seed_server):
    one = _curl(seed_server, "register_one", script="nothere.sh")
    assert one["request"] == "error" and one["field"] == "script"
    assert "'nothere.sh' does not exist in LOCAL_SCRIPTS_FOLDER" in one["content"]
    two = _curl(seed_server, "register_two", script="nothere.sh")
    assert two["request"] == "error" and all("does not exist" in r["error"] for r in two["content"])


def test_tokens_with_real_curl_and_none_in_the_access_log(tmp_path):
    home = tmp_path / "home"
    (home / ".pipeline-scheduler" / "scripts").mkdir(parents=True)
    (home / "tokens").write_text("lab-token-123\n")
    # The seed's install location, with the seed's upper-case key.
    (home / ".pipeline-scheduler" / "config.yaml").write_text(f"TOKENS_FILE: {home / 'tokens'}\n")
    server = ServeProcess(home).start()
    try:

        def curl(*args: str) -> tuple[int, dict]:
            done = subprocess.run(
                ["curl", "-s", "-w", "\n%{http_code}", *args], capture_output=True, text=True, timeout=30
            )
            body, _, code = done.stdout.rpartition("\n")
            return int(code), json.loads(body)

        assert curl(f"{server.url}/pipeline")[0] == 401
        assert curl(f"{server.url}/pipeline?token=wrong")[0] == 401
        assert curl("-H", "Authorization: Bearer wrong", f"{server.url}/instance")[0] == 401
        assert curl(f"{server.url}/pipeline?token=lab-token-123") == (200, {"request": "success", "content": []})
        assert curl("-H", "Authorization: Bearer lab-token-123", f"{server.url}/instance")[0] == 200
    finally:
        server.stop()
    log = server.log.read_text()
    assert "GET /pipeline" in log and "lab-token-123" not in log and "token=" not in log
    assert "accepts requests from ANYONE" not in log
