"""Masking secrets in a byte stream that is still being written, so that what is let out never changes.

A log is masked as one stream: every occurrence of a secret (leftmost first, the
longest secret first where several start at one place) becomes ``MASK``. While
the stream grows, ``StreamMasker.mask`` lets out only the part whose masked form
is settled: it holds back the shortest tail that could still become a secret
(a suffix that is a proper prefix of one) and a match a longer secret could
still extend. So the masked stream read piece by piece, at any moment, is a
prefix of the masked stream of the whole log, and never holds a secret or the
beginning of one that later bytes complete.
"""

from __future__ import annotations

import re

from scheduler_server.pipelines.secrets import MASK

MASK_BYTES = MASK.encode()


class StreamMasker:
    def __init__(self, secrets: list[str]):
        # Longest first: where two secrets start at one place, the regex takes the first that matches.
        self.secrets = sorted({s.encode("utf-8") for s in secrets if s}, key=len, reverse=True)
        self._pattern = re.compile(b"|".join(re.escape(s) for s in self.secrets)) if self.secrets else None

    def mask(self, data: bytes, final: bool) -> tuple[bytes, int]:
        """``(masked, used)``: the settled masked form of ``data[:used]``. ``data[used:]`` is held back
        (it must come again, with what follows it, in the next call) unless ``final`` (nothing follows)."""
        if self._pattern is None:
            return data, len(data)
        holds = [] if final else self._holds(data)
        if not holds:  # nothing undecided: the loop below would make exactly the regex's own substitution
            return self._pattern.sub(MASK_BYTES, data), len(data)
        out: list[bytes] = []
        pos = 0
        for match in self._pattern.finditer(data):
            hold = _first_at_or_after(holds, pos)
            if hold is not None and hold <= match.start():
                break  # a secret may begin at ``hold``: undecided from there on
            out += [data[pos : match.start()], MASK_BYTES]
            pos = match.end()
        hold = _first_at_or_after(holds, pos)
        end = len(data) if hold is None else hold
        out.append(data[pos:end])
        return b"".join(out), max(pos, end)

    def _holds(self, data: bytes) -> list[int]:
        """Positions ``i`` (ascending) where ``data[i:]`` is a proper prefix of a secret."""
        n = len(data)
        start = max(0, n - len(self.secrets[0]) + 1)
        firsts = {s[0] for s in self.secrets}
        return [
            i
            for i in range(start, n)
            if data[i] in firsts and any(len(s) > n - i and s.startswith(data[i:]) for s in self.secrets)
        ]


def _first_at_or_after(positions: list[int], pos: int) -> int | None:
    return next((p for p in positions if p >= pos), None)
