"""Inlining: a function made again from its own source, with calls of small lambdas replaced by their bodies.

The engine's float fast path (`engine._method`) calls an op's two rule functions, `forward(FLOAT_MATH, x)`
and `local(FLOAT_MATH, out, x)`: two Python calls of a ~300 ns op. `inlined(unary, ("forward", "local"),
("FLOAT_MATH",))` returns the same function with those calls replaced by the lambdas' own expressions and
`FLOAT_MATH.exp` read once, when it is made: for `exp`, the body computes `out = exp(x)` and the local
derivatives `(out,)` in place. Nothing per op is written here: the expressions are the rules'. The node
itself is made by `engine._node`, a builder (a def of assignments and a return): `return _node(...)` and
`x = _node(...)` are replaced by its lines, the arguments bound to names first, in order, as the call
would evaluate them (all but constants and the caller's own locals, which read the same later).

What is inlined is only what is certainly the same: a plain lambda (no closure, defaults or *args) whose
body names only its parameters, called with plain names or constants as arguments (so no argument is
evaluated twice, skipped or reordered); a builder of the caller's own module (so its lines read the same
globals) whose locals are renamed apart from the caller's. Its source is recovered from the file its
code came from (`linecache`, so a notebook cell works too) and checked to compile to the very code the
function runs. Anything else returns None, and the caller keeps the function it has.

This module must not import the engine: the engine imports it.
"""

from __future__ import annotations

import ast
import inspect
import linecache
import pickle
import types
import weakref
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])
N = TypeVar("N", bound=ast.AST)
_NOT_INLINABLE = (inspect.CO_VARARGS | inspect.CO_VARKEYWORDS | inspect.CO_GENERATOR | inspect.CO_COROUTINE
                  | inspect.CO_ASYNC_GENERATOR | inspect.CO_ITERABLE_COROUTINE)
# Nodes with a scope of their own, or that bind a name: renaming parameters through them is not safe.
_SCOPED = (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.NamedExpr, ast.Yield,
           ast.YieldFrom, ast.Await)


@lru_cache(maxsize=16)
def _nodes_by_line(text: str) -> dict[int, list[ast.Lambda | ast.FunctionDef]]:
    """The lambdas and defs of a file's text, by the line they start on (where their code says it starts)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return {}
    nodes: dict[int, list[ast.Lambda | ast.FunctionDef]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Lambda | ast.FunctionDef):
            nodes.setdefault(node.lineno, []).append(node)
    return nodes


def _same_code(a: types.CodeType, b: types.CodeType) -> bool:
    return (a.co_code, a.co_consts, a.co_names, a.co_varnames, a.co_freevars) == (
        b.co_code, b.co_consts, b.co_names, b.co_varnames, b.co_freevars)


def _inner_code(code: types.CodeType, name: str) -> types.CodeType | None:
    """The code object named `name` among code's constants, searched depth first."""
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            if const.co_name == name:
                return const
            if (found := _inner_code(const, name)) is not None:
                return found
    return None


def _factory(node: ast.stmt, params: Sequence[str], name: str) -> ast.Module:
    """`def __factory__(*params): <node>; return name`: the node compiled with `params` as its free names."""
    args = ast.arguments(posonlyargs=[], args=[ast.copy_location(ast.arg(p), node) for p in params],
                         kwonlyargs=[], kw_defaults=[], defaults=[])
    back = ast.copy_location(ast.Return(ast.copy_location(ast.Name(name, ast.Load()), node)), node)
    factory = ast.FunctionDef("__factory__", args, [node, back], [], None)
    return ast.Module([ast.copy_location(factory, node)], [])


_FOUND: weakref.WeakKeyDictionary[types.CodeType, ast.Lambda | ast.FunctionDef] = (
    weakref.WeakKeyDictionary())  # a code object's source node: code never changes, so neither does it


def source_node(fn: types.FunctionType) -> ast.Lambda | ast.FunctionDef | None:
    """The node of `fn`'s own source (a lambda, or a plain def) that compiles to `fn.__code__`, or None
    (no source, an edited file, a builtin)."""
    code = fn.__code__
    found = _FOUND.get(code)
    if found is not None:
        return found
    lines = linecache.getlines(code.co_filename, fn.__globals__)
    for node in _nodes_by_line("".join(lines)).get(code.co_firstlineno, []) if lines else []:
        if isinstance(node, ast.Lambda) and code.co_name == "<lambda>":
            target = ast.copy_location(ast.Name("__f__", ast.Store()), node)
            wrapped: ast.stmt = ast.copy_location(ast.Assign([target], node), node)
        elif isinstance(node, ast.FunctionDef) and node.name == code.co_name and not node.decorator_list:
            wrapped = node
        else:
            continue
        name = "__f__" if isinstance(node, ast.Lambda) else node.name
        try:
            compiled = compile(_factory(wrapped, code.co_freevars, name), code.co_filename, "exec",
                               dont_inherit=True)
        except (SyntaxError, ValueError):
            continue
        inner = _inner_code(compiled, code.co_name)
        if inner is not None and _same_code(inner, code):
            found = node
            break
    if found is not None:  # (none found may change: a notebook's cell registered later)
        _FOUND[code] = found
    return found


