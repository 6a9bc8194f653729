"""A tiny, safe expression language for `chainrule graph "tanh(x1*w1 + b)" --at x1=2,...`.

It is parsed by hand (recursive descent) and evaluated by walking our own tree, so nothing the
user types is ever handed to `eval` or to Python's parser. The grammar, loosest binding first,
follows Python's precedence (so `-2**2` is `-(2**2)` and `2**-1` is allowed):

    expr   := term (('+' | '-') term)*
    term   := unary (('*' | '/') unary)*
    unary  := '-' unary | power
    power  := atom ('**' unary)?           # right-associative: 2**3**2 == 2**9
    atom   := NUMBER | NAME | FUNC '(' expr ')' | '(' expr ')'

Every error is an `ExprError`: one line, with the 1-based column it points at.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from chainrule.engine import Value

FUNCTIONS: dict[str, Callable[[Value], Value]] = {
    "tanh": Value.tanh,
    "exp": Value.exp,
    "log": Value.log,
    "relu": Value.relu,
    "sigmoid": Value.sigmoid,
}

# Limits keep hostile input cheap: no deep recursion in the parser, no huge graphs.
MAX_LENGTH = 10_000
LABEL_LENGTH = 40  # a subexpression's text becomes its value's label when it is this short
MAX_DEPTH = 100  # each level is ~6 Python frames; the default recursion limit is 1000

_ALLOWED = "numbers, names, + - * / **, parentheses and calls to " + " ".join(FUNCTIONS)


class ExprError(ValueError):
    """A rejected expression or assignment list; `str()` is one line naming the column."""

    def __init__(self, message: str, column: int, source: str = "expression") -> None:
        self.message = message
        self.column = column  # 1-based
        self.source = source
        super().__init__(f"{source} error at column {column}: {message}")


class EvalError(ExprError):
    """A well-formed expression whose arithmetic the engine refused (1/0, log(0), exp(1000)): the message is
    the engine's own, naming the op and its operands, after the column of the operator."""


# ----- tokens -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Token:
    kind: str  # 'num', 'name', 'op', 'end'
    text: str
    pos: int  # 0-based offset into the source


_NUMBER = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPS = ("**", "+", "-", "*", "/", "(", ")")

# Friendlier words for characters people will try.
_WHY = {
    ".": "attribute access is not allowed",
    "[": "subscripts are not allowed",
    "]": "subscripts are not allowed",
    ",": "functions take exactly one argument",
    "=": "assignment is not allowed (give values with --at)",
    ":": "lambdas and slices are not allowed",
    "^": "use ** for powers",
    "'": "strings are not allowed",
    '"': "strings are not allowed",
}


def tokenize(text: str) -> list[Token]:
    if len(text) > MAX_LENGTH:
        raise ExprError(f"expression longer than {MAX_LENGTH} characters", MAX_LENGTH + 1)
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in " \t":
            i += 1
            continue
        m = _NUMBER.match(text, i)
        if m:
            end = m.end()
            # `2x` or `1.5e` would otherwise silently split into two tokens.
            if end < len(text) and (text[end].isalnum() or text[end] in "_."):
                raise ExprError(f"malformed number {text[i:end + 1]!r}", i + 1)
            tokens.append(Token("num", m.group(), i))
            i = end
            continue
        m = _NAME.match(text, i)
        if m:
            tokens.append(Token("name", m.group(), i))
            i = m.end()
            continue
        op = next((o for o in _OPS if text.startswith(o, i)), None)
        if op is not None:
            tokens.append(Token("op", op, i))
            i += len(op)
            continue
        why = _WHY.get(ch, f"only {_ALLOWED} are allowed")
        raise ExprError(f"unexpected {ch!r}: {why}", i + 1)
    tokens.append(Token("end", "", len(text)))
    return tokens


# ----- syntax tree --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Num:
    value: float
    text: str
    pos: int


@dataclass(frozen=True)
class Name:
    name: str
    pos: int


# label: the node's source text as typed (no enclosing parentheses), when it is short enough to name its
# Value (LABEL_LENGTH); "" otherwise. A slice of the source: no code prints a tree back.


@dataclass(frozen=True)
class Neg:
    operand: Node
    pos: int
    label: str = ""


@dataclass(frozen=True)
class BinOp:
    op: str  # one of + - * / **
    left: Node
    right: Node
    pos: int  # where the operator is
    label: str = ""


@dataclass(frozen=True)
class Call:
    func: str
    arg: Node
    pos: int
    label: str = ""


