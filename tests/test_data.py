"""Tests for chainrule.data.

Oracle: scikit-learn (a dev dependency only). make_moons, make_circles, make_blobs and
train_test_split must give sklearn's arrays bit for bit and leave the RNG in the same state.
make_xor and make_spirals are ours, so they are checked against their documented construction.
make_dataset picks one by name, as the CLI's --dataset, and must give what the CLI trained on before.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from conftest import oracle
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from chainrule.data import (
    DATASETS,
    DEFAULT_NOISE,
    make_blobs,
    make_circles,
    make_dataset,
    make_moons,
    make_spirals,
    make_xor,
    train_test_split,
)

Call = Callable[..., Any]
GLOBAL_SEED = 20240607


@pytest.fixture(scope="module")
def sk() -> SimpleNamespace:
    """sklearn's functions under test, or skip: sklearn is only a test oracle."""
    datasets = oracle("sklearn.datasets")
    model_selection = oracle("sklearn.model_selection")
    return SimpleNamespace(
        make_moons=datasets.make_moons,
        make_circles=datasets.make_circles,
        make_blobs=datasets.make_blobs,
        train_test_split=model_selection.train_test_split,
    )


def _global_state() -> tuple[Any, ...]:
    name, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    return name, np.asarray(keys).tobytes(), pos, has_gauss, gauss


def _run_both(ours: Call, theirs: Call, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
    """Run both from the same global seed; check they leave the global RNG in the same state.

    A RandomState passed in random_state is rebuilt for each side from its own saved state.
    """
    rs = kwargs.get("random_state")
    results, states = [], []
    for fn in (ours, theirs):
        if isinstance(rs, np.random.RandomState):
            kwargs["random_state"] = np.random.RandomState()
            kwargs["random_state"].set_state(rs.get_state())
        np.random.seed(GLOBAL_SEED)
        results.append(fn(*args, **kwargs))
        states.append(_global_state())
    assert states[0] == states[1], "a different number of draws from the global RNG"
    return results[0], results[1]


def _assert_same(ours: Any, theirs: Any) -> None:
    assert len(ours) == len(theirs)
    for mine, ref in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(mine, ref)  # bit-identical: no tolerance
        assert mine.dtype == ref.dtype
        assert mine.shape == ref.shape


# -------------------------------------------------------------------------------------------------
# Bit-identical to sklearn. Cases without random_state exercise the global-seed path.
# -------------------------------------------------------------------------------------------------

MOONS_CASES: list[dict[str, Any]] = [
    {},
    {"n_samples": 100, "noise": 0.1},  # micrograd's demo.ipynb, after np.random.seed(1337)
    {"n_samples": 1},
    {"n_samples": 2, "random_state": 0},
    {"n_samples": 101, "noise": 0.1, "random_state": 0},
    {"n_samples": (3, 7), "noise": 0.2, "random_state": 42},
    {"n_samples": (0, 5), "random_state": 1},
    {"n_samples": 50, "shuffle": False, "noise": 0.3, "random_state": 7},
    {"n_samples": 50, "shuffle": False},
    {"n_samples": 64, "noise": 0.0, "random_state": 2**32 - 1},
    {"n_samples": np.int64(10), "noise": np.float64(0.1), "random_state": np.int32(3)},
    {"n_samples": 30, "noise": 0.5, "random_state": np.random.RandomState(11)},
]

CIRCLES_CASES: list[dict[str, Any]] = [
    {},
    {"n_samples": 1},
    {"n_samples": 99, "noise": 0.05, "random_state": 0},
    {"n_samples": (10, 3), "factor": 0.3, "random_state": 5},
    {"n_samples": (4, 0), "noise": 0.1, "random_state": 2},
    {"n_samples": 40, "factor": 0.0, "noise": 0.2},
    {"n_samples": 40, "factor": 0.999, "shuffle": False, "random_state": 9},
    {"n_samples": 40, "factor": 0.5, "shuffle": False, "noise": 0.1},
    {"n_samples": 25, "noise": 0.1, "random_state": np.random.RandomState(0)},
]

BLOBS_CASES: list[dict[str, Any]] = [
    {},
    {"n_samples": 1},
    {"n_samples": 10, "centers": 3, "n_features": 2, "random_state": 0},
    {"n_samples": 7, "centers": 2, "n_features": 5, "random_state": 1},
    {"n_samples": 11, "centers": [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]], "cluster_std": [0.5, 2.0]},
    {"n_samples": [3, 3, 4], "random_state": 0},
    {"n_samples": [3, 0, 5], "n_features": 4, "random_state": 3},
    {"n_samples": np.array([2, 6]), "centers": np.array([[1, 1], [-1, -1]]), "random_state": 4},
    {"n_samples": 50, "centers": 4, "cluster_std": 0.0, "random_state": 8},
    {"n_samples": 20, "shuffle": False, "random_state": 2},
    {"n_samples": 20, "shuffle": False},
    {"n_samples": 13, "centers": 4, "random_state": np.random.RandomState(5)},
]


