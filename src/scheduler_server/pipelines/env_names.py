"""Environment variable names: what a valid one is, and which ones are never settable (they run code).

A leaf shared by the settings (a site's ``pipelines.allowed_env_names`` may not name one of
``NEVER``) and the tasks (a request may set only allowed names, see ``tasks/environment.py``).
"""

from __future__ import annotations

import re

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


def never_allowed(name: str) -> bool:
    return _NEVER.fullmatch(name) is not None


def check_pattern(pattern: str) -> str:
    """A site's allow-list entry: a name or a glob (``*``, ``?``); a name on ``NEVER`` is a mistake worth saying."""
    if not re.fullmatch(r"[A-Za-z0-9_*?]+", pattern):
        raise ValueError(f"{pattern!r}: a variable name or a glob of letters, digits, '_', '*' and '?'")
    if "*" not in pattern and "?" not in pattern and never_allowed(pattern):
        raise ValueError(
            f"{pattern} is never allowed (a shell, the loader or a tool reads it as code or configuration)"
        )
    return pattern