Node = Num | Name | Neg | BinOp | Call


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0
        # id(node) -> where its text starts and ends in the source, enclosing parentheses included
        self.spans: dict[int, tuple[int, int]] = {}

    def span(self, node: Node) -> tuple[int, int]:
        return self.spans[id(node)]

    def spanned(self, node: Node, start: int, end: int) -> Node:
        self.spans[id(node)] = (start, end)
        return node

    def label(self, start: int, end: int) -> str:
        return self.text[start:end] if end - start <= LABEL_LENGTH else ""

    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def fail(self, tok: Token, message: str) -> ExprError:
        return ExprError(message, tok.pos + 1)

    def describe(self, tok: Token) -> str:
        return "end of input" if tok.kind == "end" else repr(tok.text)

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(self.peek(), f"expression nested deeper than {MAX_DEPTH} levels")

    def parse(self) -> Node:
        node = self.expr()
        tok = self.peek()
        if tok.kind != "end":
            extra = "a name or number cannot follow directly" if tok.kind != "op" else ""
            raise self.fail(tok, f"unexpected {self.describe(tok)}" + (f" ({extra})" if extra else ""))
        return node

    def expr(self) -> Node:
        return self.left_assoc(("+", "-"), self.term)

    def term(self) -> Node:
        return self.left_assoc(("*", "/"), self.unary)

    def left_assoc(self, ops: tuple[str, str], operand: Callable[[], Node]) -> Node:
        """operand (op operand)*, grouped from the left: a - b - c is (a - b) - c."""
        node = operand()
        while self.peek().text in ops and self.peek().kind == "op":
            op = self.take()
            right = operand()
            start, end = self.span(node)[0], self.span(right)[1]
            node = self.spanned(BinOp(op.text, node, right, op.pos, self.label(start, end)), start, end)
        return node

    def unary(self) -> Node:
        self.enter()
        tok = self.peek()
        if tok.kind == "op" and tok.text == "-":
            self.take()
            operand = self.unary()
            end = self.span(operand)[1]
            node: Node = self.spanned(Neg(operand, tok.pos, self.label(tok.pos, end)), tok.pos, end)
        else:
            node = self.power()
        self.depth -= 1
        return node

    def power(self) -> Node:
        node = self.atom()
        tok = self.peek()
        if tok.kind == "op" and tok.text == "**":
            self.take()
            right = self.unary()
            start, end = self.span(node)[0], self.span(right)[1]
            node = self.spanned(BinOp("**", node, right, tok.pos, self.label(start, end)), start, end)
        return node

    def atom(self) -> Node:
        tok = self.take()
        if tok.kind == "num":
            value = float(tok.text)
            if not math.isfinite(value):
                raise self.fail(tok, f"number {tok.text} is too large")
            return self.spanned(Num(value, tok.text, tok.pos), tok.pos, tok.pos + len(tok.text))
        if tok.kind == "name":
            after = self.peek()
            called = after.kind == "op" and after.text == "("
            if tok.text in FUNCTIONS:
                if not called:
                    raise self.fail(tok, f"{tok.text} is a function: write {tok.text}(...)")
                self.take()
                arg = self.paren_body()
                end = self.span(arg)[1]  # just past the ')'
                return self.spanned(Call(tok.text, arg, tok.pos, self.label(tok.pos, end)), tok.pos, end)
            if called:
                raise self.fail(tok, f"unknown function {tok.text!r} (known: {', '.join(FUNCTIONS)})")
            return self.spanned(Name(tok.text, tok.pos), tok.pos, tok.pos + len(tok.text))
        if tok.kind == "op" and tok.text == "(":
            node = self.paren_body()
            return self.spanned(node, tok.pos, self.span(node)[1])
        raise self.fail(tok, f"expected a number, name or '(' but found {self.describe(tok)}")

    def paren_body(self) -> Node:
        """Parse `expr ')'`; the '(' has been consumed. The node's span grows to the ')'."""
        node = self.expr()
        tok = self.take()
        if not (tok.kind == "op" and tok.text == ")"):
            raise self.fail(tok, f"expected ')' but found {self.describe(tok)}")
        return self.spanned(node, self.span(node)[0], tok.pos + 1)


def parse(text: str) -> Node:
    """Parse `text` into a syntax tree, or raise `ExprError`."""
    return _Parser(text).parse()


def names(tree: Node) -> list[str]:
    """Variable names in order of first appearance."""
    seen: dict[str, None] = {}
    stack: list[Node] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, Name):
            seen.setdefault(node.name, None)
        stack.extend(reversed(_children(node)))  # leftmost child is popped first
    return list(seen)


# ----- --at assignments ---------------------------------------------------------------------------

