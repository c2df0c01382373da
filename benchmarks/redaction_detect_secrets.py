"""Leaks of the redactor on detect-secrets' own plugin tests: the lines each plugin must and must not flag.

    git clone --depth 1 https://github.com/Yelp/detect-secrets /tmp/detect-secrets
    python benchmarks/redaction_detect_secrets.py /tmp/detect-secrets [--misses]

Nothing of detect-secrets is copied here: its plugin tests (``tests/plugins/*_test.py``) are parsed with
``ast`` from a checkout at run time, and its plugins are imported from the same checkout (they need only
PyYAML and requests, both in the test environment). A test's examples are the rows of its
``@pytest.mark.parametrize`` tables, its class's tables crossed with its own; they are evaluated from the
module's string literals, the names bound in the module and classes, ``+ * %``, slices, ``str.format`` /
``encode`` / ``decode``, ``textwrap.dedent``, ``base64.b64encode``, ``str``, ``randint`` (seeded per file, so
runs repeat) and the module's generator helpers (``for``, unpacking, ``yield``). The example is the ``line``
the test hands ``analyze_line`` or ``scan_line`` (the file content, for a test that scans a file); the last
column of the test's own table is the verdict: ``should_flag``, a number of findings, or the expected secret
(None: no finding); a table of one column lists lines that must be flagged. The secret of a positive is the
expected secret where the table gives it, else each value the plugin itself reports on the line
(``analyze_line``, so its own checks of JWTs and entropy apply), less the separators and the name its pattern
takes in and carried on to the end of the token it stops in: detect-secrets reports what ``re.findall`` gives,
``ghp`` of a GitHub token, ``=AP6...`` of an Artifactory one, a JWT without its signature. Tests that call no
detection (the verification helpers, ``find_account``, ``get_secret_access_keys``, entropy limits), findings
that are no secret (public IP addresses, the PEM header line that ``PrivateKeyDetector`` reports) and what
cannot be evaluated are skipped and counted by reason. Each secret is planted in the channels of
``redaction_eval.py`` and, as ``whole``, the example is scrubbed as it is. The negatives are the lines a
plugin must not flag: near misses of its pattern, placeholders, private addresses, secrets without the quotes
the plugin wants, so many are credentials all the same; they are reported apart, as the share altered.
"""

from __future__ import annotations

import ast
import base64
import importlib
import inspect
import itertools
import operator
import random
import string
import sys
import textwrap
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple, TypeGuard

from redaction_eval import Case, key_before, scanner_main

_PARAMETRIZE = "pytest.mark.parametrize"
_LINE_CALLS = ("analyze_line", "scan_line")  # the test hands the plugin the line
_FILE_CALL = "scan_file"  # the test writes the row's content to a file and scans it
_METHODS = ("format", "encode", "decode")
_FUNCTIONS: dict[str, Callable[..., object]] = {
    "str": str,
    "textwrap.dedent": textwrap.dedent,
    "base64.b64encode": base64.b64encode,
}
_OPERATORS: dict[type[ast.operator], Callable[[Any, Any], object]] = {
    ast.Add: operator.add,
    ast.Mult: operator.mul,
    ast.Mod: operator.mod,
}
_ERRORS = (TypeError, ValueError, KeyError, IndexError, AttributeError)
# Plugins whose findings are no secret to mask
_NOT_SECRETS = {
    "IPPublicDetector": "no secret: a public IP address",
    "PrivateKeyDetector": "no secret: the PEM header line (the examples' bodies are prose)",
}
_NO_DETECTION = "test calls no detection (verification helpers, find_*, entropy limits)"
_NO_PLUGIN = "file tests no plugin (mock plugins of base_test.py)"
_NO_FINDING = "plugin finds no secret in the line"
_NOT_VERBATIM = "secret not verbatim in the line"
_EMPTY = "plugin reports an empty value (an optional group)"
_LEFT_EDGE, _RIGHT_EDGE = " \t=:\"'", " \t\"'"  # what patterns take around a secret: (?:\s|=|:|"|^)
_TOKEN_CHARS = string.ascii_letters + string.digits + "_-.+/="
# Plugins whose pattern takes the name of the secret in
_NAMED = {"AzureStorageKeyDetector": "AccountKey="}

Env = dict[str, object]
Table = tuple[list[str], list[object]]  # (argument names, rows)


class _Unevaluated(Exception):
    """An expression outside the evaluated subset; kept in place of a value, so what uses it is skipped."""


