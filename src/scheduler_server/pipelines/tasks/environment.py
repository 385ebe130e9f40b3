"""Which environment variables a request may set for its script: the site's allow-list, minus names that run code.

A shell or the dynamic loader reads some variables as code or as where to find
code (``BASH_ENV`` is sourced by every non-interactive bash, ``BASH_FUNC_*``
become functions, ``LD_PRELOAD`` is loaded into every process...). A request
names only variables that match ``pipelines.allowed_env_names`` (site
configuration, never a request) and none of ``NEVER``, which wins over any
pattern a site writes. Values are passed as literal words (``runner.py``
quotes them), so under a name nothing reads as code they stay plain data.
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase

#: Valid POSIX-ish names (what bash accepts in an assignment).
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: Never settable by a request, whatever the site allows (compared case-insensitively: a
#: lower-case ``http_proxy`` is read too). Shells, the loader and libc, language runtimes,
#: tools a script may call, and the service's own variables.
NEVER: tuple[str, ...] = (
    # bash and other shells: sourced, imported as functions, evaluated in prompts or traces, or how words split
    "BASH_ENV",
    "ENV",
    "BASH_FUNC_*",
    "BASH*",
    "SHELLOPTS",
    "PROMPT_COMMAND*",
    "PS?",
    "IFS",
    "PATH",
    "CDPATH",
    "GLOBIGNORE",
    "EXECIGNORE",
    "FPATH",
    "FUNCNEST",
    "HIST*",
    "INPUTRC",
    "MAIL*",
    "SHELL",
    "HOME",
    "POSIXLY_CORRECT",
    "ZDOTDIR",
    "ZSH*",
    "KSH*",
    "TMOUT",
    "TERM*",
    # the dynamic loader and libc: libraries loaded, conversion modules, resolver files, allocator tunables
    "LD_*",
    "DYLD_*",
    "GCONV_PATH",
    "LOCPATH",
    "NLSPATH",
    "MALLOC_*",
    "GLIBC_TUNABLES",
    "HOSTALIASES",
    "RES_OPTIONS",
    "LOCALDOMAIN",
    "TZDIR",
    # interpreters and runtimes: start-up files, module paths, options that load code
    "PYTHON*",
    "PERL*",
    "RUBY*",
    "GEM_*",
    "BUNDLE_*",
    "NODE_*",
    "NPM_*",
    "*JAVA_OPTIONS",
    "JAVA_TOOL_OPTIONS",
    "CLASSPATH",
    "R_*",
    "LUA_*",
    "TCL*",
    "OCAML*",
    "GOFLAGS",
    "GOPATH",
    "GOROOT",
    "GOENV",
    "GOTOOLCHAIN",
    "GOPROXY",
    "CARGO_*",
    "RUST*",
    "JULIA_*",
    "OMPI_MCA_*",
    # tools that run a configured command, read config from elsewhere or change where traffic goes
    "GIT_*",
    "SSH_*",
    "SSL_*",
    "OPENSSL_*",
    "CURL_*",
    "WGETRC",
    "REQUESTS_CA_BUNDLE",
    "*_PROXY",
    "EDITOR",
    "VISUAL",
    "PAGER",
    "LESS*",
    "MANPAGER",
    "BROWSER",
    "GNUPGHOME",
    "XDG_*",
    "SUDO_*",
    "TMPDIR",
    # the service's own: where the password goes in xnat_credentials: env
    "XNAT_*",
    "SCHEDULER_SERVER*",
)

_NEVER = re.compile("|".join(_pattern.replace("?", ".").replace("*", ".*") for _pattern in NEVER), re.IGNORECASE)


class ForbiddenEnv(ValueError):
    """A variable a request may not set; ``name`` is the variable."""

    def __init__(self, name: str, problem: str):
        super().__init__(f"env.{name}: {problem}")
        self.name, self.problem = name, problem


def never_allowed(name: str) -> bool:
    return _NEVER.fullmatch(name) is not None


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


def check_pattern(pattern: str) -> str:
    """A site's allow-list entry: a name or a glob (``*``, ``?``); a name on ``NEVER`` is a mistake worth saying."""
    if not re.fullmatch(r"[A-Za-z0-9_*?]+", pattern):
        raise ValueError(f"{pattern!r}: a variable name or a glob of letters, digits, '_', '*' and '?'")
    if "*" not in pattern and "?" not in pattern and never_allowed(pattern):
        raise ValueError(
            f"{pattern} is never allowed (a shell, the loader or a tool reads it as code or configuration)"
        )
    return pattern
