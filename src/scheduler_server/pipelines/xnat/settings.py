"""The ``xnat:`` section: the XNAT servers the scheduler may contact, and how it uses them.

A leaf importing only pydantic, like the backends' sections; ``config.py`` composes it
as ``Settings.xnat`` and hands it to the pipeline service.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from scheduler_server.pipelines.xnat.hosts import normalise

DEFAULT_SESSION_TYPES = ("xnat:mrSessionData", "xnat:petSessionData", "xnat:ctSessionData")


class XnatServer(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)

    url: str = Field(
        min_length=1,
        description="The server's base URL (http or https, e.g. https://xnat.example.org or https://host/xnat).",
    )
    verify: bool = Field(True, description="Verify the server's TLS certificate.")
    ca_file: Path | None = Field(None, description="CA bundle to verify the certificate with (implies verify).")
    timeout: float = Field(10.0, gt=0, le=300, description="Seconds to wait for each answer of the server.")
    session_types: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SESSION_TYPES),
        min_length=1,
        description="XNAT data types (xsiType) that count as sessions a pipeline may run on.",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return normalise(value)


class XnatSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)

    servers: list[XnatServer] = Field(
        default_factory=list,
        description=(
            "XNAT sites pipelines may name as their host. Empty: the seed's behaviour (no contact, host, user and pwd"
            " passed through). Set: a pipeline naming another host is refused (400 naming host)."
        ),
    )
    workflows: bool = Field(False, description="Write each pipeline's status into an XNAT workflow on its session.")
    workflow_permission: Literal["refuse", "warn"] = Field(
        "refuse",
        description="A user who may not write workflows: refused at submit, or submitted with a warning.",
    )
    link_base: str | None = Field(
        None,
        description=(
            "The scheduler's public base URL (e.g. https://scheduler.example.org): each workflow entry's comments link"
            " to the pipeline's page there (<link_base>/ui/pipelines/<id>). Unset: only the API path"
            " /api/v1/pipelines/<id>, since the server does not know the address it is reached at."
        ),
    )
    max_launch: int = Field(1000, ge=1, le=100000, description="Most pipelines one project launch may create.")
    token_renew_before: float = Field(
        6 * 3600.0,
        gt=0,
        description="Seconds before an alias token's expiry at which it is renewed while its pipelines wait.",
    )

    @field_validator("link_base")
    @classmethod
    def _link_base(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("must be an http(s) URL with a host and no query or fragment")
        if len(value) > 200 or any(ord(c) < 33 or ord(c) == 127 for c in value) or "@" in parts.netloc:
            raise ValueError("must be at most 200 characters, without spaces, control characters or user@")
        return value.rstrip("/")

    @field_validator("servers")
    @classmethod
    def _distinct(cls, value: list[XnatServer]) -> list[XnatServer]:
        urls = [server.url for server in value]
        for url in urls:
            if urls.count(url) > 1:
                raise ValueError(f"{url} is listed twice")
        return value
