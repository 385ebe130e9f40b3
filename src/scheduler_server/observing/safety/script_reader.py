"""Reading a command script into the calls it makes, for the safety checker.

Two shapes are read: the seed's (``from sorunlib import *``, calls such as ``acu.move_to(...)``) and
the observatory's sequencer scripts (``import sorunlib as run``, ``run.acu.move_to(az=..., el=...)``,
``time.sleep(...)``, a preamble of monitor reads and ``assert`` checks). A line holding one call with
literal arguments is read with anchored regular expressions, much faster than building Python's syntax
tree; any other statement is handed to ``ast``: the lines from it up to where they parse as whole
statements (a call written over several lines, an assert), or, if that fails, the whole script. So the
fast path only decides for lines whose meaning is beyond doubt; both give the same calls (checked in
the tests).

An ``assert`` of the preamble's kind (monitor reads compared with constants) stops the script where it
does not hold, so what it asserts is known afterwards: it is read as a call ``assert`` with the fact
it states (``("el", 60.0)``, ``("hwp_spinning", False)``, ...), or ``("other", None)``. Asserts and
assignments are understood only in the sequencer shape, and only of reads (``.status()``, subscripts,
``np.isclose``, ``socket.gethostname()``); anything else is reported as not understood.
"""

from __future__ import annotations

import ast
import operator
import re
from dataclasses import dataclass, field, replace

STAR_IMPORTS = {("sorunlib", "*"), ("nextline", "disable_trace")}
RUN_IMPORTS = {("nextline", "disable_trace"), ("ocs.ocs_client", "OCSClient")}
PLAIN_IMPORTS = {("sorunlib", "run"), ("numpy", "np"), ("socket", None), ("time", None)}
RESERVED = {"run", "time", "np", "socket", "disable_trace", "OCSClient"}  # names a script may not rebind
_IMPORT_LINES = {
    "from sorunlib import *": None,
    "from nextline import disable_trace": None,
    "import sorunlib as run": "run",
    "import numpy as np": None,
    "import socket": None,
    "import time": None,
    "from ocs.ocs_client import OCSClient": None,
}
_CALL = re.compile(r"(?P<name>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\((?P<args>.*)\)")
_ARGUMENT = re.compile(
    r"\s*(?:(?P<key>[A-Za-z_]\w*)=)?"
    r"(?P<value>'[^'\\\n]*'|\"[^\"\\\n]*\"|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|True|False|None)"
    r"\s*(?:,|$)"
)
_CONSTANTS = {"True": True, "False": False, "None": None}
_MAX_STATEMENT_LINES = 60
_ARITHMETIC = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_OPERATORS = (ast.cmpop, ast.boolop, ast.unaryop, ast.operator, ast.expr_context)
_POSITION_KEYS = {
    "Elevation current position": "el",
    "Boresight current position": "boresight",
    "Azimuth current position": "az",
}


@dataclass(frozen=True, slots=True)
class Call:
    line: int
    name: str  # "wait_until", "acu.move_to", "run.seq.scan", "assert", "=" (a name bound to a read);
    #            "" when the callee is not a plain name
    args: tuple
    kwargs: dict


@dataclass
class Reading:
    calls: list[Call] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    header: dict[str, str] = field(default_factory=dict)  # the leading "# key: value" comment lines
    shape: str = "star"  # "run" once ``import sorunlib as run`` was read


_PLATFORM_LINE = re.compile(r"^\s*#\s*platform\s*:", re.IGNORECASE)


def read_script(text: str) -> Reading:
    reading = _read_simple(text) or _read_ast(text)
    reading.header = _header(text)
    platforms = [n for n, line in enumerate(text.split("\n"), 1) if _PLATFORM_LINE.match(line)]
    reading.problems += [
        f"line {n}: a second '# platform:' line (the first is line {platforms[0]})" for n in platforms[1:]
    ]
    return reading


def _header(text: str) -> dict[str, str]:
    header: dict[str, str] = {}
    for raw in text.split("\n"):
        line = raw.strip()
        if not line:
            continue
        if not line.startswith("#"):
            break
        key, colon, value = line.lstrip("#").partition(":")
        if colon and key.strip():
            header.setdefault(key.strip().lower(), value.strip())
    return header