@pytest.mark.parametrize("kwargs", MOONS_CASES)
def test_make_moons_matches_sklearn(sk: SimpleNamespace, kwargs: dict[str, Any]) -> None:
    _assert_same(*_run_both(make_moons, sk.make_moons, **kwargs))


@pytest.mark.parametrize("kwargs", CIRCLES_CASES)
def test_make_circles_matches_sklearn(sk: SimpleNamespace, kwargs: dict[str, Any]) -> None:
    _assert_same(*_run_both(make_circles, sk.make_circles, **kwargs))


@pytest.mark.parametrize("kwargs", BLOBS_CASES)
def test_make_blobs_matches_sklearn(sk: SimpleNamespace, kwargs: dict[str, Any]) -> None:
    _assert_same(*_run_both(make_blobs, sk.make_blobs, **kwargs))


def test_make_blobs_positional_n_features_matches_sklearn(sk: SimpleNamespace) -> None:
    _assert_same(*_run_both(make_blobs, sk.make_blobs, 30, 3, random_state=0))


def test_micrograd_demo_global_seed(sk: SimpleNamespace) -> None:
    # demo.ipynb: np.random.seed(1337); X, y = make_moons(n_samples=100, noise=0.1)
    np.random.seed(1337)
    ours = make_moons(n_samples=100, noise=0.1)
    np.random.seed(1337)
    theirs = sk.make_moons(n_samples=100, noise=0.1)
    _assert_same(ours, theirs)


def test_micrograd_demo_pinned_values() -> None:
    # The same data as above, pinned so it is checked even without sklearn. A tolerance, because
    # NumPy's sin/cos may differ in the last bit between CPUs; the labels come from the shuffle alone.
    np.random.seed(1337)
    X, y = make_moons(n_samples=100, noise=0.1)
    np.testing.assert_allclose(X[0], [1.1221146075409685, 0.08147717341718697], rtol=1e-12)
    np.testing.assert_allclose(X[-1], [0.12108297264758441, 1.0655522522437006], rtol=1e-12)
    assert float(X.sum()) == pytest.approx(78.61023442501713, rel=1e-12)
    assert y[:10].tolist() == [0, 0, 1, 0, 1, 1, 1, 1, 1, 0]


@pytest.mark.parametrize(
    ("ours", "name"),
    [(make_moons, "make_moons"), (make_circles, "make_circles"), (make_blobs, "make_blobs")],
)
def test_shared_random_state_advances_like_sklearn(sk: SimpleNamespace, ours: Call, name: str) -> None:
    # Two calls sharing one RandomState: the second call must see the same leftover stream.
    theirs = getattr(sk, name)
    kwargs: dict[str, Any] = {} if name == "make_blobs" else {"noise": 0.1}
    mine_rs, ref_rs = np.random.RandomState(123), np.random.RandomState(123)
    for _ in range(2):
        _assert_same(
            ours(n_samples=17, random_state=mine_rs, **kwargs),
            theirs(n_samples=17, random_state=ref_rs, **kwargs),
        )
    assert str(mine_rs.get_state()) == str(ref_rs.get_state())


