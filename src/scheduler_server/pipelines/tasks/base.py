"""What every task type shares: the request fields, the command it becomes, and where its files may come from.

A task type turns a validated request into a ``Command``: the arguments that
follow ``bash <script>`` and the environment of the script. The secret (the
XNAT password) never appears in either as text; the placeholder ``SECRET``
stands for it, and the job directory's ``run.sh`` gets the real value on stdin.
"""

from __future__ import annotations

import re
import shlex
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from scheduler_server.pipelines.env_names import NAME as ENV_NAME
from scheduler_server.pipelines.tasks import environment


class _Secret:
    def __repr__(self) -> str:
        return "SECRET"


#: Stands for the task's secret in ``Command.argv`` / ``Command.env``.
SECRET = _Secret()

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\ud800-\udfff]")
#: plain_text in the OpenAPI document (lone surrogates, which no JSON text of valid Unicode holds, are left out).
PLAIN_TEXT_SCHEMA = {"not": {"pattern": "[\\x00-\\x08\\x0a-\\x1f\\x7f]"}}


class PathError(ValueError):
    """A script or file name that does not resolve to a file inside LOCAL_SCRIPTS_FOLDER."""


def plain_text(value: str) -> str:
    """Field values may hold any printable text (quoting makes it harmless) but no control characters."""
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters or lone surrogates")
    return value


def integral_number(value: Any) -> Any:
    """JSON Schema counts 5.0 as an integer; strict validation would not, so an integral float becomes an int."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def check_relative_name(name: str) -> str:
    """Script and file names: relative POSIX paths without '..' (checked again against the disk at submit)."""
    plain_text(name)
    if not name.strip():
        raise ValueError("must not be empty")
    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith("~"):
        raise ValueError(f"{name!r} is absolute; name a file inside LOCAL_SCRIPTS_FOLDER")
    if ".." in path.parts:
        raise ValueError(f"{name!r} leaves LOCAL_SCRIPTS_FOLDER ('..' is not allowed)")
    return name


def resolve_in_folder(folder: Path, name: str) -> Path:
    """The file ``name`` inside ``folder``, following symlinks; PathError if it is missing or outside."""
    root = folder.expanduser().resolve()
    try:
        candidate = (root / name).resolve()
        if not candidate.is_relative_to(root):
            raise PathError(f"{name!r} resolves outside LOCAL_SCRIPTS_FOLDER (a symlink out?)")
        if not candidate.is_file():
            raise PathError(f"{name!r} does not exist in LOCAL_SCRIPTS_FOLDER ({root})")
    except OSError as exc:  # a name the file system cannot even look up (e.g. a part over 255 bytes)
        raise PathError(f"{name[:60]!r} does not exist in LOCAL_SCRIPTS_FOLDER ({exc.strerror})") from None
    return candidate


@dataclass
class Command:
    """``bash <script> <argv...>`` with ``env`` added to the script's environment."""

    argv: list[str | _Secret] = field(default_factory=list)
    env: dict[str, str | _Secret] = field(default_factory=dict)

    def shell_words(self, secret_word: str) -> tuple[str, str]:
        """``(assignments, arguments)`` as shell text, ``SECRET`` written as ``secret_word``.

        Values are single words in quotes: the shell assigns them and interprets nothing in them."""
        for name in self.env:
            if not ENV_NAME.match(name):  # a name is written unquoted: never anything but a name
                raise ValueError(f"not an environment variable name: {name!r}")

        def word(value) -> str:
            return secret_word if value is SECRET else shlex.quote(str(value))

        return " ".join(f"{name}={word(value)}" for name, value in self.env.items()), " ".join(map(word, self.argv))


class TaskRequest(BaseModel):
    """Fields every pipeline request has, whatever its type."""

    # strict: "5" is not 5 and 1 is not true; str_max_length bounds every string not given a tighter limit.
    model_config = ConfigDict(extra="forbid", str_max_length=4096, strict=True)

    script: str = Field(
        min_length=1,
        max_length=1024,
        json_schema_extra=PLAIN_TEXT_SCHEMA,
        description="Script to run, relative to LOCAL_SCRIPTS_FOLDER.",
        examples=["qmroct.sh"],
    )
    files: list[
        Annotated[
            str,
            Field(min_length=1, max_length=1024, json_schema_extra=PLAIN_TEXT_SCHEMA),
            AfterValidator(check_relative_name),
        ]
    ] = Field(
        default_factory=list,
        max_length=100,
        description="More files from LOCAL_SCRIPTS_FOLDER to upload next to the script.",
    )
    priority: Annotated[int, BeforeValidator(integral_number)] = Field(
        0,
        ge=-1000,
        le=1000,
        description="Higher runs first; equal priorities run in submission order (5.0 counts as 5, as in JSON Schema).",
    )
    timeout: float | None = Field(
        None, gt=0, le=30 * 86400, description="Seconds the script may run (default: pipelines.pipeline_timeout)."
    )

    @field_validator("script")
    @classmethod
    def _script_name(cls, value: str) -> str:
        return check_relative_name(value)

    def secret(self) -> str | None:
        """The value to encrypt at rest and pass on stdin, if the type has one."""
        return None

    def secret_problem(self) -> str | None:
        """Why the secret cannot be kept secret with these fields (it is in one stored in clear), if so."""
        return None

    def summary(self) -> dict[str, Any]:
        """Searchable columns: project, subject, session (None when the type has none)."""
        return {"project": None, "subject": None, "session": None}

    def spec(self) -> dict[str, Any]:
        """Everything needed to run it later, minus the secret (stored as plain JSON)."""
        return self.model_dump(mode="json", exclude={"priority", "timeout"})


class TaskType(ABC):
    """One kind of pipeline: its request model and how a stored spec becomes a command."""

    name: ClassVar[str]
    Request: ClassVar[type[TaskRequest]]

    @abstractmethod
    def command(self, spec: dict[str, Any], credentials_mode: str) -> Command:
        """The command for a stored ``spec``; ``credentials_mode`` is pipelines.xnat_credentials."""

    def request_env(self, spec: dict[str, Any]) -> dict[str, str]:
        """The environment variables the request itself names (checked against the site's allow-list)."""
        return {}

    def checked_command(self, spec: dict[str, Any], settings) -> Command:
        """``command`` for ``settings`` (PipelineSettings), after checking the request's variables again:
        a spec stored before the allow-list narrowed must not run with a name now forbidden
        (``environment.ForbiddenEnv``)."""
        environment.check(self.request_env(spec), settings.allowed_env_names)
        return self.command(spec, settings.xnat_credentials)