class _Python:
    """The expressions of one test module, evaluated in an environment of names bound to values."""

    def __init__(self, module: Env, rng: random.Random, helpers: dict[str, ast.FunctionDef]) -> None:
        self.module = module
        self.functions = {**_FUNCTIONS, "randint": rng.randint}
        self.helpers = helpers  # the module's own functions, called by the tables (``parse_test_cases``)

    def value(self, node: ast.expr, env: Env) -> object:
        found = self.element(node, env)
        if isinstance(found, _Unevaluated):
            raise found
        return found

    def element(self, node: ast.expr, env: Env) -> object:
        """The value of ``node``, or the _Unevaluated saying why there is none."""
        try:
            return self._value(node, env)
        except _Unevaluated as error:
            return error
        except _ERRORS as error:
            return _Unevaluated(f"{type(error).__name__} in {ast.unparse(node)[:40]}")

    def _value(self, node: ast.expr, env: Env) -> Any:  # any value of the evaluated subset
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return _plain(env.get(node.id, _Unevaluated(f"name {node.id}")))
        if isinstance(node, (ast.Tuple, ast.List)):
            items = [self.element(item, env) for item in node.elts]
            return tuple(items) if isinstance(node, ast.Tuple) else items
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            left, right = (_plain(self._value(side, env)) for side in (node.left, node.right))
            return _OPERATORS[type(node.op)](left, right)
        if isinstance(node, ast.Subscript):
            return self._value(node.value, env)[self._index(node.slice, env)]
        if isinstance(node, ast.Call):
            return self._call(node, env)
        raise _Unevaluated(f"expression {type(node).__name__}")

    def _index(self, node: ast.expr, env: Env) -> object:
        if isinstance(node, ast.Slice):
            parts = (node.lower, node.upper, node.step)
            return slice(*(None if part is None else self._value(part, env) for part in parts))
        return self._value(node, env)

    def _call(self, node: ast.Call, env: Env) -> object:
        if any(isinstance(arg, ast.Starred) for arg in node.args) or None in [k.arg for k in node.keywords]:
            raise _Unevaluated("call with * or **")
        args = [_plain(self._value(arg, env)) for arg in node.args]
        kwargs = {str(k.arg): _plain(self._value(k.value, env)) for k in node.keywords}
        name = _dotted(node.func)
        if name in self.functions:
            return self.functions[name](*args, **kwargs)
        if name in self.helpers:
            return self._generator(self.helpers[name], args)
        if isinstance(node.func, ast.Attribute) and node.func.attr in _METHODS:
            target = self._value(node.func.value, env)
            if isinstance(target, (str, bytes)):
                return getattr(target, node.func.attr)(*args, **kwargs)
        raise _Unevaluated(f"call {name or ast.unparse(node.func)[:40]}")

    def _generator(self, function: ast.FunctionDef, args: list[object]) -> list[object]:
        """What a generator helper of the module yields, for positional arguments."""
        params = [arg.arg for arg in function.args.args]
        if len(params) != len(args):
            raise _Unevaluated(f"{function.name}: {len(args)} arguments for {len(params)}")
        found: list[object] = []
        self._run(function.body, {**self.module, **dict(zip(params, args, strict=True))}, found)
        return found

    def _run(self, body: list[ast.stmt], env: Env, found: list[object]) -> None:
        for statement in body:
            if isinstance(statement, ast.For):
                for item in self._value(statement.iter, env):
                    _bind(statement.target, item, env)
                    self._run(statement.body, env, found)
            elif isinstance(statement, ast.Assign) and len(statement.targets) == 1:
                _bind(statement.targets[0], self._value(statement.value, env), env)
            elif (
                isinstance(statement, ast.Expr)
                and isinstance(statement.value, ast.Yield)
                and statement.value.value
            ):
                found.append(self.element(statement.value.value, env))
            else:
                raise _Unevaluated(f"statement {type(statement).__name__}")


def _plain(value: object) -> object:
    """``value``, unless it is or directly holds an _Unevaluated."""
    items = value if isinstance(value, (tuple, list)) else [value]
    for item in items:
        if isinstance(item, _Unevaluated):
            raise item
    return value


def _bind(target: ast.expr, value: object, env: Env) -> None:
    if isinstance(target, ast.Name):
        env[target.id] = value
    elif isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (tuple, list)):
        if len(target.elts) != len(value):
            raise _Unevaluated("unpacking of another length")
        for item, part in zip(target.elts, value, strict=True):
            _bind(item, part, env)
    else:
        raise _Unevaluated(f"assignment to {type(target).__name__}")


