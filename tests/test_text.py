"""Tests for chainrule.text: the character tokenizer, the 80/10/10 split and makemore's examples."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainrule.data import names
from chainrule.text import CharTokenizer, contexts, split


def test_tokenizer_is_microgpts() -> None:
    tok = CharTokenizer.from_words(names())
    assert tok.vocab_size == 27 and tok.bos == 26  # microgpt: uchars a-z, BOS = len(uchars)
    assert tok.encode("emma") == [26, 4, 12, 12, 0, 26]
    assert tok.decode([26, 4, 12, 12, 0, 26]) == "emma"
    assert tok.symbol(26) == "." and tok.symbol(0) == "a"
    assert repr(tok) == "CharTokenizer('abcdefghijklmnopqrstuvwxyz' + boundary, 27 tokens)"


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz", max_size=30))
def test_encode_decode_round_trip(word: str) -> None:
    tok = CharTokenizer()
    ids = tok.encode(word)
    assert len(ids) == len(word) + 2 and ids[0] == ids[-1] == tok.bos
    assert tok.decode(ids) == word


@pytest.mark.parametrize(("call", "message"), [
    (lambda t: t.encode("Émile"), "character 'É' of 'Émile' is not in the tokenizer's alphabet"),
    (lambda t: t.decode([27]), r"token id 27 is not in \[0, 27\)"),
    (lambda t: t.decode([-1]), r"token id -1 is not in \[0, 27\)"),
    (lambda t: t.decode([True]), "token id True"),
])
def test_tokenizer_rejects_what_it_cannot_read(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(CharTokenizer())  # type: ignore[operator]


def test_tokenizer_needs_single_characters() -> None:
    with pytest.raises(ValueError, match="single characters"):
        CharTokenizer(["ab"])
    with pytest.raises(ValueError, match="single characters"):
        CharTokenizer("")


def test_split_is_makemores_80_10_10() -> None:
    words = names()
    train, val, test = split(words)
    assert (len(train), len(val), len(test)) == (25626, 3203, 3204)
    shuffled = list(words)
    random.Random(42).shuffle(shuffled)  # makemore: random.seed(42); random.shuffle(words)
    assert train + val + test == shuffled
    assert split(words, seed=42) == (train, val, test) and split(words, seed=1)[0] != train


def test_split_leaves_the_global_random_alone() -> None:
    state = random.getstate()
    split(["ab", "cd", "ef", "gh"])
    assert random.getstate() == state


@pytest.mark.parametrize(("args", "message"), [
    ((["a", "b"],), "at least 3 words"),
    ((["a", "b", "c"], 1.5), "seed must be an integer"),
])
def test_split_rejects_bad_input(args: tuple[object, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        split(*args)  # type: ignore[arg-type]


def test_contexts_are_makemores_windows() -> None:
    tok = CharTokenizer()
    X, Y = contexts(["emma"], tok, 3)
    dot = tok.bos
    e, m, a = tok.encode("ema")[1:4]
    assert [[dot, dot, dot], [dot, dot, e], [dot, e, m], [e, m, m], [m, m, a]] == X
    assert [e, m, m, a, dot] == Y
    assert len(contexts(names(), tok, 3)[1]) == sum(len(w) + 1 for w in names())


def test_contexts_reject_a_block_below_one() -> None:
    with pytest.raises(ValueError, match="block must be a positive integer, got 0"):
        contexts(["emma"], CharTokenizer(), 0)
