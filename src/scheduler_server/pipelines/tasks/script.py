"""A plain script pipeline (``type: script``): ``bash <script> <args...>`` with extra environment, no XNAT fields."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from scheduler_server.pipelines.tasks.base import PLAIN_TEXT_SCHEMA, Command, TaskRequest, TaskType, plain_text


class ScriptRequest(TaskRequest):
    type: Literal["script"] = Field(description="A plain script with its own arguments.")
    args: list[Annotated[str, Field(json_schema_extra=PLAIN_TEXT_SCHEMA)]] = Field(
        default_factory=list, max_length=1000, description="Arguments after the script, each passed as one word."
    )
    env: dict[str, Annotated[str, Field(json_schema_extra=PLAIN_TEXT_SCHEMA)]] = Field(
        default_factory=dict,
        max_length=100,
        description="Extra environment variables for the script (not secret). Only names the site allows (pipelines.allowed_env_names, default PIPELINE_*); values are passed literally.",
    )

    @field_validator("args")
    @classmethod
    def _args(cls, value: list[str]) -> list[str]:
        return [plain_text(v) for v in value]

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        # Names are checked by the service (environment.check), which names the variable in its answer.
        for text in value.values():
            plain_text(text)
        return value


class ScriptTask(TaskType):
    name = "script"
    Request = ScriptRequest

    def command(self, spec: dict[str, Any], credentials_mode: str) -> Command:
        return Command(argv=list(spec.get("args") or []), env=self.request_env(spec))

    def request_env(self, spec: dict[str, Any]) -> dict[str, str]:
        return dict(spec.get("env") or {})
