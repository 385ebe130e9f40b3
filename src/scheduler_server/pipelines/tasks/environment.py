"""Which environment variables a request may set for its script: the site's allow-list, minus names that run code.

A shell or the dynamic loader reads some variables as code or as where to find
code (``BASH_ENV`` is sourced by every non-interactive bash, ``BASH_FUNC_*``
become functions, ``LD_PRELOAD`` is loaded into every process...). A request
names only variables that match ``pipelines.allowed_env_names`` (site
configuration, never a request) and none of ``env_names.NEVER``, which wins over any
pattern a site writes. Values are passed as literal words (``Command.shell_words``
quotes them), so under a name nothing reads as code they stay plain data.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from scheduler_server.pipelines.env_names import NAME, never_allowed


class ForbiddenEnv(ValueError):
    """A variable a request may not set; ``name`` is the variable."""

    def __init__(self, name: str, problem: str):
        super().__init__(f"env.{name}: {problem}")
        self.name, self.problem = name, problem


def problem_with(name: str, allowed: list[str] | tuple[str, ...]) -> str | None:
    """Why a request may not set ``name`` (None if it may)."""
    if not NAME.match(name):
        return f"{name!r} is not a valid environment variable name"
    if never_allowed(name):
        return f"{name} is never allowed: a shell, the loader or a tool reads it as code or configuration"
    if not any(fnmatchcase(name, pattern) for pattern in allowed):
        return f"{name} is not in pipelines.allowed_env_names ({', '.join(allowed) or 'empty'})"
    return None


def check(env: dict[str, object], allowed: list[str] | tuple[str, ...]) -> None:
    """Raise ``ForbiddenEnv`` for the first name in ``env`` a request may not set."""
    for name in env:
        problem = problem_with(name, allowed)
        if problem:
            raise ForbiddenEnv(name, problem)