SPLIT_CASES: list[tuple[int, dict[str, Any]]] = [
    (2, {"test_size": 0.5, "random_state": 0}),
    (3, {"test_size": 0.25, "random_state": 1}),
    (10, {"random_state": 42}),
    (10, {}),  # global seed
    (101, {"test_size": 0.33, "random_state": 7}),
    (101, {"test_size": 0.9, "random_state": 2**32 - 1}),
    (100, {"test_size": 0.1, "shuffle": False}),
    (37, {"test_size": 0.2, "shuffle": False, "random_state": 3}),
    (50, {"test_size": np.float64(0.3), "random_state": np.random.RandomState(9)}),
]


@pytest.mark.parametrize(("n", "kwargs"), SPLIT_CASES)
def test_train_test_split_matches_sklearn(sk: SimpleNamespace, n: int, kwargs: dict[str, Any]) -> None:
    X, y = make_moons(n_samples=n, noise=0.1, random_state=n)
    _assert_same(*_run_both(train_test_split, sk.train_test_split, X, y, **kwargs))


def test_train_test_split_of_lists_matches_sklearn(sk: SimpleNamespace) -> None:
    X, y = [[float(i), -float(i)] for i in range(9)], list(range(9))
    ours = train_test_split(X, y, test_size=0.3, random_state=5)
    theirs = sk.train_test_split(np.asarray(X), np.asarray(y), test_size=0.3, random_state=5)
    _assert_same(ours, theirs)


# Hypothesis: the same, over many sizes, noise levels and seeds.

seeds = st.integers(0, 2**32 - 1)
noises = st.one_of(st.none(), st.floats(0.0, 2.0))
fast = settings(max_examples=60, deadline=None)


@fast
@given(n=st.integers(1, 300), noise=noises, seed=seeds, shuffle=st.booleans())
def test_make_moons_matches_sklearn_property(
    sk: SimpleNamespace, n: int, noise: float | None, seed: int, shuffle: bool
) -> None:
    kwargs: dict[str, Any] = {"noise": noise, "random_state": seed, "shuffle": shuffle}
    _assert_same(make_moons(n, **kwargs), sk.make_moons(n, **kwargs))


@fast
@given(
    n=st.one_of(st.integers(1, 300), st.tuples(st.integers(0, 50), st.integers(1, 50))),
    noise=noises,
    seed=seeds,
    factor=st.floats(0.0, 1.0, exclude_max=True),
)
def test_make_circles_matches_sklearn_property(
    sk: SimpleNamespace, n: int | tuple[int, int], noise: float | None, seed: int, factor: float
) -> None:
    kwargs: dict[str, Any] = {"noise": noise, "random_state": seed, "factor": factor}
    _assert_same(make_circles(n, **kwargs), sk.make_circles(n, **kwargs))


@fast
@given(
    n=st.integers(1, 200),
    n_features=st.integers(1, 5),
    centers=st.integers(1, 6),
    std=st.floats(0.0, 5.0),
    seed=seeds,
)
def test_make_blobs_matches_sklearn_property(
    sk: SimpleNamespace, n: int, n_features: int, centers: int, std: float, seed: int
) -> None:
    kwargs: dict[str, Any] = {"centers": centers, "cluster_std": std, "random_state": seed}
    _assert_same(make_blobs(n, n_features, **kwargs), sk.make_blobs(n, n_features, **kwargs))


@fast
@given(
    n=st.integers(2, 200),
    test_size=st.floats(0.0, 1.0, exclude_min=True, exclude_max=True),
    seed=seeds,
    shuffle=st.booleans(),
)
def test_train_test_split_matches_sklearn_property(
    sk: SimpleNamespace, n: int, test_size: float, seed: int, shuffle: bool
) -> None:
    assume(math.ceil(test_size * n) < n)  # otherwise no training rows: both raise
    X, y = np.arange(2 * n, dtype=float).reshape(n, 2), np.arange(n)
    kwargs: dict[str, Any] = {"test_size": test_size, "random_state": seed, "shuffle": shuffle}
    _assert_same(train_test_split(X, y, **kwargs), sk.train_test_split(X, y, **kwargs))


