"""Reading a command script into the calls it makes, for the safety checker.

A script in the shape the policies emit (imports, one ``with disable_trace():``
block, comments and one call per line with literal arguments) is read line by line
with anchored regular expressions, much faster than building Python's
syntax tree. Anything else, down to a trailing comment or an unusual spacing, is
read with ``ast`` instead, so the fast path only ever decides for scripts whose
meaning is beyond doubt; both give the same calls (checked in the tests).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

ALLOWED_IMPORTS = {("sorunlib", "*"), ("nextline", "disable_trace")}
_IMPORT_LINES = {"from sorunlib import *", "from nextline import disable_trace"}
_CALL = re.compile(r"(?P<name>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)?)\((?P<args>.*)\)")
_ARGUMENT = re.compile(
    r"\s*(?:(?P<key>[A-Za-z_]\w*)=)?"
    r"(?P<value>'[^'\\\n]*'|\"[^\"\\\n]*\"|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|True|False|None)"
    r"\s*(?:,|$)"
)
_CONSTANTS = {"True": True, "False": False, "None": None}


@dataclass(frozen=True, slots=True)
class Call:
    line: int
    name: str  # "wait_until", "acu.move_to", ...; "" when the callee is not a plain name
    args: tuple
    kwargs: dict


@dataclass
class Reading:
    calls: list[Call] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def read_script(text: str) -> Reading:
    return _read_simple(text) or _read_ast(text)


def _read_simple(text: str) -> Reading | None:
    reading = Reading()
    in_with = False
    # A schedule repeats the same few lines (smurf.bias_step() and the like) hundreds
    # of times: each distinct line is parsed once. Calls read from equal lines share
    # their (never modified) kwargs.
    parsed: dict[str, tuple | None] = {}
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip()
        if not line:
            continue
        if line.startswith("    ") and in_with:
            line = line[4:]
        elif line[0].isspace():
            return None
        else:
            in_with = False
        if line.startswith("#") or line in _IMPORT_LINES:
            continue
        if line == "with disable_trace():":
            in_with = True
            continue
        if line not in parsed:
            parsed[line] = _simple_call(line)
        call = parsed[line]
        if call is None:
            return None
        reading.calls.append(Call(number, *call))
    return reading


def _simple_call(line: str) -> tuple[str, tuple, dict] | None:
    match = _CALL.fullmatch(line)
    if match is None:
        return None
    text, position = match.group("args"), 0
    args: list = []
    kwargs: dict = {}
    while position < len(text):
        arg = _ARGUMENT.match(text, position)
        if arg is None or arg.end() == position:
            return None
        key, value = arg.group("key"), _value(arg.group("value"))
        if key is None:
            if kwargs:
                return None  # a positional argument after a keyword: let ast say so
            args.append(value)
        elif key in kwargs:
            return None
        else:
            kwargs[key] = value
        position = arg.end()
    if text.strip() and text.rstrip().endswith(","):
        return None
    return match.group("name"), tuple(args), kwargs


def _value(token: str):
    if token[0] in "'\"":
        return token[1:-1]
    if token in _CONSTANTS:
        return _CONSTANTS[token]
    if any(c in token for c in ".eE"):
        return float(token)
    return int(token)


def _read_ast(text: str) -> Reading:
    reading = Reading()
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        reading.problems.append(f"line {exc.lineno}: not valid Python: {exc.msg}")
        return reading
    _statements(tree.body, text, reading)
    return reading


def _statements(body, text: str, reading: Reading) -> None:
    for node in body:
        if isinstance(node, ast.ImportFrom) and all((node.module, a.name) in ALLOWED_IMPORTS for a in node.names):
            continue
        if isinstance(node, ast.With) and len(node.items) == 1 and _name(node.items[0].context_expr) == "disable_trace":
            _statements(node.body, text, reading)
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            call = node.value
            if any(isinstance(a, ast.Starred) for a in call.args) or any(kw.arg is None for kw in call.keywords):
                reading.problems.append(f"line {node.lineno}: arguments must be written out, not unpacked")
                continue
            try:
                args = tuple(_literal(a) for a in call.args)
                kwargs = {kw.arg: _literal(kw.value) for kw in call.keywords}
            except ValueError:
                reading.problems.append(
                    f"line {node.lineno}: {_name(call.func) or 'call'}(): arguments must be literal values"
                )
                continue
            reading.calls.append(Call(node.lineno, _name(call.func) or "", args, kwargs))
            continue
        statement = (ast.get_source_segment(text, node) or type(node).__name__).splitlines()[0][:60]
        reading.problems.append(f"line {node.lineno}: cannot tell what `{statement}` does to the telescope")


def _literal(node):
    if isinstance(node, ast.Constant):
        return node.value
    return ast.literal_eval(node)


def _name(node) -> str | None:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return f"{node.value.id}.{node.attr}"
    return None
