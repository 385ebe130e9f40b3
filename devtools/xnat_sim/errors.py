"""An error a simulated resource answers with, in the page Restlet writes for it."""

from __future__ import annotations

from . import render


class SimError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message

    def response(self):
        return render.restlet_error(self.status, self.message)


def only_params(allowed: set[str], args) -> None:
    """Refuse query parameters a simulated resource does not take (XNAT would ignore most; a typo should show)."""
    unknown = sorted(set(args) - allowed)
    if unknown:
        raise SimError(
            400, f"unknown query parameter(s) {', '.join(unknown)} (this resource takes: {', '.join(sorted(allowed))})"
        )


def fmt_of(args, allowed: tuple[str, ...], default: str) -> str:
    fmt = (args.get("format") or default).lower()
    if fmt not in allowed:
        raise SimError(400, f"format: {fmt!r} is not simulated here (one of {', '.join(allowed)})")
    return fmt