# -------------------------------------------------------------------------------------------------
# Shapes, dtypes, labels and the documented constructions (no sklearn needed).
# -------------------------------------------------------------------------------------------------

ALL_MAKERS: list[tuple[Call, set[int]]] = [
    (make_moons, {0, 1}),
    (make_circles, {0, 1}),
    (make_blobs, {0, 1, 2}),
    (make_xor, {0, 1}),
    (make_spirals, {0, 1}),
]


@pytest.mark.parametrize(("make", "labels"), ALL_MAKERS)
def test_shapes_dtypes_and_labels(make: Call, labels: set[int]) -> None:
    X, y = make(n_samples=90, random_state=0)
    assert X.shape == (90, 2) and X.dtype == np.float64
    assert y.shape == (90,) and np.issubdtype(y.dtype, np.integer)
    assert set(y.tolist()) == labels
    assert np.isfinite(X).all()


@pytest.mark.parametrize(("make", "labels"), ALL_MAKERS)
def test_int_seed_is_deterministic_and_leaves_global_rng_alone(make: Call, labels: set[int]) -> None:
    kwargs: dict[str, Any] = {} if make is make_blobs else {"noise": 0.1}
    before = _global_state()
    first = make(n_samples=40, random_state=3, **kwargs)
    second = make(n_samples=40, random_state=3, **kwargs)
    other = make(n_samples=40, random_state=4, **kwargs)
    assert _global_state() == before
    _assert_same(first, second)
    assert not np.array_equal(first[0], other[0])


@pytest.mark.parametrize(("make", "labels"), ALL_MAKERS)
def test_none_uses_the_global_seed(make: Call, labels: set[int]) -> None:
    np.random.seed(5)
    first = make(n_samples=30)
    np.random.seed(5)
    second = make(n_samples=30)
    _assert_same(first, second)
    _assert_same(first, make(n_samples=30, random_state=np.random.RandomState(5)))


@pytest.mark.parametrize(("make", "labels"), ALL_MAKERS)
def test_a_shared_random_state_advances(make: Call, labels: set[int]) -> None:
    kwargs: dict[str, Any] = {} if make is make_blobs else {"noise": 0.1}
    rng = np.random.RandomState(0)
    first, second = make(30, random_state=rng, **kwargs), make(30, random_state=rng, **kwargs)
    assert not np.array_equal(first[0], second[0])


@given(n=st.integers(1, 300), seed=seeds)
def test_moons_and_circles_split_points_as_documented(n: int, seed: int) -> None:
    for make in (make_moons, make_circles):
        _, y = make(n, random_state=seed)
        assert (y == 0).sum() == n // 2 and (y == 1).sum() == n - n // 2
        _, y = make((n, 3), random_state=seed)
        assert (y == 0).sum() == n and (y == 1).sum() == 3


@given(n=st.integers(1, 300), seed=seeds, factor=st.floats(0.0, 1.0, exclude_max=True))
def test_circles_without_noise_lie_on_their_circles(n: int, seed: int, factor: float) -> None:
    X, y = make_circles(n, factor=factor, random_state=seed)
    radius = np.hypot(X[:, 0], X[:, 1])
    np.testing.assert_allclose(radius[y == 0], 1.0)
    np.testing.assert_allclose(radius[y == 1], factor, atol=1e-12)


def test_moons_without_shuffle_keep_their_order() -> None:
    X, y = make_moons(10, shuffle=False)
    assert y.tolist() == [0] * 5 + [1] * 5
    np.testing.assert_allclose(X[0], [1.0, 0.0])  # the upper moon starts at angle 0
    np.testing.assert_allclose(X[5], [0.0, 0.5])  # the lower one at (1 - cos 0, 1 - sin 0 - 0.5)