def _copy(node: N) -> N:
    """A deep copy of an AST (pickle's: ~3x quicker than copy.deepcopy's)."""
    return pickle.loads(pickle.dumps(node))  # type: ignore[no-any-return]


def _is_atom(node: ast.expr) -> bool:
    return isinstance(node, ast.Name | ast.Constant)


def _pure(node: ast.expr, fast: frozenset[str]) -> bool:
    """A constant, a plain local of the caller (in `fast`), or a tuple of them: evaluated later it gives the
    same (a new tuple if not empty, so it may be put in one place only), and it cannot fail or act."""
    return (isinstance(node, ast.Constant) or (isinstance(node, ast.Name) and node.id in fast)
            or (isinstance(node, ast.Tuple) and all(_pure(e, fast) for e in node.elts)))


def body(fn: Any, args: Sequence[ast.expr]) -> ast.expr | None:
    """The body of the lambda `fn` with its parameters replaced by `args` (names or constants), or None
    when it is not certainly the same as calling fn with them (see the module's docstring)."""
    if type(fn) is not types.FunctionType or fn.__closure__ or fn.__defaults__ or fn.__kwdefaults__:
        return None
    code = fn.__code__
    if (code.co_flags & _NOT_INLINABLE or code.co_kwonlyargcount or code.co_argcount != len(args)
            or not all(map(_is_atom, args))):
        return None
    node = source_node(fn)
    if not isinstance(node, ast.Lambda):
        return None
    params = dict(zip((a.arg for a in node.args.args), args, strict=True))
    expr = _copy(node.body)
    for sub in ast.walk(expr):
        if isinstance(sub, _SCOPED) or (isinstance(sub, ast.Name) and sub.id not in params):
            return None  # a global, a builtin, or a name bound inside: not inlined
    return _Rename(params).visit(expr)  # type: ignore[no-any-return]


def expression(fn: Any, names: Sequence[str]) -> str | None:
    """The lambda fn's body as source text, its parameters renamed to `names`: `expression(lambda m, x:
    m.exp(x), ("m", "v"))` is "m.exp(v)". None when it cannot be inlined."""
    expr = body(fn, [ast.Name(n, ast.Load()) for n in names])
    return None if expr is None else ast.unparse(expr)


class _Rename(ast.NodeTransformer):
    def __init__(self, params: dict[str, ast.expr]) -> None:
        self.params = params

    def visit_Name(self, node: ast.Name) -> ast.expr:
        return _copy(self.params[node.id])


def _builder(fn: Any, home: dict[str, Any]) -> ast.FunctionDef | None:
    """fn's def if it is a builder `inlined` can put in place of a call from a function whose globals are
    `home`: fn's globals too (its lines then read the same names), plain parameters, then only
    assignments (no branch, loop or nested scope) and a last `return`."""
    if (type(fn) is not types.FunctionType or fn.__globals__ is not home or fn.__closure__ or fn.__defaults__
            or fn.__kwdefaults__):
        return None
    code = fn.__code__
    node = source_node(fn)
    if (code.co_flags & _NOT_INLINABLE or code.co_kwonlyargcount or not isinstance(node, ast.FunctionDef)
            or node.args.posonlyargs or node.args.vararg or node.args.kwarg):
        return None
    *steps, last = _statements_of(node)
    if (not isinstance(last, ast.Return) or last.value is None
            or not all(isinstance(s, ast.Assign) for s in steps)
            or any(isinstance(n, _SCOPED) for s in node.body for n in ast.walk(s))):
        return None
    return node


def _statements_of(node: ast.FunctionDef) -> list[ast.stmt]:
    """A def's statements, its docstring left out."""
    return [s for s in node.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]