_ASSIGN_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def parse_assignments(text: str) -> dict[str, float]:
    """Parse `x1=2,w1=-3.5` into a dict; raise `ExprError` (source '--at') on anything else."""
    values: dict[str, float] = {}
    if len(text) > MAX_LENGTH:
        raise ExprError(f"longer than {MAX_LENGTH} characters", MAX_LENGTH + 1, "--at")
    pos = 0
    for part in text.split(","):
        start = pos + len(part) - len(part.lstrip())
        name, eq, number = part.partition("=")
        name_s, number_s = name.strip(), number.strip()
        if not eq:
            raise ExprError(f"expected name=value, got {part.strip()!r}", start + 1, "--at")
        if not _NAME.fullmatch(name_s):
            raise ExprError(f"{name_s!r} is not a valid name", start + 1, "--at")
        value_col = pos + len(name) + 2 + (len(number) - len(number.lstrip()))
        if not _ASSIGN_NUMBER.fullmatch(number_s):
            raise ExprError(f"value of {name_s} is not a number: {number_s!r}", value_col, "--at")
        value = float(number_s)
        if not math.isfinite(value):
            raise ExprError(f"value of {name_s} is too large: {number_s}", value_col, "--at")
        if name_s in values:
            raise ExprError(f"{name_s} is given twice", start + 1, "--at")
        values[name_s] = value
        pos += len(part) + 1
    return values


# ----- evaluation ---------------------------------------------------------------------------------

def _apply(node: BinOp | Neg | Call, args: list[Value]) -> Value:
    if isinstance(node, Neg):
        return -args[0]
    if isinstance(node, Call):
        return FUNCTIONS[node.func](args[0])
    a, b = args
    if node.op == "+":
        return a + b
    if node.op == "-":
        return a - b
    if node.op == "*":
        return a * b
    if node.op == "/":
        return a / b
    return a**b


def _op_text(node: BinOp | Neg | Call) -> str:
    return node.op if isinstance(node, BinOp) else node.func if isinstance(node, Call) else "-"


def _children(node: Node) -> list[Node]:
    if isinstance(node, BinOp):
        return [node.left, node.right]
    if isinstance(node, Neg):
        return [node.operand]
    if isinstance(node, Call):
        return [node.arg]
    return []


def build(tree: Node, env: Mapping[str, float]) -> tuple[Value, dict[str, Value]]:
    """Build the Value graph of `tree`, with one leaf Value per name, labelled by that name.

    Returns (root, leaves by name). The caller must give exactly the names the tree uses:
    a missing or unused name raises `ExprError` before anything is computed. Arithmetic that
    fails or overflows (log(-1), 1/0, 10**400) raises `EvalError` pointing at the operator, with the
    engine's message.
    """
    used = names(tree)
    missing = [n for n in used if n not in env]
    if missing:
        first = _first_pos(tree, missing[0])
        raise ExprError(f"no value for {', '.join(missing)} (give it with --at)", first + 1)
    extra = [n for n in env if n not in used]
    if extra:
        raise ExprError(f"{', '.join(extra)} not used in the expression", 1, "--at")

    leaves = {n: Value(float(env[n]), label=n) for n in used}
    # Post-order walk with an explicit stack: a long chain like 1+1+...+1 is a deep tree.
    results: dict[int, Value] = {}
    stack: list[tuple[Node, bool]] = [(tree, False)]
    while stack:
        node, ready = stack.pop()
        if isinstance(node, Num):
            results[id(node)] = Value(node.value, label=node.text)
        elif isinstance(node, Name):
            results[id(node)] = leaves[node.name]
        elif not ready:
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(_children(node)))
        else:
            args = [results[id(child)] for child in _children(node)]
            try:
                out = _apply(node, args)
            except (ArithmeticError, ValueError, TypeError) as err:  # the engine's: 1/0, log(0), (-8)**(1/3)
                reason = str(err).splitlines()[0] if str(err) else type(err).__name__
                raise EvalError(reason, node.pos + 1) from None
            # Only the value must be finite: an infinite slope (x**0.5 at 0) is a limit, as in PyTorch.
            if not math.isfinite(out.data):
                op = _op_text(node)
                operands = f" {op} ".join(a._culprit() for a in args)  # as the engine names them
                raise EvalError(f"{op} overflow (the result is {out.data}): {operands}", node.pos + 1)
            out.label = node.label  # its source text; a long subexpression stays unnamed
            results[id(node)] = out
    return results[id(tree)], leaves


def _first_pos(tree: Node, name: str) -> int:
    stack: list[Node] = [tree]
    best = 0
    found = False
    while stack:
        node = stack.pop()
        if isinstance(node, Name) and node.name == name and (not found or node.pos < best):
            best, found = node.pos, True
        stack.extend(_children(node))
    return best


def gradients(text: str, at: str = "") -> tuple[Value, dict[str, Value]]:
    """What `chainrule graph TEXT --at AT` shows: `text` built at the values of `at` ("x1=2,w1=-3"; "" when
    it has no names) and backpropagated. Returns (root, leaves by name in order of appearance), each
    leaf's .grad holding d(root)/d(name). Raises `ExprError` (one line, with a column) on bad input.
    """
    root, leaves = build(parse(text), parse_assignments(at) if at.strip() else {})
    root.backward()
    return root, leaves
