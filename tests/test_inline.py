"""chainrule.inline: a lambda's body read back from its file, and a function made again with calls of such
lambdas replaced by their bodies; everything it cannot be sure of is refused (None)."""

from __future__ import annotations

import linecache
import math
import types
from functools import partial
from typing import Any

import pytest

from chainrule import inline

TABLE = {"two": (lambda m, a, b: m.f(a) + b, lambda m, out, a, b: (b * out, a)),  # two lambdas, one line
         "same": (lambda m, x: x * 2.0, lambda m, y: y * 2.0)}  # the same bytecode but for the names
SCALE = 3.0


class NS:
    f = staticmethod(math.exp)
    g = staticmethod(math.sqrt)


def test_a_lambda_in_a_dict_literal_is_read_back_with_its_parameters_renamed() -> None:
    forward, local = TABLE["two"]
    assert inline.expression(forward, ("m", "x", "y")) == "m.f(x) + y"
    assert inline.expression(local, ("m", "out", "x", "y")) == "(y * out, x)"
    assert inline.expression(TABLE["same"][0], ("m", "p")) == "p * 2.0"
    assert inline.expression(TABLE["same"][1], ("m", "q")) == "q * 2.0"
    assert inline.expression(forward, ("m", "x")) is None  # the wrong number of names


def _closure() -> Any:
    k = 2.0
    return lambda m, x: k * x


def _defined(m: Any, x: Any) -> Any:
    return x


@pytest.mark.parametrize("fn", [
    _closure(),  # a free variable
    lambda m, x=1.0: x,  # a default
    lambda m, *xs: xs[0],  # *args
    lambda m, *, x: x,  # keyword-only
    _defined,  # a def'd function
    math.exp,  # a builtin
    partial(lambda m, x: x),  # a partial
    lambda m, x: SCALE * x,  # a global
    lambda m, x: abs(x),  # a builtin by name
    lambda m, x: (y := x) + y,  # binds a name
    lambda m, x: sum([x for _ in range(2)]),  # a scope of its own
    lambda m, x: (lambda z: z)(x),  # a lambda inside
    lambda m, x: (yield x),  # a generator
], ids=["closure", "default", "varargs", "kwonly", "def", "builtin", "partial", "global", "builtin-name",
        "walrus", "comprehension", "nested-lambda", "generator"])
def test_what_cannot_be_inlined_surely_is_refused(fn: Any) -> None:
    assert inline.expression(fn, ("m", "x")) is None


def _compiled(text: str, filename: str) -> types.FunctionType:
    namespace: dict[str, Any] = {}
    exec(compile(text, filename, "exec"), namespace)
    return namespace["f"]  # type: ignore[no-any-return]


def test_source_comes_from_linecache_as_a_notebook_cell_and_a_stale_file_is_refused() -> None:
    text = "f = lambda m, x: m.g(x) - 1.0\n"
    name = "<cell-chainrule-test-inline>"
    fn = _compiled(text, name)
    assert inline.expression(fn, ("m", "x")) is None  # no source anywhere
    linecache.cache[name] = (len(text), None, [text], name)
    try:
        assert inline.expression(fn, ("m", "v")) == "m.g(v) - 1.0"
        other = _compiled("f = lambda m, x: m.g(x) - 2.0\n", name + "2")
        stale = "f = lambda m, x: m.g(x) - 1.0\n"  # what the file says now is not what was compiled
        linecache.cache[name + "2"] = (len(stale), None, [stale], name + "2")
        assert inline.expression(other, ("m", "x")) is None
    finally:
        linecache.cache.pop(name, None)
        linecache.cache.pop(name + "2", None)


def _maker(forward: Any, local: Any, tag: str) -> Any:
    def run(x: float) -> tuple[Any, ...]:
        out = forward(NS, x, 2.0)
        return tag, out, local(NS, out, x, 2.0)

    return run


def test_a_function_is_made_again_with_the_calls_inlined_and_the_same_results() -> None:
    run = _maker(*TABLE["two"], "t")
    fast = inline.inlined(run, ("forward", "local"), ("NS",))
    assert fast is not None and fast is not run
    assert fast.__name__ == run.__name__ and fast.__qualname__ == run.__qualname__
    assert "out = NS_f(x) + 2.0" in str(inline.source(fast))
    assert "return (tag, out, (2.0 * out, x))" in str(inline.source(fast))
    assert not {"forward", "local"} & set(fast.__code__.co_freevars)
    for x in (-1.0, 0.0, 0.5, 3.0):
        assert fast(x) == run(x)
    assert fast.__annotations__ == run.__annotations__
    with pytest.raises(OverflowError):  # the calls' errors, unchanged
        fast(1000.0)