@given(n=st.integers(1, 200), centers=st.integers(1, 7), seed=seeds)
def test_blobs_share_points_evenly(n: int, centers: int, seed: int) -> None:
    # With no spread every point is its blob's center: one center per label, uniform in [-10, 10)³.
    X, y = make_blobs(n, 3, centers=centers, cluster_std=0.0, random_state=seed)
    counts = np.bincount(y, minlength=centers)
    assert X.shape == (n, 3) and len(counts) == centers
    assert counts.sum() == n and counts.max() - counts.min() <= 1
    assert counts.tolist() == sorted(counts.tolist(), reverse=True)  # remainder to the first
    assert all(len(np.unique(X[y == k], axis=0)) <= 1 for k in range(centers))
    assert ((X >= -10.0) & (X < 10.0)).all()


def test_blobs_with_zero_std_sit_on_their_centers() -> None:
    centers = np.array([[1.0, 2.0], [-3.0, 4.0]])
    X, y = make_blobs(12, centers=centers, cluster_std=0.0)
    np.testing.assert_array_equal(X, centers[y])


@given(n=st.integers(1, 300), seed=seeds, noise=noises)
def test_xor_labels_follow_the_signs(n: int, seed: int, noise: float | None) -> None:
    clean, y_clean = make_xor(n, random_state=seed)
    assert ((clean >= -1.0) & (clean < 1.0)).all()
    assert y_clean.tolist() == (np.sign(clean[:, 0]) != np.sign(clean[:, 1])).astype(int).tolist()
    # Noise is drawn after the points, so the labels are those of the clean points.
    X, y = make_xor(n, noise=noise, random_state=seed)
    np.testing.assert_array_equal(y, y_clean)
    if not noise:
        np.testing.assert_array_equal(X, clean)


@given(
    n=st.integers(1, 300),
    n_classes=st.integers(2, 6),
    turns=st.floats(0.1, 4.0),
    seed=seeds,
)
def test_spirals_follow_their_construction(n: int, n_classes: int, turns: float, seed: int) -> None:
    X, y = make_spirals(n, n_classes=n_classes, turns=turns, random_state=seed)
    counts = np.bincount(y, minlength=n_classes)
    assert X.shape == (n, 2) and len(counts) == n_classes
    assert counts.sum() == n and counts.max() - counts.min() <= 1
    radius = np.hypot(X[:, 0], X[:, 1])
    assert ((radius > 0) & (radius <= 1 + 1e-12)).all()
    # Each point is at angle 2π (turns * r + k / n_classes) on arm k, its radius being t.
    angle = np.arctan2(X[:, 1], X[:, 0])
    expected = 2 * np.pi * (turns * radius + y / n_classes)
    np.testing.assert_allclose(np.cos(angle - expected), 1.0, atol=1e-9)


def test_spirals_without_shuffle_or_noise_are_fixed() -> None:
    X, y = make_spirals(7, n_classes=3, shuffle=False)
    assert y.tolist() == [0, 0, 0, 1, 1, 2, 2]
    np.testing.assert_allclose(X[2], [1.0, 0.0], atol=1e-12)  # t = 1, angle 2π: a whole turn
    _assert_same((X, y), make_spirals(7, n_classes=3, shuffle=False, random_state=1))


@pytest.mark.parametrize("make", [make_moons, make_circles, make_spirals, make_xor])
def test_noise_zero_is_noise_none(make: Call) -> None:
    X0, y0 = make(50, noise=0.0, random_state=2)
    X1, y1 = make(50, noise=None, random_state=2)
    np.testing.assert_array_equal(X0, X1)
    np.testing.assert_array_equal(y0, y1)


@given(
    n=st.integers(2, 300),
    test_size=st.floats(0.0, 1.0, exclude_min=True, exclude_max=True),
    seed=seeds,
    shuffle=st.booleans(),
)
def test_train_test_split_partitions_rows(n: int, test_size: float, seed: int, shuffle: bool) -> None:
    n_test = math.ceil(test_size * n)
    assume(n_test < n)
    X, y = np.arange(2 * n).reshape(n, 2), np.arange(n) * 10
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size, seed, shuffle)
    assert len(X_test) == len(y_test) == n_test and len(X_train) == len(y_train) == n - n_test
    rows = np.concatenate([X_train, X_test])
    np.testing.assert_array_equal(np.sort(rows[:, 0]), X[:, 0])  # every row exactly once
    np.testing.assert_array_equal(rows[:, 0] * 5, np.concatenate([y_train, y_test]))  # rows paired
    if not shuffle:
        np.testing.assert_array_equal(rows, X)


