"""Wake-ups coalesce (a burst of submissions: one assignment, not one per datagram or notification),
a failing wake-up does not end the listening thread, and the fallback socket folder is private."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest

from scheduler_server.pipelines.storage import wake
from scheduler_server.pipelines.storage.store import Store

from .conftest import wait_until
from .postgres import postgres_server, postgres_url  # noqa: F401  (fixtures)


@pytest.fixture
def short_root():
    """A short folder for the fallback socket's (a test's tmp_path is too long for a socket address)."""
    root = Path(tempfile.mkdtemp(prefix="ssw", dir="/tmp"))  # noqa: S108
    yield root
    shutil.rmtree(root)


class Slow:
    """An on_wake that takes 0.3 s (an assignment) and fails on its first call."""

    def __init__(self):
        self.calls = 0
        self.first = threading.Event()

    def __call__(self):
        self.calls += 1
        self.first.set()
        time.sleep(0.3)
        if self.calls == 1:
            raise RuntimeError("a bug in the assignment")


def _burst(poke, on_wake: Slow, count: int = 40) -> None:
    poke()
    assert on_wake.first.wait(5)
    for _ in range(count):  # arrive while the first wake-up runs
        poke()
    time.sleep(1.0)
    calls = on_wake.calls
    assert 2 <= calls <= 3, f"{count + 1} wake-ups ran {calls} assignment(s)"
    poke()  # still listening after the failure
    wait_until(lambda: on_wake.calls > calls, timeout=3, message="a wake-up after the burst")


def test_datagrams_coalesce_and_a_failing_wake_up_keeps_the_listener(tmp_path):
    on_wake = Slow()
    listener = wake.LocalWaker(tmp_path).listen(on_wake)
    assert listener is not None
    try:
        _burst(wake.LocalWaker(tmp_path).poke, on_wake)
    finally:
        listener.close()


def test_notifications_coalesce_and_a_failing_wake_up_keeps_the_listener(postgres_url):
    store = Store(postgres_url)
    on_wake = Slow()
    waker = wake.PostgresWaker(store, "ours")
    calls_at_connect = threading.Event()
    listener = waker.listen(lambda: calls_at_connect.set() if not calls_at_connect.is_set() else on_wake())
    try:
        assert calls_at_connect.wait(5)  # the wake-up on connecting (a notification may have been missed)
        _burst(waker.poke, on_wake)
    finally:
        listener.close()
        store.close()


def test_a_long_data_path_uses_a_private_folder_never_an_abstract_name(tmp_path, monkeypatch, short_root):
    monkeypatch.setattr(wake, "FALLBACK_ROOT", short_root)
    deep = tmp_path / ("x" * 60) / ("y" * 60)
    deep.mkdir(parents=True)
    address = wake.socket_address(deep / wake.SOCKET_NAME)
    assert isinstance(address, str) and len(address) <= wake.MAX_SOCKET_PATH
    folder = Path(address).parent
    woken = []
    listener = wake.LocalWaker(deep).listen(lambda: woken.append(1))
    assert listener is not None
    try:
        assert folder.stat().st_mode & 0o777 == 0o700 and folder.stat().st_uid == os.getuid()
        wake.LocalWaker(deep).poke()
        wait_until(lambda: woken, timeout=2, message="a wake-up through the fallback socket")
    finally:
        listener.close()
    folder.chmod(0o755)  # another user could reach in: neither listened at nor sent to
    assert wake.LocalWaker(deep).listen(lambda: woken.append(2)) is None
    wake.LocalWaker(deep).poke()
    assert not Path(address).exists()