def _read_simple(text: str) -> Reading | None:
    reading = Reading()
    in_with = False
    # A schedule repeats the same few lines (smurf.bias_step() and the like) hundreds
    # of times: each distinct line is parsed once. Calls read from equal lines share
    # their (never modified) kwargs.
    parsed: dict[str, tuple | None] = {}
    alone: dict[str, list[Call]] = {}
    lines = text.split("\n")
    number = 0
    while number < len(lines):
        raw = lines[number]
        number += 1
        line = raw.rstrip()
        if not line:
            continue
        if line.startswith("    ") and in_with:
            line = line[4:]
        elif line[0].isspace():
            return None
        else:
            in_with = False
        if line.startswith("#"):
            continue
        if line in _IMPORT_LINES:
            if _IMPORT_LINES[line] == "run":
                reading.shape = "run"
            continue
        if line == "with disable_trace():":
            in_with = True
            continue
        if line not in parsed:
            parsed[line] = _simple_call(line)
        call = parsed[line]
        if call is not None:
            reading.calls.append(Call(number, *call))
            continue
        if in_with:
            return None
        used = _not_simple(lines, number, line, alone, reading)
        if used is None:
            return None
        number += used - 1
    return reading


def _not_simple(lines: list[str], number: int, line: str, alone: dict[str, list[Call]], reading: Reading) -> int | None:
    """A line the expressions do not read (a call with a dict argument, an assert, an assignment), line
    ``number``: read with ast, from it to where the lines parse; a statement on one line is kept for its
    repeats in ``alone``. How many lines it took, or None if they never parse."""
    if line not in alone:
        mini = Reading(shape=reading.shape)
        used = _statement(lines, number - 1, mini)
        if used is None:
            return None
        if used > 1 or mini.problems or mini.shape != reading.shape:
            reading.calls += mini.calls
            reading.problems += mini.problems
            reading.shape = mini.shape
            return used
        alone[line] = mini.calls
    reading.calls.extend(replace(c, line=number) for c in alone[line])
    return 1


def _statement(lines: list[str], start: int, reading: Reading) -> int | None:
    """Read the statement(s) from ``lines[start]`` with ``ast``, on as few lines as parse; how many it took."""
    for count in range(1, min(_MAX_STATEMENT_LINES, len(lines) - start) + 1):
        chunk = "\n".join(lines[start : start + count])
        try:
            tree = ast.parse(chunk)
        except SyntaxError:
            continue
        if start:
            ast.increment_lineno(tree, start)
        _statements(tree.body, chunk, reading, start)
        return count
    return None


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


def _statements(body, text: str, reading: Reading, offset: int = 0) -> None:
    for node in body:
        if _import(node, reading):
            continue
        if isinstance(node, ast.With) and len(node.items) == 1 and _name(node.items[0].context_expr) == "disable_trace":
            _statements(node.body, text, reading, offset)
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            _call(node, reading)
            continue
        if reading.shape == "run" and _read_only_statement(node, reading):
            continue
        segment = ast.get_source_segment(text, _shifted(node, -offset)) or type(node).__name__
        statement = segment.splitlines()[0][:60]
        reading.problems.append(f"line {node.lineno}: cannot tell what `{statement}` does to the telescope")


def _import(node, reading: Reading) -> bool:
    if isinstance(node, ast.ImportFrom):
        allowed = STAR_IMPORTS | RUN_IMPORTS
        return all((node.module, a.name) in allowed and a.asname is None for a in node.names)
    if isinstance(node, ast.Import) and all((a.name, a.asname) in PLAIN_IMPORTS for a in node.names):
        if any(a.name == "sorunlib" for a in node.names):
            reading.shape = "run"
        return True
    return False


def _call(node: ast.Expr, reading: Reading) -> None:
    call = node.value
    if any(isinstance(a, ast.Starred) for a in call.args) or any(kw.arg is None for kw in call.keywords):
        reading.problems.append(f"line {node.lineno}: arguments must be written out, not unpacked")
        return
    names = [kw.arg for kw in call.keywords]
    if len(set(names)) < len(names):
        # ast.parse takes this; Python's compiler refuses it ("keyword argument repeated")
        reading.problems.append(f"line {node.lineno}: not valid Python: keyword argument repeated")
        return
    try:
        args = tuple(_literal(a) for a in call.args)
        kwargs = {kw.arg: _literal(kw.value) for kw in call.keywords}
    except ValueError:
        reading.problems.append(f"line {node.lineno}: {_name(call.func) or 'call'}(): arguments must be literal values")
        return
    reading.calls.append(Call(node.lineno, _name(call.func) or "", args, kwargs))


def _read_only_statement(node, reading: Reading) -> bool:
    """An assert of reads (read as the fact it states), or a read kept in a name; else False."""
    if isinstance(node, ast.Assert) and _reads_only(node.test) and (node.msg is None or _reads_only(node.msg)):
        reading.calls.append(Call(node.lineno, "assert", _fact(node.test), {}))
        return True
    if (
        isinstance(node, ast.Assign)
        and len(node.targets) == 1
        and isinstance(node.targets[0], ast.Name)
        and node.targets[0].id not in RESERVED
        and _reads_only(node.value)
    ):
        reading.calls.append(Call(node.lineno, "=", (node.targets[0].id, ast.unparse(node.value)), {}))
        return True
    return False