def _dotted(node: ast.expr) -> str:
    """``a.b.c`` of a name or an attribute of a name; "" for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return f"{head}.{node.attr}" if head else ""
    return ""


def _tables(node: ast.FunctionDef | ast.ClassDef, env: Env, python: _Python) -> list[Table]:
    """The ``parametrize`` tables decorating a test or a class: the names and the rows, one value a name."""
    found: list[Table] = []
    for decorator in node.decorator_list:
        if not (isinstance(decorator, ast.Call) and _dotted(decorator.func) == _PARAMETRIZE):
            continue
        names_node, rows_node = decorator.args[:2]
        names = python.element(names_node, env)
        names = [name.strip() for name in names.split(",")] if isinstance(names, str) else names
        rows = python.element(rows_node, env)
        if isinstance(names, (tuple, list)) and isinstance(rows, (tuple, list)):
            found.append(([str(n) for n in names], [(row,) if len(names) == 1 else row for row in rows]))
        else:
            found.append(([], [_Unevaluated(f"table {ast.unparse(rows_node)[:40]}")]))
    return found


# (the test, the tables of its classes and its own, its own tables, the names bound where it is defined)
Test = tuple[ast.FunctionDef, list[Table], list[Table], Env]


def _tests(body: list[ast.stmt], env: Env, outer: list[Table], python: _Python) -> Iterator[Test]:
    """Each test of a module or class body, binding its imported plugins and constants on the way."""
    for statement in body:
        if isinstance(statement, ast.ImportFrom) and (statement.module or "").startswith(
            "detect_secrets.plugins."
        ):
            module = importlib.import_module(str(statement.module))
            for alias in statement.names:
                env[alias.asname or alias.name] = getattr(module, alias.name)
        elif (
            isinstance(statement, ast.Assign)
            and len(statement.targets) == 1
            and isinstance(statement.targets[0], ast.Name)
        ):
            env[statement.targets[0].id] = python.element(statement.value, env)
        elif isinstance(statement, ast.ClassDef):
            yield from _tests(statement.body, dict(env), outer + _tables(statement, env, python), python)
        elif isinstance(statement, ast.FunctionDef) and statement.name.startswith("test"):
            own = _tables(statement, env, python)
            if own:
                yield statement, outer + own, own, env


def _is_plugin(value: object) -> TypeGuard[type[Any]]:
    return inspect.isclass(value) and hasattr(value, "analyze_line") and not inspect.isabstract(value)


def _plugins(tree: ast.Module, module: Env) -> list[type[Any]]:
    """The plugins a test module imports, and those its settings name (``{'name': 'PrivateKeyDetector'}``)."""
    util = importlib.import_module("detect_secrets.core.plugins.util")
    by_name = {cls.__name__: cls for cls in util.get_mapping_from_secret_type_to_class().values()}
    named = [
        by_name[value.value]
        for node in ast.walk(tree)
        if isinstance(node, ast.Dict)
        for key, value in zip(node.keys, node.values, strict=True)
        if isinstance(key, ast.Constant) and key.value == "name" and isinstance(value, ast.Constant)
        if value.value in by_name
    ]
    return list(dict.fromkeys([value for value in module.values() if _is_plugin(value)] + named))


def _detection(test: ast.FunctionDef) -> tuple[ast.expr | None, ast.expr | None] | None:
    """(line, filename) handed to the first ``analyze_line`` / ``scan_line`` call of the test, (None, None)
    for a test that scans a file, None for a test that calls no detection."""
    calls = [node for node in ast.walk(test) if isinstance(node, ast.Call)]
    for call in calls:
        if _called(call) in _LINE_CALLS:
            given = {k.arg: k.value for k in call.keywords}
            return given.get("line", call.args[0] if call.args else None), given.get("filename")
    if any(_called(call) == _FILE_CALL for call in calls):
        return None, None
    return None


def _called(call: ast.Call) -> str:
    """The name of the function or method called: ``analyze_line`` of ``plugin().analyze_line(...)``."""
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _verdict(label: object) -> tuple[bool, str | None]:
    """(flagged, the expected secret) of a table's last column."""
    if isinstance(label, bool):
        return label, None
    if isinstance(label, int):
        return label > 0, None
    if label is None or isinstance(label, str):
        return label is not None, label
    raise _Unevaluated(f"verdict {type(label).__name__}")


def _secrets(plugin: type[Any], text: str, filename: str) -> list[str]:
    """The secrets behind the values the plugin reports on the line, left to right."""
    found = {str(secret.secret_value) for secret in plugin().analyze_line(filename=filename, line=text)}
    return [_token(plugin.__name__, text, value) for value in sorted(found, key=lambda v: (text.find(v), v))]


