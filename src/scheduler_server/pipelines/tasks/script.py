"""A plain script pipeline (``type: script``): ``bash <script> <args...>`` with extra environment, no XNAT fields."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator

from .base import Command, TaskRequest, TaskType, plain_text

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ScriptRequest(TaskRequest):
    type: Literal["script"] = Field(description="A plain script with its own arguments.")
    args: list[str] = Field(default_factory=list, max_length=1000, description="Arguments after the script, each passed as one word.")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables for the script (not secret).")

    @field_validator("args")
    @classmethod
    def _args(cls, value: list[str]) -> list[str]:
        return [plain_text(v) for v in value]

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _ENV_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid environment variable name")
            plain_text(text)
        return value


class ScriptTask(TaskType):
    name = "script"
    Request = ScriptRequest

    def command(self, spec: dict[str, Any], credentials_mode: str) -> Command:
        return Command(argv=list(spec.get("args") or []), env=dict(spec.get("env") or {}))