def test_train_test_split_without_shuffle_draws_nothing() -> None:
    before = _global_state()
    train_test_split(np.zeros((10, 2)), np.zeros(10), shuffle=False)
    assert _global_state() == before


def test_train_test_split_is_seeded() -> None:
    X, y = make_moons(60, random_state=0)
    a = train_test_split(X, y, random_state=1)
    _assert_same(a, train_test_split(X, y, random_state=1))
    assert not np.array_equal(a[0], train_test_split(X, y, random_state=2)[0])


# -------------------------------------------------------------------------------------------------
# make_dataset: a dataset by name, as `chainrule train --dataset` makes it.
# -------------------------------------------------------------------------------------------------


# What `chainrule train` trained on before make_dataset existed (its own `_dataset` code): a SHA-256 of
# X's and y's little-endian bytes, for (name, n_samples, noise, n_classes, seed).
CLI_ARRAYS = [
    ("moons", 100, None, 2, 1337, "a2cd351031df650f"),  # micrograd's demo
    ("circles", 100, None, 2, 1337, "e784662aa49d4e18"),
    ("blobs", 100, None, 2, 1337, "87734edba95b75f7"),
    ("xor", 100, None, 2, 1337, "58639f091c001727"),
    ("spirals", 100, None, 2, 1337, "538ce4e08d03e66e"),
    ("blobs", 37, 0.3, 3, 0, "22ee9789b48cb2cc"),
    ("spirals", 37, 0.3, 3, 0, "6f202f011e5f179b"),
    ("xor", 5, 0.0, 2, 2**32 - 1, "34bc9b3701933d58"),
]


def test_every_dataset_has_the_default_noise_the_cli_had() -> None:
    assert DATASETS == ("moons", "circles", "blobs", "xor", "spirals")
    assert DEFAULT_NOISE == {"moons": 0.1, "circles": 0.1, "blobs": 1.0, "xor": 0.1, "spirals": 0.02}


@pytest.mark.parametrize(("name", "n", "noise", "classes", "seed", "digest"), CLI_ARRAYS)
def test_make_dataset_is_what_the_cli_trained_on(name: str, n: int, noise: float | None, classes: int,
                                                 seed: int, digest: str) -> None:
    before = _global_state()
    X, y = make_dataset(name, n, noise=noise, n_classes=classes, random_state=seed)
    assert X.dtype == np.float64 and X.shape == (n, 2) and y.shape == (n,)
    data = X.astype("<f8").tobytes() + y.astype("<i8").tobytes()
    assert hashlib.sha256(data).hexdigest()[:16] == digest
    assert _global_state() == before


@pytest.mark.parametrize("name", ["moons", "circles", "xor", "spirals"])
def test_make_dataset_is_the_maker_of_that_name(name: str) -> None:
    maker = {"moons": make_moons, "circles": make_circles, "xor": make_xor, "spirals": make_spirals}[name]
    extra = {"factor": 0.5} if name == "circles" else {}
    _assert_same(make_dataset(name, 50, random_state=3),
                 maker(50, noise=DEFAULT_NOISE[name], random_state=3, **extra))
    _assert_same(make_dataset(name, 50, noise=0.7, random_state=3),
                 maker(50, noise=0.7, random_state=3, **extra))


@pytest.mark.parametrize("name", DATASETS)
def test_make_dataset_gives_every_class_and_standardised_blobs(name: str) -> None:
    classes = 5 if name in ("blobs", "spirals") else 2
    X, y = make_dataset(name, 60, n_classes=classes, random_state=7)
    assert X.shape == (60, 2) and X.dtype == np.float64 and np.isfinite(X).all()
    assert set(y.tolist()) == set(range(classes))
    if name == "blobs":  # centres anywhere in [-10, 10]² would saturate tanh and sigmoid units
        np.testing.assert_allclose(X.mean(axis=0), 0.0, atol=1e-12)
        np.testing.assert_allclose(X.std(axis=0), 1.0)