def _token(plugin: str, text: str, value: str) -> str:
    """The secret of a value a plugin reports (what ``re.findall`` gives): less the separators its pattern
    takes around the secret and the name before it, and on to the end of the token where the value stops
    inside one (a prefix group, ``(ghp|gho)_...``, gives only ``ghp``; the JWT pattern stops before the
    signature). "" when the value is empty."""
    found = text.find(value)
    core = value.lstrip(_LEFT_EDGE).removeprefix(_NAMED.get(plugin, ""))
    start = found + len(value) - len(core)
    end = start + len(core.rstrip(_RIGHT_EDGE))
    if value and end == found + len(value):  # nothing stripped on the right: the token may go on
        rest = text[end:]
        end += len(rest) - len(rest.lstrip(_TOKEN_CHARS))
    return text[start:end]


class _Example(NamedTuple):
    plugin: str
    text: str
    secrets: list[str] | None  # None for a negative


def _examples(test: Test, python: _Python, plugins: list[type[Any]]) -> Iterator[_Example | str]:
    """Each row of the test as an example, or the reason it is skipped."""
    function, tables, own, env = test
    detection = _detection(function)
    combinations = list(itertools.product(*(rows for _, rows in tables)))
    if detection is None or not plugins:
        yield from [_NO_DETECTION if detection is None else _NO_PLUGIN] * len(combinations)
        return
    line_node, filename_node = detection
    own_names = [name for names, _ in own for name in names]
    for rows in combinations:
        try:
            params: Env = {}
            for (names, _), given in zip(tables, rows, strict=True):
                row = _plain(given)
                if not isinstance(row, (tuple, list)) or len(row) != len(names):
                    raise _Unevaluated("row of another length")
                params.update(zip(names, row, strict=True))
            local = {**env, **params}
            texts = [params[name] for name in own_names if isinstance(params[name], str)]
            text = python.value(line_node, local) if line_node else texts[0] if len(texts) == 1 else None
            if not isinstance(text, str):
                raise _Unevaluated("line not a string")
            flagged, expected = _verdict(params[own_names[-1]]) if len(own_names) > 1 else (True, None)
            filename = python.value(filename_node, local) if filename_node else "mock_filename"
        except _Unevaluated as error:
            yield str(error)
            continue
        for plugin in [value for value in params.values() if _is_plugin(value)] or plugins:
            name = plugin.__name__
            if not flagged:
                yield _Example(name, text, None)
            elif name in _NOT_SECRETS:
                yield _NOT_SECRETS[name]
            else:
                yield _Example(name, text, [expected] if expected else _secrets(plugin, text, str(filename)))


def load(root: Path) -> tuple[list[Case], list[tuple[str, str]], Counter[str]]:
    """(plugin, example, secret, key name) per secret of each distinct positive; (plugin, line) of the
    negatives; the rows skipped, by reason."""
    if not (root / "detect_secrets" / "plugins").is_dir():
        sys.exit(f"{root}: no detect_secrets/plugins there, not a checkout of Yelp/detect-secrets")
    sys.path.insert(0, str(root))
    cases: dict[tuple[str, str, str], str] = {}
    negatives: dict[tuple[str, str], None] = {}
    skipped: Counter[str] = Counter()
    for path in sorted((root / "tests" / "plugins").glob("*_test.py")):
        tree = ast.parse(path.read_text())
        module: Env = {}
        helpers = {
            node.name: node
            for node in tree.body
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("test")
        }
        python = _Python(module, random.Random(f"detect-secrets {path.name}"), helpers)
        tests = list(_tests(tree.body, module, [], python))
        plugins = _plugins(tree, module)
        for found in (example for test in tests for example in _examples(test, python, plugins)):
            if isinstance(found, str):
                skipped[found] += 1
                continue
            if found.secrets is None:
                negatives[found.plugin, found.text] = None
            elif not found.secrets:
                skipped[_NO_FINDING] += 1
            for secret in found.secrets or []:
                if secret and secret in found.text:
                    cases[found.plugin, found.text, secret] = key_before(found.text, found.text.index(secret))
                else:
                    skipped[_NOT_VERBATIM if secret else _EMPTY] += 1
    return [(*k, v) for k, v in cases.items()], list(negatives), skipped


def _load(root: Path) -> tuple[list[Case], list[str], list[str]]:
    cases, negatives, skipped = load(root)
    per_plugin = Counter(plugin for plugin, *_ in cases)
    notes = [
        "detect-secrets cases per plugin: "
        + ", ".join(f"{plugin} {n}" for plugin, n in sorted(per_plugin.items())),
        f"detect-secrets rows skipped: {skipped.total()} ("
        + ", ".join(f"{reason} {n}" for reason, n in skipped.most_common())
        + ")",
    ]
    return cases, [text for _, text in negatives], notes


def main() -> None:
    near_misses = "lines a plugin must not flag: many are credentials"
    scanner_main(__doc__ or "", "detect-secrets", "Yelp/detect-secrets", _load, near_misses)


if __name__ == "__main__":
    main()
