"""The seed's XNAT pipeline: ``bash <script> -project P -subject S -session E -host H -user U -pwd X <options>``.

With ``pipelines.xnat_credentials: env`` the password is not an argument: the
script reads ``$XNAT_PASSWORD`` and ``$XNAT_USER`` (``-pwd`` is left out, and
``-user`` too when it equals the password), so it never shows in the instance's
process table.

For a host listed in ``xnat.servers`` (the spec says ``xnat_token``) the script
gets an alias token, always through the environment, whatever
``xnat_credentials`` says: ``XNAT_HOST`` (the server's base URL), ``XNAT_USER``
and ``XNAT_ALIAS`` (the alias), ``XNAT_PASSWORD`` and ``XNAT_SECRET`` (the
secret); its arguments are ``-project -subject -session -host`` and the options.
A single-sign-on user submits ``alias`` and ``secret`` in place of ``user`` and
``pwd`` (listed hosts only).
"""

from __future__ import annotations

import shlex
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator

from scheduler_server.pipelines.secrets import MASK
from scheduler_server.pipelines.tasks.base import PLAIN_TEXT_SCHEMA, SECRET, Command, TaskRequest, TaskType, plain_text

# Integers within 64 bits: the body parser refuses longer literals (web/json_body.py).
_OptionInt = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
_OptionText = Annotated[str, Field(json_schema_extra=PLAIN_TEXT_SCHEMA)]
Options = (
    _OptionText | list[_OptionText | _OptionInt | float] | dict[_OptionText, _OptionText | _OptionInt | float | None]
)


def options_to_args(options: Options) -> list[str]:
    """The seed's free-form ``options`` as separate arguments (each one is quoted later)."""
    if isinstance(options, str):
        try:
            return shlex.split(options)
        except ValueError as exc:
            raise ValueError(f"cannot split into arguments: {exc}") from None
    if isinstance(options, list):
        return [str(v) for v in options]
    args: list[str] = []
    for key, value in options.items():
        args.append(key if key.startswith("-") else f"-{key}")
        if value is not None:
            args.append(str(value))
    return args


