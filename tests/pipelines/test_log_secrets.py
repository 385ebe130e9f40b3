"""Secrets in logs: the stored stream is masked, not each answer, so no reader rebuilds a password from
pieces of a running job's log; offsets are the same while it runs and after. Through the HTTP API of a
real ``scheduler-server serve``, on ``local`` and on ``ssh`` (a real sshd)."""

from __future__ import annotations

import random

import pytest
import requests

from scheduler_server.pipelines.logs.stream_mask import StreamMasker
from scheduler_server.pipelines.secrets import MASK

from .backend_servers import serve
from .conftest import wait_until, xnat

PW = "s3cr3t-pw"

# The password whole, split across writes, a prefix that is not completed, and at last a prefix the
# job completes only after the test has read its running log ("tail ").
LEAKY = """\
pw="$XNAT_PASSWORD"
printf 'start %s end\\n' "$pw"
printf '%s' "${pw:0:3}"; sleep 0.05; printf '%s\\n' "${pw:3}"
printf 'prefix %s|\\n' "${pw:0:5}"
printf 'tail %s' "${pw:0:4}"
while [ ! -e {go} ]; do sleep 0.05; done
printf '%s and on\\n' "${pw:4}"
"""

LIVE = f"start {MASK} end\n{MASK}\nprefix s3cr3|\ntail "
FINAL = LIVE.removesuffix("tail ") + f"tail {MASK} and on\n"


@pytest.fixture(params=["local", "ssh"])
def server(request, tmp_path, key):
    with serve(tmp_path, request.param, key, xnat_credentials="env") as (server, scripts):
        (scripts / "leaky.sh").write_text(LEAKY.replace("{go}", str(tmp_path / "go")))
        yield server


