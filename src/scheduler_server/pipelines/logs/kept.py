"""An attempt's logs as kept on this machine: masked once, as a stream, and only ever appended to.

``<data_dir>/logs/<id>/<attempt>/<stream>.log`` holds the masked stream (see
``stream_mask``); ``<stream>.state`` says how many bytes of the instance's raw log
it accounts for, how long it is, and whether it is final. A reader of a running
job brings the copy up to date (reading only the raw bytes not yet masked, plus
the few held back) and is served from it; the attempt's end completes it
(``final``: the held-back tail is let out too, since nothing follows). Offsets
(``since``, ``next``) are offsets into this masked stream, the same while the
job runs and after. Nothing held back is ever written here, so the copy never
holds the beginning of a secret. A lock file serialises readers, the attempt's
end and other processes of the service.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from scheduler_server.pipelines.logs.stream_mask import StreamMasker

#: Raw bytes read from the instance at a time.
CHUNK = 1 << 20
#: Most raw bytes masked for one request; the reader follows ``next`` for the rest.
REQUEST_BUDGET = 16 << 20
#: Most raw bytes an attempt's log keeps (as before: the first 64 MB).
MAX_RAW = 64 << 20

#: ``read_raw(offset, max_bytes)``: bytes of the instance's raw log (b"" past its end or when absent).
RawReader = Callable[[int, int], bytes]


@dataclass
class _State:
    raw: int = 0  # raw bytes accounted for
    masked: int = 0  # length of the masked copy
    final: bool = False


class MaskedLog:
    def __init__(self, directory: Path, stream: str):
        self.path = directory / f"{stream}.log"
        self._state_path = directory / f"{stream}.state"
        self._lock_path = directory / f"{stream}.lock"

    @contextmanager
    def _locked(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _load(self) -> _State:
        try:
            state = _State(**json.loads(self._state_path.read_text()))
        except FileNotFoundError:
            if self.path.exists():  # kept by a version that masked whole files at the end: final as it is
                return _State(masked=self.path.stat().st_size, final=True)
            return _State()
        # Bytes appended by a process that died before it saved the state are not accounted for.
        if self.path.exists() and self.path.stat().st_size > state.masked:
            os.truncate(self.path, state.masked)
        return state

    def _save(self, state: _State) -> None:
        temporary = self._state_path.with_name(f".{self._state_path.name}.{os.getpid()}")
        temporary.write_text(json.dumps(asdict(state)))
        os.replace(temporary, self._state_path)

    def catch_up(self, read_raw: RawReader, secrets: list[str], *, final: bool, want: int | None = None) -> None:
        """Mask what the raw log has beyond what is kept. ``final``: the attempt has ended, so read to the
        end and let out the held-back tail. ``want``: stop once the copy is this long (a reader's need)."""
        masker = StreamMasker(secrets)
        with self._locked():
            state = self._load()
            if state.final:
                return
            budget = MAX_RAW if final else REQUEST_BUDGET
            read = 0
            with open(self.path, "ab") as out:
                while state.raw < MAX_RAW and read < budget and (want is None or state.masked < want):
                    asked = min(CHUNK, MAX_RAW - state.raw)
                    chunk = read_raw(state.raw, asked)
                    read += len(chunk)
                    at_end = len(chunk) < asked and state.raw + len(chunk) < MAX_RAW
                    masked, used = masker.mask(chunk, final=final and at_end)
                    out.write(masked)
                    state.raw += used
                    state.masked += len(masked)
                    if state.raw + (len(chunk) - used) >= MAX_RAW:
                        # Cut at MAX_RAW, a held-back tail is dropped rather than let out (more of it
                        # followed); counting it as read ends the copy instead of re-reading it forever.
                        state.raw = MAX_RAW
                        break
                    if at_end or used == 0:  # used == 0: all held back, nothing to gain by reading it again
                        break
            if read or final or not self._state_path.exists():  # a .log without state is one kept whole
                state.final = final
                self._save(state)

    def read(self, since: int, max_bytes: int) -> tuple[bytes, int, bool]:
        """``(data, length of the copy, final)``."""
        with self._locked():
            state = self._load()
        if not self.path.exists():
            return b"", 0, state.final
        with self.path.open("rb") as handle:
            handle.seek(since)
            return handle.read(min(max_bytes, max(0, state.masked - since))), state.masked, state.final