def _reads_only(node) -> bool:
    """Whether evaluating ``node`` only reads: names, constants, subscripts, comparisons, status reads."""
    if isinstance(node, ast.Call):
        func = node.func
        dotted = _name(func)
        if node.keywords and dotted != "np.isclose":
            return False
        if dotted in ("np.isclose", "socket.gethostname", "OCSClient"):
            return all(_reads_only(a) for a in node.args) and all(_reads_only(k.value) for k in node.keywords)
        if isinstance(func, ast.Attribute) and not node.args:
            if func.attr == "status":
                return _reads_only(func.value)
            # OCSClient('x').acq(): calling a process op object reads its status (ocs MatchedProcess.__call__)
            return func.attr == "acq" and isinstance(func.value, ast.Call) and _name(func.value.func) == "OCSClient"
        return False
    if isinstance(node, (ast.Constant, ast.Name)):
        return True
    if isinstance(node, (ast.Attribute, ast.Subscript)):
        return _reads_only(node.value) and (not isinstance(node, ast.Subscript) or _reads_only(node.slice))
    if isinstance(node, (ast.Compare, ast.BoolOp, ast.UnaryOp, ast.Tuple, ast.List, ast.BinOp)):
        return all(_reads_only(child) for child in ast.iter_child_nodes(node) if not isinstance(child, _OPERATORS))
    return False


def _fact(test) -> tuple:
    """What a preamble assert states: ("el"|"boresight"|"az", value, atol), ("hwp_spinning", bool),
    ("hwp_dir", "ccw"|"cw"), ("sun_radius", deg), ("hostname", name), or ("other", None)."""
    if isinstance(test, ast.Call) and _name(test.func) == "np.isclose" and len(test.args) == 2:
        key = _POSITION_KEYS.get(next(iter(_strings(test.args[0]) & set(_POSITION_KEYS)), ""))
        value = _number(test.args[1])
        atol = next((_number(k.value) for k in test.keywords if k.arg == "atol"), None)
        if key and value is not None:
            return (key, value, 1e-8 if atol is None else atol)
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.comparators[0], ast.Constant):
        left, op, right = test.left, test.ops[0], test.comparators[0].value
        keys = _strings(left)
        if isinstance(op, ast.Eq) and "is_spinning" in keys and isinstance(right, bool):
            return ("hwp_spinning", right)
        if isinstance(op, ast.Eq) and isinstance(left, ast.Compare) and isinstance(right, bool):
            inner = _fact(left)
            if inner[0] == "hwp_dir":
                return ("hwp_dir", inner[1] if right else {"ccw": "cw", "cw": "ccw"}[inner[1]])
        if isinstance(op, ast.Eq) and "direction" in keys and right in ("ccw", "cw"):
            return ("hwp_dir", right)
        if (
            isinstance(op, (ast.LtE, ast.Lt))
            and "exclusion_radius" in keys
            and _number(test.comparators[0]) is not None
        ):
            return ("sun_radius", float(right))
        if isinstance(op, ast.Eq) and isinstance(left, ast.Call) and _name(left.func) == "socket.gethostname":
            return ("hostname", right)
    return ("other", None)


def _strings(node) -> set[str]:
    return {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def _number(node) -> float | None:
    try:
        value = ast.literal_eval(node)
    except ValueError:
        return None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _shifted(node, lines: int):
    """A copy of ``node``'s position, ``lines`` earlier or later (for source segments of a chunk)."""
    copy = ast.Expr()
    copy.lineno, copy.end_lineno = node.lineno + lines, node.end_lineno + lines
    copy.col_offset, copy.end_col_offset = node.col_offset, node.end_col_offset
    return copy


def _literal(node):
    """A literal value; also arithmetic on numbers (schedlib writes ``'cool_wait': 60*5``)."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        left, right = _literal(node.left), _literal(node.right)
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right)):
            try:
                return _ARITHMETIC[type(node.op)](left, right)
            except (ArithmeticError, ValueError):
                raise ValueError("not a literal value") from None
        raise ValueError("not a literal value")
    if isinstance(node, ast.Dict) and None not in node.keys:  # (None: a ** unpacking)
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values, strict=True)}
    if isinstance(node, (ast.List, ast.Tuple)):
        values = [_literal(e) for e in node.elts]
        return values if isinstance(node, ast.List) else tuple(values)
    return ast.literal_eval(node)


def _name(node) -> str | None:
    if isinstance(node, ast.Call):
        node = node.func
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(parts)])
    return None