class XnatRequest(TaskRequest):
    type: Literal["xnat"] = Field("xnat", description="The seed's XNAT pipeline (default).")
    project: str = Field(min_length=1, max_length=255, json_schema_extra=PLAIN_TEXT_SCHEMA, description="XNAT project.")
    subject: str = Field(min_length=1, max_length=255, json_schema_extra=PLAIN_TEXT_SCHEMA, description="XNAT subject.")
    session: str = Field(
        min_length=1, max_length=255, json_schema_extra=PLAIN_TEXT_SCHEMA, description="XNAT session (experiment)."
    )
    host: str = Field(min_length=1, max_length=4096, json_schema_extra=PLAIN_TEXT_SCHEMA, description="XNAT base URL.")
    user: str | None = Field(
        None, min_length=1, max_length=4096, json_schema_extra=PLAIN_TEXT_SCHEMA, description="XNAT user (with pwd)."
    )
    pwd: SecretStr | None = Field(
        None,
        max_length=4096,
        json_schema_extra={**PLAIN_TEXT_SCHEMA, "writeOnly": True, "format": "password"},
        description=(
            "XNAT password: encrypted at rest, masked in every answer and log; for a host in xnat.servers it is"
            " exchanged for an alias token at submit and never stored."
        ),
    )
    alias: str | None = Field(
        None,
        min_length=1,
        max_length=255,
        json_schema_extra=PLAIN_TEXT_SCHEMA,
        description="An XNAT alias token's alias, in place of user (single sign-on; hosts in xnat.servers only).",
    )
    sso_secret: SecretStr | None = Field(
        None,
        alias="secret",
        max_length=4096,
        json_schema_extra={**PLAIN_TEXT_SCHEMA, "writeOnly": True, "format": "password"},
        description="The alias token's secret, in place of pwd: encrypted at rest, masked everywhere.",
    )
    options: Options = Field(
        default_factory=list,
        description="Extra arguments after the seed's: a string (split like a shell would), a list, or {name: value} giving '-name value'.",
    )

    @field_validator("project", "subject", "session", "host", "user", "alias")
    @classmethod
    def _plain(cls, value: str | None) -> str | None:
        return value if value is None else plain_text(value)

    @field_validator("options")
    @classmethod
    def _options(cls, value: Options) -> Options:
        for arg in options_to_args(value):
            plain_text(arg)
        return value

    @field_validator("pwd", "sso_secret")
    @classmethod
    def _pwd(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            plain_text(value.get_secret_value())
        return value

    def secret(self) -> str | None:
        return self.pwd.get_secret_value() if self.pwd is not None else None

    def token_secret(self) -> str | None:
        return self.sso_secret.get_secret_value() if self.sso_secret is not None else None

    def credentials_problem(self) -> tuple[str, str] | None:
        """(field, problem) when the credentials are not exactly one of: user and pwd, alias and secret."""
        if self.pwd is not None and self.sso_secret is not None:
            return "secret", "give either user and pwd or alias and secret, not both"
        if self.pwd is None and self.sso_secret is None:
            return "pwd", "required (or alias and secret: an XNAT alias token, for single sign-on)"
        if self.pwd is not None and self.user is None:
            return "user", "required with pwd"
        if self.sso_secret is not None and self.alias is None:
            return "alias", "required with secret"
        if self.alias is not None and self.sso_secret is None:
            return "secret", "required with alias"
        if self.sso_secret is not None and self.user is not None:
            return "user", "not with alias and secret (the token names its user)"
        return None

    def secret_problem(self) -> str | None:
        # The seed's own example has user and password both "admin": equal to `user` it is allowed,
        # and `user` is then kept and passed as the secret. Anywhere else it would be stored and
        # answered in clear.
        pwd = self.secret() or self.token_secret() or ""
        if not pwd:
            return None
        if pwd in MASK:  # every masked answer would hold it
            return f"a password made of '*' only is refused (the mask {MASK} would show it)"
        fields = {"project": self.project, "subject": self.subject, "session": self.session, "host": self.host}
        if self.user is not None and self.user != pwd:
            fields["user"] = self.user
        if self.alias is not None:
            fields["alias"] = self.alias
        fields.update({"script": self.script, **{f"files.{n}": name for n, name in enumerate(self.files)}})
        fields.update({f"options.{n}": arg for n, arg in enumerate(options_to_args(self.options))})
        for name, value in fields.items():
            if pwd in value:
                return f"must not occur in {name}, which is stored and shown in clear (only user may equal it)"
        return None

    def summary(self) -> dict[str, Any]:
        return {"project": self.project, "subject": self.subject, "session": self.session}

    def spec(self) -> dict[str, Any]:
        spec = self.model_dump(mode="json", exclude={"pwd", "sso_secret", "alias", "priority", "timeout"})
        # Always said, so that specs stored before this rule can be told apart (legacy_specs.py).
        spec["user_is_pwd"] = self.pwd is not None and self.user == self.pwd.get_secret_value()
        if spec["user_is_pwd"]:
            spec["user"] = MASK  # never stored in clear: it is the password
        return spec


class XnatTask(TaskType):
    name = "xnat"
    Request = XnatRequest

    def command(self, spec: dict[str, Any], credentials_mode: str) -> Command:
        if spec.get("xnat_token"):
            return _token_command(spec)
        argv: list = [
            "-project",
            spec["project"],
            "-subject",
            spec["subject"],
            "-session",
            spec["session"],
            "-host",
            spec["host"],
        ]
        user = SECRET if spec.get("user_is_pwd") else spec["user"]
        env: dict = {}
        if credentials_mode == "env":
            env["XNAT_PASSWORD"] = SECRET
            env["XNAT_USER"] = user
            # A user that is the password stays out of the process table too: only $XNAT_USER has it.
            if user is not SECRET:
                argv += ["-user", user]
        else:
            argv += ["-user", user, "-pwd", SECRET]
        argv += options_to_args(spec.get("options") or [])
        return Command(argv=argv, env=env)


def _token_command(spec: dict[str, Any]) -> Command:
    """A listed host's pipeline: the alias token in the environment only (``xnat_alias``: set at start)."""
    argv: list = ["-project", spec["project"], "-subject", spec["subject"], "-session", spec["session"]]
    argv += ["-host", spec["host"], *options_to_args(spec.get("options") or [])]
    alias = spec.get("xnat_alias") or ""
    env: dict = {"XNAT_HOST": spec["host"], "XNAT_USER": alias, "XNAT_ALIAS": alias}
    env.update({"XNAT_PASSWORD": SECRET, "XNAT_SECRET": SECRET})
    return Command(argv=argv, env=env)