@pytest.mark.parametrize("name", ["mnist", "Moons", "", None, 3])
def test_make_dataset_refuses_an_unknown_name_listing_the_known(name: Any) -> None:
    with pytest.raises(ValueError, match=f"unknown dataset {re.escape(repr(name))}; choose one of "
                                         "moons, circles, blobs, xor, spirals"):
        make_dataset(name, 10)


# -------------------------------------------------------------------------------------------------
# Bad inputs: a ValueError that names the parameter and shows the value.
# -------------------------------------------------------------------------------------------------

NAN, INF = float("nan"), float("inf")
TWO = [[1.0, 2.0], [3.0, 4.0]]

BAD_INPUTS: list[tuple[Call, str, Any, dict[str, Any]]] = [
    # (function, bad parameter, its value, other arguments)
    *[
        (make, "n_samples", value, {})
        for make in (make_moons, make_circles)
        for value in (0, -1, 2.5, True, "10", None, (1, 2, 3), (-1, 5), (0, 0), (1.5, 2), [3, 4])
    ],
    *[(make, "noise", value, {}) for make in (make_moons, make_circles) for value in (-0.1, NAN, INF)],
    (make_moons, "noise", "0.1", {}),
    *[
        (make, "random_state", value, {})
        for make in (make_moons, make_circles, make_blobs, make_xor, make_spirals)
        for value in (-1, 2**32, 1.5, "seed", True, np.random.default_rng(0))
    ],
    *[(make_circles, "factor", value, {}) for value in (-0.1, 1.0, 1, 1.5, NAN, None)],
    *[
        (make_blobs, "n_samples", value, {})
        for value in (0, -5, 2.5, True, "abc", None, [], [0, 0], [3, -1], [2.5, 3], np.array([[1]]))
    ],
    *[(make_blobs, "n_features", value, {}) for value in (0, -1, 2.0)],
    *[(make_blobs, "centers", value, {}) for value in (0, -1, [[1, 2], [3]], [1, 2], [[NAN, 0]])],
    (make_blobs, "centers", np.empty((0, 2)), {}),
    (make_blobs, "centers", "abc", {}),
    (make_blobs, "centers", 2, {"n_samples": [5, 5]}),  # counts per blob need coordinates
    (make_blobs, "centers", [[0, 0]], {"n_samples": [5, 5]}),
    *[(make_blobs, "cluster_std", value, {}) for value in (-1.0, NAN, INF, "wide", [1, -1, 1])],
    (make_blobs, "cluster_std", [1.0, 2.0], {"centers": 3}),
    (make_blobs, "cluster_std", [1.0, 2.0, 3.0], {"centers": TWO}),
    *[(make_xor, "n_samples", value, {}) for value in (0, -3, 1.0, (5, 5))],
    *[(make_xor, "noise", value, {}) for value in (-0.5, NAN)],
    *[(make_spirals, "n_samples", value, {}) for value in (0, -3, 1.0, (5, 5))],
    *[(make_spirals, "n_classes", value, {}) for value in (1, 0, -2, 2.0)],
    *[(make_spirals, "turns", value, {}) for value in (0, 0.0, -1.0, INF, NAN, "1")],
    *[(make_spirals, "noise", value, {}) for value in (-1.0, INF)],
    *[(make_dataset, "n_samples", value, {"name": "moons"}) for value in (0, -1, 2.5, True, "10", None)],
    (make_dataset, "n_samples", 2, {"name": "blobs", "n_classes": 3}),  # a class would have no point
    *[(make_dataset, "n_classes", value, {"name": "blobs"}) for value in (1, 0, 2.0, True, None)],
    *[(make_dataset, "n_classes", 3, {"name": name}) for name in ("moons", "circles", "xor")],
    *[(make_dataset, "noise", value, {"name": "spirals"}) for value in (-0.1, NAN, INF, "0.1")],
    *[(make_dataset, "random_state", value, {"name": "xor"}) for value in (-1, 2**32, "seed")],
]


