"""Text for character models: a tokenizer, a seeded split, and the (context, next) examples of makemore.

A name becomes token ids with one extra token, the boundary, at both ends (microgpt's BOS; makemore's
'.'): `[BOS, e, m, m, a, BOS]` says "a name starts, e, m, m, a, the name ends". A model learns
p(next | what came before); sampling starts from BOS and stops when BOS comes out again.
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterable, Sequence

__all__ = ["CharTokenizer", "contexts", "split"]


class CharTokenizer:
    """Characters to ids: the letters in sorted order are 0..n-1, the boundary token is n (as microgpt:
    a-z are 0..25 and BOS is 26, 27 tokens in all)."""

    def __init__(self, chars: Iterable[str] = string.ascii_lowercase) -> None:
        self.chars = sorted(set(chars))
        if not self.chars or any(len(c) != 1 for c in self.chars):
            raise ValueError(f"a tokenizer needs single characters, got {self.chars!r}")
        self.bos = len(self.chars)
        self.vocab_size = len(self.chars) + 1
        self._ids = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_words(cls, words: Iterable[str]) -> CharTokenizer:
        """The tokenizer of every character that occurs in `words` (microgpt: sorted(set(''.join(docs))))."""
        return cls("".join(words))

    def encode(self, word: str) -> list[int]:
        """The ids of `word` between two boundary tokens."""
        try:
            return [self.bos, *(self._ids[c] for c in word), self.bos]
        except KeyError as e:
            raise ValueError(f"character {e.args[0]!r} of {word!r} is not in the tokenizer's "
                             f"alphabet {''.join(self.chars)!r}") from None

    def decode(self, ids: Iterable[int]) -> str:
        """The characters of `ids`, boundary tokens left out."""
        out = []
        for i in ids:
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < self.vocab_size:
                raise ValueError(f"token id {i!r} is not in [0, {self.vocab_size})")
            if i != self.bos:
                out.append(self.chars[i])
        return "".join(out)

    def symbol(self, i: int) -> str:
        """How plots and the explorer write token i: its character, or '.' for the boundary (makemore)."""
        return "." if i == self.bos else self.chars[i]

    def __repr__(self) -> str:
        return f"CharTokenizer({''.join(self.chars)!r} + boundary, {self.vocab_size} tokens)"


def split(words: Sequence[str], seed: int = 42) -> tuple[list[str], list[str], list[str]]:
    """(train, val, test): 80%, 10%, 10% of the words after a shuffle by `random.Random(seed)`.

    As makemore's lecture (`random.seed(42); random.shuffle(words)`, cuts at int(0.8n) and int(0.9n)), with
    a generator of its own: the caller's global `random` is untouched.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    shuffled = list(words)
    if len(shuffled) < 3:
        raise ValueError(f"splitting three ways needs at least 3 words, got {len(shuffled)}")
    random.Random(seed).shuffle(shuffled)
    n1, n2 = int(0.8 * len(shuffled)), int(0.9 * len(shuffled))
    return shuffled[:n1], shuffled[n1:n2], shuffled[n2:]


def contexts(words: Iterable[str], tokenizer: CharTokenizer, block: int) -> tuple[list[list[int]], list[int]]:
    """makemore's examples: for every position of every word, the `block` ids before it (boundary tokens
    where the word has not started) and the id that comes next. "emma" with block 3 gives
    [., ., .] → e, [., ., e] → m, [., e, m] → m, [e, m, m] → a, [m, m, a] → ."""
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        raise ValueError(f"block must be a positive integer, got {block!r}")
    X: list[list[int]] = []
    Y: list[int] = []
    for word in words:
        ids = tokenizer.encode(word)
        window = [tokenizer.bos] * block
        for nxt in ids[1:]:
            X.append(window)
            Y.append(nxt)
            window = [*window[1:], nxt]
    return X, Y