def test_a_function_whose_calls_cannot_all_be_inlined_is_refused() -> None:
    assert inline.inlined(_maker(_closure(), TABLE["two"][1], "t"), ("forward", "local")) is None
    assert inline.inlined(_maker(TABLE["same"][0], TABLE["two"][1], "t"), ("forward", "local")) is None

    forward = TABLE["same"][0]

    def nested_args(x: float) -> Any:  # an argument that is not a name or a constant
        return forward(NS, x + 1.0)

    def keyword(x: float) -> Any:
        return forward(NS, x=x)

    assert inline.inlined(nested_args, ("forward",)) is None
    assert inline.inlined(keyword, ("forward",)) is None
    assert inline.inlined(math.exp, ("forward",)) is None
    assert inline.inlined(lambda x: forward(NS, x), ("forward",)) is None  # a lambda: only defs are made

    def plain(x: float) -> Any:
        return forward(NS, x)

    fast = inline.inlined(plain, ("forward",))
    assert fast is not None and fast(4.0) == 8.0 and "return x * 2.0" in str(inline.source(fast))


# ----- builders: a def of assignments and a return, put in place of `return f(...)` / `x = f(...)` -----


class _Box:
    __slots__ = ("a", "b", "tag")


CALLS: list[str] = []


def _logged(x: Any, name: str) -> Any:  # an argument with a side effect: the order it runs in is seen
    CALLS.append(name)
    return x


def _build(a: Any, b: Any, tag: str) -> _Box:
    """A builder: one store per statement, then the box."""
    box = object.__new__(_Box)
    box.a = a
    box.b = b
    box.tag = tag
    return box


def _uses_builder(x: float, y: float) -> Any:
    box = _build(_logged(x, "a"), _logged(y * 2.0, "b"), "t")
    return _build(box, (x, y), "outer")


def _rebinds(a: Any) -> Any:
    a = a + 1
    return a


def _branches(a: Any) -> Any:
    if a:
        return 1
    return 2


def test_a_builder_is_put_in_place_of_its_calls_with_the_arguments_in_order() -> None:
    fast = inline.inlined(_uses_builder, ("_build",))
    assert fast is not None and "_build(" not in str(inline.source(fast))
    assert "_build" not in fast.__code__.co_names  # no call left
    CALLS.clear()
    made = fast(1.5, -2.0)
    assert CALLS == ["a", "b"]  # evaluated once each, in the call's order
    CALLS.clear()
    plain = _uses_builder(1.5, -2.0)
    assert CALLS == ["a", "b"]
    assert type(made) is type(made.a) is _Box and (made.tag, made.a.tag) == (plain.tag, plain.a.tag)
    assert (made.a.a, made.a.b, made.b) == (plain.a.a, plain.a.b, plain.b) == (1.5, -4.0, (1.5, -2.0))


def test_what_is_not_a_builder_keeps_its_calls() -> None:
    def as_expression(x: float) -> Any:  # a builder's call inside an expression, not a statement of its own
        return [_build(x, x, "t")]

    def keyword(x: float) -> Any:
        return _build(x, x, tag="t")

    def walrus(x: float) -> Any:
        return _build((y := x), y, "t")

    def calls(x: float) -> Any:
        return _rebinds(x), _branches(x)

    for fn, names in ((as_expression, ("_build",)), (keyword, ("_build",)), (walrus, ("_build",)),
                      (calls, ("_rebinds",)), (calls, ("_branches",))):
        assert inline.inlined(fn, names) is None, fn
    # called from another module, a builder's lines would read that module's globals, not its own
    assert inline._builder(_build, {}) is None and inline._builder(_build, globals()) is not None


G = 10


def _bump() -> int:
    global G
    G += 1
    return G


def _pair(a: Any, b: Any) -> tuple[Any, Any]:
    out = (a, b)
    return out


def test_a_builder_reads_its_arguments_when_the_call_would() -> None:
    def reads_global() -> Any:  # G is read before _bump() rebinds it, as in the call
        return _pair(G, _bump())

    def starred(x: Any, rest: Any) -> Any:
        return _pair(x, *rest)

    def nested(x: Any) -> Any:
        def inner(out: Any) -> Any:  # the builder's local `out` would meet inner's parameter
            return _pair(out, x)

        return inner(5)

    global G
    fast = inline.inlined(reads_global, ("_pair",))
    assert fast is not None and "_pair(" not in str(inline.source(fast))
    G = 10
    assert fast() == (10, 11)
    for fn in (starred, nested):
        assert inline.inlined(fn, ("_pair",)) is None, fn