def _bad_id(case: tuple[Call, str, Any, dict[str, Any]]) -> str:
    make, name, value, others = case
    extra = "".join(f",{k}={v!r}" for k, v in others.items())
    return f"{make.__name__}({name}={value!r}{extra})"


@pytest.mark.parametrize("case", BAD_INPUTS, ids=_bad_id)
def test_bad_input_raises_value_error_naming_it(
    case: tuple[Call, str, Any, dict[str, Any]],
) -> None:
    make, name, value, others = case
    with pytest.raises(ValueError) as info:
        make(**{name: value}, **others)
    message = str(info.value)
    assert name in message
    assert repr(value) in message


def test_bad_input_does_not_touch_the_global_rng() -> None:
    before = _global_state()
    with pytest.raises(ValueError):
        make_blobs([5, 5], centers=[[0, 0]])
    with pytest.raises(ValueError):
        make_blobs(10, centers=3, cluster_std=[1.0, 2.0])
    assert _global_state() == before


X10, Y10 = np.zeros((10, 2)), np.zeros(10)


@pytest.mark.parametrize("test_size", [0, 1, 0.0, 1.0, -0.1, 1.5, NAN, INF, True, "0.25", 5, None])
def test_train_test_split_rejects_bad_test_size(test_size: Any) -> None:
    with pytest.raises(ValueError, match="test_size") as info:
        train_test_split(X10, Y10, test_size=test_size)
    assert repr(test_size) in str(info.value)


@pytest.mark.parametrize("random_state", [-1, 2**32, 1.5, "seed", True])
def test_train_test_split_rejects_bad_random_state(random_state: Any) -> None:
    with pytest.raises(ValueError, match="random_state") as info:
        train_test_split(X10, Y10, random_state=random_state)
    assert repr(random_state) in str(info.value)


def test_train_test_split_needs_a_training_row() -> None:
    with pytest.raises(ValueError, match=r"test_size=0\.5 leaves no training rows.*n_samples=1"):
        train_test_split([[1.0]], [0], test_size=0.5)
    with pytest.raises(ValueError, match=r"test_size=0\.95.*n_samples=10"):
        train_test_split(X10, Y10, test_size=0.95)


@pytest.mark.parametrize(
    ("X", "y"), [(np.zeros((3, 2)), np.zeros(2)), (np.float64(1.0), np.zeros(1)), ([], [0])]
)
def test_train_test_split_rejects_mismatched_rows(X: Any, y: Any) -> None:
    with pytest.raises(ValueError, match="X and y must have the same number of rows"):
        train_test_split(X, y)


# ----- names: makemore's data set, shipped in the package ----------------------------------------------


def test_names_is_makemore_names_txt() -> None:
    from chainrule.data import names

    words = names()
    assert len(words) == 32033 and len(set(words)) == 29494
    assert words[:3] == ["emma", "olivia", "ava"] and words[-1] == "zzyzx"
    assert set("".join(words)) == set("abcdefghijklmnopqrstuvwxyz")
    assert min(map(len, words)) == 2 and max(map(len, words)) == 15
    digest = hashlib.sha256("\n".join(words).encode()).hexdigest()
    assert digest == hashlib.sha256("\n".join(names()).encode()).hexdigest()
    words.clear()  # a fresh list each call: the caller may change it
    assert len(names()) == 32033


def test_names_licence_ships_beside_the_file() -> None:
    from importlib import resources

    licence = resources.files("chainrule").joinpath("datasets/names.LICENSE.txt").read_text()
    assert "MIT License" in licence and "Andrej Karpathy" in licence


@pytest.mark.parametrize("name", DATASETS)
def test_make_dataset_without_a_seed_leaves_numpys_global_generator_alone(name: str) -> None:
    np.random.seed(7)
    before = _global_state()
    X1, _ = make_dataset(name, 50)
    X2, _ = make_dataset(name, 50)
    assert _global_state() == before  # a fresh generator was drawn from, not the global one
    assert not np.array_equal(X1, X2)  # and each call is a new draw