def _logs(server, pipeline_id: int, since: int, max_bytes: int) -> dict:
    answer = requests.get(
        f"{server.url}/api/v1/pipelines/{pipeline_id}/logs", params={"since": since, "max_bytes": max_bytes}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def _read_all(server, pipeline_id: int, size: int) -> str:
    """The log read from 0 following ``next``, ``size`` bytes at a time; each answer starts where it was asked."""
    text, since = "", 0
    while True:
        chunk = _logs(server, pipeline_id, since, size)
        assert chunk["offset"] == since and len(chunk["data"].encode()) == chunk["next"] - since <= size
        if not chunk["data"]:
            return text
        text, since = text + chunk["data"], chunk["next"]


def _no_secret_in(text: str) -> None:
    assert PW not in text
    # Nothing of it at the end that later answers could complete (the "prefix" line ends in '|').
    assert not any(text.endswith(PW[:n]) for n in range(1, len(PW))), text


def test_a_reader_of_a_running_job_never_gets_the_password_or_a_prefix_of_it(server, tmp_path):
    answer = requests.post(f"{server.url}/api/v1/pipelines", json=xnat(script="leaky.sh", pwd=PW), timeout=10)
    assert answer.status_code == 201, answer.text
    pipeline_id = answer.json()["pipelines"][0]["id"]
    wait_until(lambda: _logs(server, pipeline_id, 0, 1 << 20)["data"] == LIVE, 20, message="the job to wait at 'tail'")
    assert _logs(server, pipeline_id, 0, 1)["status"] == "running"

    for size in (1, 2, 3, 5, 7, 64):  # byte by byte, and other sizes
        text = _read_all(server, pipeline_id, size)
        assert text == LIVE, size
        _no_secret_in(text)
    for since in range(len(LIVE.encode()) + 3):  # any offset, any size
        for size in (1, 4, 9):
            assert _logs(server, pipeline_id, since, size)["data"] == LIVE[since : since + size]

    (tmp_path / "go").touch()
    wait_until(lambda: _logs(server, pipeline_id, 0, 1)["status"] == "succeeded", 20, message="the job to end")
    for size in (1, 3, 64):  # the finished log: the same offsets, continued
        assert _read_all(server, pipeline_id, size) == FINAL
    last = _logs(server, pipeline_id, 0, 1 << 20)
    assert last["data"] == FINAL and last["complete"] and last["next"] == len(FINAL.encode())


# --- the masking itself -----------------------------------------------------------------------------


def _masked_whole(data: bytes, secrets: list[str]) -> bytes:
    masked, used = StreamMasker(secrets).mask(data, final=True)
    assert used == len(data)
    return masked


def test_masking_piece_by_piece_lets_out_only_a_prefix_of_the_whole_masked_stream():
    rnd = random.Random(10)
    for _ in range(3000):
        secrets = ["".join(rnd.choice("ab") for _ in range(rnd.randint(1, 5))) for _ in range(rnd.randint(1, 3))]
        data = bytes(rnd.choice(b"abc") for _ in range(rnd.randint(0, 40)))
        whole = _masked_whole(data, secrets)
        masker, out, pending, i = StreamMasker(secrets), b"", b"", 0
        while i < len(data):
            step = rnd.randint(1, 6)
            pending, i = pending + data[i : i + step], i + step
            masked, used = masker.mask(pending, final=False)
            out, pending = out + masked, pending[used:]
            assert whole.startswith(out), (secrets, data)
            assert len(pending) < max(map(len, secrets)), "holds back less than one secret"
        masked, _ = masker.mask(pending, final=True)
        assert out + masked == whole


def test_masking_prefers_the_longest_secret_and_waits_for_it():
    masker = StreamMasker(["ab", "abcd"])
    assert masker.mask(b"xxab", final=False) == (b"xx", 2)  # "abcd" may still follow
    assert masker.mask(b"abcdab", final=True) == (MASK.encode() * 2, 6)
    assert masker.mask(b"abx", final=False) == (MASK.encode() + b"x", 3)


# --- the kept copy ----------------------------------------------------------------------------------


def test_the_kept_copy_reads_only_new_output_survives_a_torn_append_and_serves_old_logs_as_they_are(tmp_path):
    from scheduler_server.pipelines.logs.kept import MaskedLog

    raw = bytearray(b"one " + PW.encode()[:4])
    asked: list[int] = []

    def read_raw(offset: int, size: int) -> bytes:
        asked.append(offset)
        return bytes(raw[offset : offset + size])

    log = MaskedLog(tmp_path / "1" / "1", "stdout")
    log.catch_up(read_raw, [PW], final=False)
    assert log.read(0, 100) == (b"one ", 4, False)  # the beginning of the password is held back, not kept
    assert PW.encode()[:4] not in log.path.read_bytes()
    raw += PW.encode()[4:] + b" two\n"
    log.path.write_bytes(log.path.read_bytes() + b"torn")  # appended by a process that died before saving its state
    log.catch_up(read_raw, [PW], final=True)
    assert asked == [0, 4], "the second pass starts at the held-back bytes, not at 0"
    assert log.read(0, 100) == (f"one {MASK} two\n".encode(), len(f"one {MASK} two\n"), True)

    old = MaskedLog(tmp_path / "2" / "1", "stdout")  # kept whole by an earlier version, masked already
    old.path.parent.mkdir(parents=True)
    old.path.write_bytes(f"x {MASK}\n".encode())
    old.catch_up(lambda offset, size: pytest.fail("a finished log is not read again"), [PW], final=True)
    assert old.read(2, 100) == (f"{MASK}\n".encode(), len(f"x {MASK}\n"), True)


def test_a_live_log_read_before_the_job_wrote_anything_still_follows_it(tmp_path):
    from scheduler_server.pipelines.logs.kept import MaskedLog

    raw = bytearray()
    log = MaskedLog(tmp_path, "stderr")
    log.catch_up(lambda offset, size: bytes(raw[offset : offset + size]), [PW], final=False)
    assert log.read(0, 10) == (b"", 0, False)
    raw += b"late\n"
    log.catch_up(lambda offset, size: bytes(raw[offset : offset + size]), [PW], final=False)
    assert log.read(0, 10) == (b"late\n", 5, False)


def test_a_password_begun_at_the_size_cap_ends_the_copy_instead_of_being_read_again_and_again(tmp_path, monkeypatch):
    from scheduler_server.pipelines.logs import kept as masked_logs

    monkeypatch.setattr(masked_logs, "MAX_RAW", 100)
    raw = b"a" * 97 + PW.encode()[:3] + PW.encode()[3:] + b" more output\n"  # the cap falls inside the password
    calls: list[int] = []

    def read_raw(offset: int, size: int) -> bytes:
        calls.append(offset)
        return raw[offset : offset + size]

    log = masked_logs.MaskedLog(tmp_path, "stdout")
    log.catch_up(read_raw, [PW], final=False)
    assert len(calls) <= 2, f"{len(calls)} reads: the held-back tail at the cap was read again and again"
    log.catch_up(read_raw, [PW], final=False)
    log.catch_up(read_raw, [PW], final=True)
    assert len(calls) <= 2, "a copy cut at the cap is complete: nothing more is read"
    assert log.read(0, 1000) == (b"a" * 97, 97, True)  # the password's beginning at the cap is dropped, not let out


def test_a_log_that_cannot_be_kept_answers_503_with_the_reason_not_500(make_client):
    client = make_client()
    pipeline_id = client.post("/api/v1/pipelines", json=xnat(script="sleep.sh", options=["5"])).json["pipelines"][0][
        "id"
    ]
    service = client.application.extensions["pipelines"].service
    wait_until(lambda: service.store.get_pipeline(pipeline_id).status == "running", 20, message="running")
    (service.data_path / "logs").mkdir(exist_ok=True)
    (service.data_path / "logs" / str(pipeline_id)).write_text(
        "not a directory"
    )  # as a full or broken disk would refuse
    answer = client.get(f"/api/v1/pipelines/{pipeline_id}/logs")
    assert answer.status_code == 503 and "cannot be kept or masked now" in answer.json["message"], answer.json
    client.post(f"/api/v1/pipelines/{pipeline_id}/cancel")
