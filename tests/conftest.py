"""Shared test helpers: the oracles (PyTorch, micrograd), Graphviz's `dot` (or its absence), a headless
browser, micrograd's demo model. The seeds' graphs come from chainrule.seeds, as the tour and examples."""

from __future__ import annotations

import gc
import importlib
import json
import math
import os
import random
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from chainrule import Value
from chainrule.nn import MLP
from chainrule.viz import trace_model

REQUIRE = os.environ.get("CHAINRULE_REQUIRE_BROWSER") == "1"
HAVE_DOT = shutil.which("dot") is not None


def png_size(path: Path) -> tuple[int, int]:
    """A PNG's width and height, read from its header (failing if the file is not a PNG)."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{path} is not a PNG"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def live_nodes() -> int:
    """How many Values are alive now. The collector tracks every one (a Value holds objects), so
    gc.get_objects() lists them, collector on or off. (Values take no weak references: see engine.py.)"""
    return sum(isinstance(o, Value) for o in gc.get_objects())


def need_dot() -> None:
    if not HAVE_DOT:
        if REQUIRE:
            pytest.fail("Graphviz's dot is missing but CHAINRULE_REQUIRE_BROWSER=1")
        pytest.skip("Graphviz's dot is not installed (apt-get install graphviz)")


@pytest.fixture
def hide_dot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH without Graphviz's `dot`, as on a learner's laptop; returns the (empty) PATH folder."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    return empty


# ----- the oracles: dev extras, so CI (CHAINRULE_REQUIRE_BROWSER=1) fails where one is missing -------

def oracle(name: str) -> ModuleType:
    """Import a test-only reference library: skip without it, but fail in CI, which installs them all."""
    return importlib.import_module(name) if REQUIRE else pytest.importorskip(name)


@pytest.fixture(scope="session")
def torch() -> ModuleType:
    """PyTorch, the float64 oracle every gradient is checked against."""
    return oracle("torch")


@pytest.fixture(scope="session")
def micrograd() -> SimpleNamespace:
    """micrograd 0.1.0 (`.engine`, `.nn`), the reference peer whose numbers we reproduce."""
    return SimpleNamespace(engine=oracle("micrograd.engine"), nn=oracle("micrograd.nn"))


# ----- a real browser: Debian's chromium driven by Playwright (never `playwright install`) -------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def browser_unavailable(reason: str) -> None:
    if REQUIRE:
        pytest.fail(f"{reason}, but CHAINRULE_REQUIRE_BROWSER=1")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def playwright() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        browser_unavailable(f"{CHROMIUM} not found (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        browser_unavailable("the playwright package is not installed")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Any) -> Iterator[Any]:
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield b
    b.close()


def page_data(page: str) -> dict[str, object]:
    """The graph data an explorer page embeds."""
    m = re.search(r'<script type="application/json" id="graph-data">(.*?)</script>', page, re.S)
    assert m is not None
    data: dict[str, object] = json.loads(m.group(1))
    return data


# ----- micrograd's demo model --------------------------------------------------------------------

def batched_tanh() -> tuple[Value, Value, Value]:
    """y = Σ tanh(w·x) over a batch x of 4 numbers, backward already run: returns (y, x, w)."""
    import numpy as np

    x = Value(np.array([1.0, 2.0, 3.0, 4.0]), "x")
    w = Value(2.0, "w")
    y = (w * x).tanh().sum()
    y.label = "y"
    y.backward()
    return y, x, w


def demo_mlp() -> tuple[MLP, Value, list[Value]]:
    """micrograd's demo model, MLP(2, [16, 16, 1]) = 337 parameters, on one datapoint (hinge loss)."""
    model = MLP(2, [16, 16, 1], activation="relu", output_activation="linear", bias_init="zero",
                rng=random.Random(1337))
    trace = trace_model(model, [1.2, -0.4])
    out = trace.output
    assert isinstance(out, Value)
    loss = (1 + -1.0 * out).relu()
    loss.label = "loss"
    return model, loss, trace.inputs


# ----- microgpt's GPT in PyTorch, the oracle of chainrule.lm and chainrule.makemore ---------------------

def torch_gpt(torch: ModuleType, model: Any, tokens: list[int], targets: list[int],
              P: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
    """chainrule.lm.GPT's loss in PyTorch float64, written from the maths (whole sequences, a causal mask),
    on the parameters P (leaf tensors by parameter name; by default copies of the model's)."""
    if P is None:
        P = {name: torch.tensor(p.data, dtype=torch.float64, requires_grad=True)
             for name, p in model.named_parameters()}

    def mat(prefix: str, rows: int, cols: int) -> Any:
        return torch.stack([torch.stack([P[f"{prefix}.weight.{i}.{j}"] for j in range(cols)])
                            for i in range(rows)])

    def norm(x: Any) -> Any:
        return x * (x.pow(2).mean(-1, keepdim=True) + 1e-5).rsqrt()

    e, v, h, n = model.n_embd, model.vocab_size, model.n_head, len(tokens)
    x = norm(mat("wte", v, e)[tokens] + mat("wpe", model.block_size, e)[:n])
    for layer in range(model.n_layer):
        a = f"layer{layer}.attn"
        q, k, val = (norm(x) @ mat(f"{a}.{w}", e, e).T for w in ("wq", "wk", "wv"))
        d = e // h
        q, k, val = (t.view(n, h, d).transpose(0, 1) for t in (q, k, val))
        att = (q @ k.transpose(1, 2)) / math.sqrt(d)
        att = att.masked_fill(torch.triu(torch.ones(n, n, dtype=torch.bool), 1), float("-inf")).softmax(-1)
        y = (att @ val).transpose(0, 1).reshape(n, e)
        x = x + y @ mat(f"{a}.wo", e, e).T
        hidden = torch.relu(norm(x) @ mat(f"layer{layer}.mlp_fc1", 4 * e, e).T)
        x = x + hidden @ mat(f"layer{layer}.mlp_fc2", e, 4 * e).T
    logits = x @ mat("lm_head", v, e).T
    return torch.nn.functional.cross_entropy(logits, torch.tensor(targets)), P