def statements(fn: Any, args: Sequence[ast.expr], site: ast.Return | ast.Assign, taken: set[str],
               home: dict[str, Any], fast: frozenset[str] = frozenset()) -> list[ast.stmt] | None:
    """`site` (`return fn(*args)` or `x = fn(*args)`, fn a `_builder`) as fn's own statements: the
    arguments bound to names first, in order (as the call evaluates them), fn's parameters and locals
    renamed apart from the caller's (`taken`), the returned value returned or stored. An argument is put
    in place of its parameter, not bound, only where reading it later reads the same: a constant; a
    tuple of the caller's own plain locals (`fast`, which evaluating the other arguments cannot rebind)
    used once; such a local used at least once. None when that is not certainly the same (an argument
    that binds a name or is starred, a global of fn that the caller has as a name)."""
    node = _builder(fn, home)
    if node is None or len(args) != len(node.args.args):
        return None
    if any(isinstance(a, ast.Starred) for a in args) or any(
            isinstance(n, ast.NamedExpr | ast.Lambda) for a in args for n in ast.walk(a)):
        return None
    params = [a.arg for a in node.args.args]
    assigned = {n.id for s in node.body for n in ast.walk(s) if isinstance(n, ast.Name)
                and isinstance(n.ctx, ast.Store)}
    free = {n.id for s in node.body for n in ast.walk(s) if isinstance(n, ast.Name)} - assigned - set(params)
    if assigned & set(params) or free & taken:
        return None  # a parameter rebound, or a global of fn that the caller has as a name of its own
    names: dict[str, str] = {}

    def fresh(name: str) -> str:
        new = f"{node.name}_{name}"
        while new in taken:
            new += "_"
        taken.add(new)
        names[name] = new
        return new

    out: list[ast.stmt] = []
    given: dict[str, ast.expr] = {}
    uses = [n.id for s in node.body for n in ast.walk(s) if isinstance(n, ast.Name)]
    for param, arg in zip(params, args, strict=True):
        if (isinstance(arg, ast.Constant) or (isinstance(arg, ast.Name) and arg.id in fast and param in uses)
                or (_pure(arg, fast) and uses.count(param) == 1)):  # in place: no name to bind it to
            given[param] = arg
        else:
            out.append(ast.Assign([ast.Name(fresh(param), ast.Store())], arg, lineno=site.lineno))
    for name in sorted(assigned):
        fresh(name)
    renamer = _Locals(given, names)
    *steps, last = [renamer.visit(_copy(s)) for s in _statements_of(node)]
    out += steps
    assert isinstance(last, ast.Return) and last.value is not None
    out.append(ast.Return(last.value) if isinstance(site, ast.Return)
               else ast.Assign(site.targets, last.value, lineno=site.lineno))
    for stmt in out:
        for sub in ast.walk(stmt):  # where the inlined text came from: the call it replaces
            ast.copy_location(sub, site)
    return out


class _Locals(ast.NodeTransformer):
    """A builder's parameters replaced by the caller's names or constants (`given`), its other locals and
    the parameters bound to temporaries renamed (`names`)."""

    def __init__(self, given: dict[str, ast.expr], names: dict[str, str]) -> None:
        self.given, self.names = given, names

    def visit_Name(self, node: ast.Name) -> ast.expr:
        if node.id in self.given:
            return _copy(self.given[node.id])
        if node.id in self.names:
            return ast.Name(self.names[node.id], node.ctx)
        return node


class _Refused(Exception):
    """A call that cannot be inlined: `inlined` gives up."""


class _Inline(ast.NodeTransformer):
    """Calls of `callees` replaced by their bodies, and each `C.attr` of a name C in `constants` by a name
    bound to its value (the names and values in `bound`)."""

    def __init__(self, callees: dict[str, Any], constants: dict[str, Any], taken: set[str],
                 home: dict[str, Any], fast: frozenset[str] = frozenset()) -> None:
        self.callees, self.constants, self.taken, self.home = callees, constants, taken, home
        self.fast = fast  # the caller's plain locals (not cells): builders' arguments read in place
        self.bound: dict[str, Any] = {}  # name: the value it is bound to
        self.names: dict[tuple[str, str], str] = {}  # (C, attr): its name

    def _site(self, node: ast.Return | ast.Assign) -> Any:
        call = node.value
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
                and call.func.id in self.callees
                and _builder(self.callees[call.func.id], self.home) is not None):
            self.generic_visit(node)
            return node
        if call.keywords:
            raise _Refused
        args = [self.visit(a) for a in call.args]  # calls of lambdas inside the arguments, inlined first
        made = statements(self.callees[call.func.id], args, node, self.taken, self.home, self.fast)
        if made is None:
            raise _Refused
        return made

    def visit_Return(self, node: ast.Return) -> Any:
        return self._site(node)

    def visit_Assign(self, node: ast.Assign) -> Any:
        return self._site(node)

    def visit_Call(self, node: ast.Call) -> ast.expr:
        if not (isinstance(node.func, ast.Name) and node.func.id in self.callees):
            self.generic_visit(node)
            return node
        expr = None if node.keywords else body(self.callees[node.func.id], node.args)
        if expr is None:
            raise _Refused
        for sub in ast.walk(expr):  # where the inlined text came from: the call it replaces
            ast.copy_location(sub, node)
        return self.visit(expr)  # type: ignore[no-any-return]  # its attributes of constants

    def visit_Attribute(self, node: ast.Attribute) -> ast.expr:
        self.generic_visit(node)
        value = node.value
        if (not isinstance(value, ast.Name) or value.id not in self.constants
                or not isinstance(node.ctx, ast.Load) or not hasattr(self.constants[value.id], node.attr)):
            return node
        name = self.names.get((value.id, node.attr))
        if name is None:
            name = f"{value.id}_{node.attr}"
            while name in self.taken:
                name += "_"
            self.taken.add(name)
            self.names[value.id, node.attr] = name
            self.bound[name] = getattr(self.constants[value.id], node.attr)
        return ast.copy_location(ast.Name(name, ast.Load()), node)


@lru_cache(maxsize=64)
def _calls(node: ast.FunctionDef) -> list[Any]:
    """The calls of a plain name in a def (the same def is made again for every op: found once)."""
    return [n for n in ast.walk(node) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]


_MADE: weakref.WeakKeyDictionary[Callable[..., Any], ast.FunctionDef] = weakref.WeakKeyDictionary()


def source(fn: Callable[..., Any]) -> str | None:
    """The source text of a function `inlined` made (what runs, with the calls replaced), else None."""
    tree = _MADE.get(fn)
    return None if tree is None else ast.unparse(tree)


def inlined(fn: F, calls: Sequence[str], constants: Sequence[str] = ()) -> F | None:
    """`fn` compiled again from its source with every call of a name in `calls` (a lambda in fn's closure
    or globals) replaced by the lambda's body, and every `C.attr` of a global C in `constants` by the
    attribute itself, read now. None if fn, or any of the calls, cannot be inlined: the caller keeps fn.
    The new function has fn's globals (read as fn reads them) and closure; `source(new)` is its text."""
    if not isinstance(fn, types.FunctionType) or not isinstance(node := source_node(fn), ast.FunctionDef):
        return None
    code = fn.__code__
    free = dict(zip(code.co_freevars, fn.__closure__ or (), strict=True))
    try:
        closure = {name: cell.cell_contents for name, cell in free.items()}
    except ValueError:  # an empty cell: a name fn's maker has not bound yet
        return None
    local = {*code.co_varnames, *code.co_cellvars}
    callees = {name: closure[name] if name in closure else fn.__globals__.get(name) for name in calls}
    if any(name in local for name in calls) or any(name in local or name in closure for name in constants):
        return None
    taken = {*code.co_names, *code.co_varnames, *code.co_cellvars, *code.co_freevars}
    for call in _calls(node):  # can every call be inlined? (quick: before the tree is copied)
        if call.func.id not in callees:
            continue
        callee = callees[call.func.id]
        if call.keywords or (body(callee, call.args) is None and _builder(callee, fn.__globals__) is None):
            return None
    nested = (*_SCOPED, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    for inner in ast.walk(node):  # a builder's lines inside a nested scope would see its names: refused
        if inner is not node and isinstance(inner, nested) and any(
                isinstance(c, ast.Call) and isinstance(c.func, ast.Name) and c.func.id in callees
                and _builder(callees[c.func.id], fn.__globals__) is not None for c in ast.walk(inner)):
            return None
    fast = frozenset(code.co_varnames) - frozenset(code.co_cellvars)
    inline = _Inline(callees, {c: fn.__globals__[c] for c in constants if c in fn.__globals__}, taken,
                     fn.__globals__, fast)
    try:
        new = inline.visit(_copy(node))
    except _Refused:
        return None
    for arg in (*new.args.posonlyargs, *new.args.args, *new.args.kwonlyargs, new.args.vararg, new.args.kwarg):
        if arg is not None:
            arg.annotation = None  # evaluated by the def: the names they use may not exist yet
    new.returns = None
    names = {**closure, **inline.bound}
    tree = _factory(new, list(names), new.name)
    namespace: dict[str, Any] = {}
    # fn's globals are the new function's too; the def of __factory__ goes to `namespace`
    exec(compile(tree, code.co_filename, "exec", dont_inherit=True), fn.__globals__, namespace)
    made: types.FunctionType = namespace["__factory__"](*names.values())
    made.__defaults__, made.__kwdefaults__ = fn.__defaults__, fn.__kwdefaults__
    made.__annotations__, made.__doc__, made.__qualname__ = fn.__annotations__, fn.__doc__, fn.__qualname__
    _MADE[made] = new
    return made  # type: ignore[return-value]  # fn's own kind of function, made again
