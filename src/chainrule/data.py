"""Toy datasets to train small classifiers on, seeded, as NumPy arrays.

`make_moons`, `make_circles`, `make_blobs` and `train_test_split` give the same arrays, bit for bit,
as scikit-learn's functions of the same names, for the same arguments and seed: they make the same
random draws in the same order. So results from micrograd's demo or a sklearn tutorial carry over
without sklearn installed. `make_xor` and `make_spirals` are chainrule's own. `make_dataset` picks
one of the five by name, with its default noise, as `chainrule train --dataset` does.

`names()` is the one real text data set: makemore's 32,033 first names, shipped inside the package
(chainrule/datasets/names.txt, MIT licence beside it), for the character models of chainrule.lm.

`random_state` works as in sklearn: an int seeds a fresh `np.random.RandomState`, a RandomState is
used (and advanced) as it is, and None uses NumPy's global RandomState.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from importlib import resources
from typing import Any, TypeGuard

import numpy as np
import numpy.typing as npt

Seed = int | np.random.RandomState | None
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

__all__ = [
    "DATASETS",
    "DEFAULT_NOISE",
    "make_blobs",
    "make_circles",
    "make_dataset",
    "make_moons",
    "make_spirals",
    "make_xor",
    "names",
    "train_test_split",
]


# --------------------------------------------------------------------------------------------------
# Checking arguments and making random draws the way sklearn does.
# --------------------------------------------------------------------------------------------------


def _check_random_state(random_state: Seed) -> np.random.RandomState:
    """sklearn's `check_random_state`: None -> the global RandomState, int -> a fresh one."""
    # NOTE: None means NumPy's *global* RandomState, on purpose and only here: it is what makes
    # `np.random.seed(1337); make_moons(100, noise=0.1)` reproduce micrograd's demo, as sklearn
    # does. Pass an int or a RandomState to keep global state out of it.
    if random_state is None:
        return np.random.mtrand._rand
    if isinstance(random_state, np.random.RandomState):
        return random_state
    if _is_int(random_state) and 0 <= random_state < 2**32:
        return np.random.RandomState(int(random_state))
    raise ValueError(
        f"random_state must be None, an int in [0, 2**32) or a RandomState, got {random_state!r}"
    )


def _is_int(value: object) -> TypeGuard[int | np.integer[Any]]:
    # bool is an int to Python, but n_samples=True is a mistake, not a count.
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_real(value: object) -> TypeGuard[float | int | np.floating[Any] | np.integer[Any]]:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_count(value: object, name: str, minimum: int = 1) -> int:
    if not (_is_int(value) and value >= minimum):
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _check_noise(noise: float | None) -> float | None:
    if noise is None:
        return None
    if not (_is_real(noise) and math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be None or a finite float >= 0, got {noise!r}")
    return float(noise)


def _two_groups(n_samples: int | tuple[int, int]) -> tuple[int, int]:
    """Split n_samples into two group sizes; an odd point goes to the second group (as sklearn)."""
    if _is_int(n_samples) and n_samples >= 1:
        return int(n_samples // 2), int(n_samples - n_samples // 2)
    if (
        isinstance(n_samples, tuple)
        and len(n_samples) == 2
        and all(_is_int(k) and k >= 0 for k in n_samples)
        and sum(n_samples) >= 1
    ):
        return int(n_samples[0]), int(n_samples[1])
    raise ValueError(
        f"n_samples must be an int >= 1 or a tuple of two ints >= 0 (not both 0), got {n_samples!r}"
    )


def _spread(n_samples: int, n_groups: int) -> list[int]:
    """n_samples shared out as evenly as possible, the first groups taking the remainder."""
    counts = [n_samples // n_groups] * n_groups
    for i in range(n_samples % n_groups):
        counts[i] += 1
    return counts


def _shuffle_and_blur(
    X: FloatArray,
    y: IntArray,
    shuffle: bool,
    noise: float | None,
    rng: np.random.RandomState,
) -> tuple[FloatArray, IntArray]:
    """Shuffle the rows, then add Gaussian noise: the order of draws in sklearn's make_moons."""
    if shuffle:
        # Shuffle an index vector and take rows, not the arrays themselves: the same draws as
        # sklearn.utils.shuffle, so the same order.
        order = np.arange(len(y))
        rng.shuffle(order)
        X, y = X[order], y[order]
    if noise is not None:
        X = X + rng.normal(scale=noise, size=X.shape)
    return X, y


def _float_array(values: object) -> FloatArray:
    """values as a float array, or an empty one (which every shape check rejects) if they aren't."""
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return np.empty(0)


def _labels(counts: Sequence[int]) -> IntArray:
    """[0]*counts[0] + [1]*counts[1] + ..., as an int array."""
    return np.repeat(np.arange(len(counts), dtype=np.intp), counts)


# --------------------------------------------------------------------------------------------------
# The datasets.
# --------------------------------------------------------------------------------------------------


def make_moons(
    n_samples: int | tuple[int, int] = 100,
    *,
    shuffle: bool = True,
    noise: float | None = None,
    random_state: Seed = None,
) -> tuple[FloatArray, IntArray]:
    """Two interleaving half circles, labels 0 (upper) and 1 (lower). Same as sklearn's.

    n_samples: total (the odd point goes to moon 1) or a tuple (points in moon 0, in moon 1).
    noise: standard deviation of Gaussian noise added to X (None: no noise, and no draws).
    """
    n_out, n_in = _two_groups(n_samples)
    noise = _check_noise(noise)
    rng = _check_random_state(random_state)

    # Points evenly spaced along each arc; randomness comes only from the shuffle and the noise.
    # Keep the arithmetic as sklearn writes it ((1 - sin) - 0.5), or the last bit can differ.
    outer_x = np.cos(np.linspace(0, np.pi, n_out))
    outer_y = np.sin(np.linspace(0, np.pi, n_out))
    inner_x = 1 - np.cos(np.linspace(0, np.pi, n_in))
    inner_y = 1 - np.sin(np.linspace(0, np.pi, n_in)) - 0.5

    X = np.vstack([np.append(outer_x, inner_x), np.append(outer_y, inner_y)]).T
    return _shuffle_and_blur(X, _labels([n_out, n_in]), shuffle, noise, rng)


def make_circles(
    n_samples: int | tuple[int, int] = 100,
    *,
    shuffle: bool = True,
    noise: float | None = None,
    random_state: Seed = None,
    factor: float = 0.8,
) -> tuple[FloatArray, IntArray]:
    """A big circle (label 0) around a smaller one (label 1) of radius `factor`. Same as sklearn's.

    n_samples: total (the odd point goes to the inner circle) or a tuple (outer, inner).
    noise: standard deviation of Gaussian noise added to X (None: no noise, and no draws).
    factor: inner radius / outer radius, in [0, 1).
    """
    n_out, n_in = _two_groups(n_samples)
    noise = _check_noise(noise)
    if not (_is_real(factor) and 0 <= factor < 1):
        raise ValueError(f"factor must be a float in [0, 1), got {factor!r}")
    rng = _check_random_state(random_state)

    # endpoint=False so that the first point of a circle is not also its last.
    angle_out = np.linspace(0, 2 * np.pi, n_out, endpoint=False)
    angle_in = np.linspace(0, 2 * np.pi, n_in, endpoint=False)
    outer_x, outer_y = np.cos(angle_out), np.sin(angle_out)
    inner_x, inner_y = np.cos(angle_in) * factor, np.sin(angle_in) * factor

    X = np.vstack([np.append(outer_x, inner_x), np.append(outer_y, inner_y)]).T
    return _shuffle_and_blur(X, _labels([n_out, n_in]), shuffle, noise, rng)


def make_blobs(
    n_samples: int | Sequence[int] | npt.NDArray[np.integer[Any]] = 100,
    n_features: int = 2,
    *,
    centers: int | npt.ArrayLike | None = None,
    cluster_std: float | Sequence[float] = 1.0,
    shuffle: bool = True,
    random_state: Seed = None,
) -> tuple[FloatArray, IntArray]:
    """Gaussian blobs, one label per blob (0, 1, ...). Same as sklearn's.

    n_samples: total, shared evenly between blobs, or a sequence of points per blob.
    centers: number of blobs (default 3), or their coordinates, shape (n_centers, n_features),
        which then set n_features. Random centers are uniform in [-10, 10) on every axis
        (sklearn's default center_box).
    cluster_std: standard deviation of every blob, or one per blob.
    """
    per_blob: list[int] | None = None  # None: an int total, shared out once n_centers is known
    if _is_int(n_samples):
        total = _check_count(n_samples, "n_samples")
    elif not isinstance(n_samples, Sequence | np.ndarray) or isinstance(n_samples, str):
        raise ValueError(f"n_samples must be an int >= 1 or a sequence of ints, got {n_samples!r}")
    elif all(_is_int(k) and k >= 0 for k in n_samples) and sum(n_samples) >= 1:
        per_blob = [int(k) for k in n_samples]
    else:
        raise ValueError(f"n_samples must be ints >= 0, one per blob, not all 0, got {n_samples!r}")
    n_features = _check_count(n_features, "n_features")

    center_array: FloatArray | None = None
    if centers is None:
        n_centers = 3 if per_blob is None else len(per_blob)
    elif _is_int(centers) and per_blob is None:
        n_centers = _check_count(centers, "centers")
    else:
        center_array = _float_array(centers)
        if center_array.ndim != 2 or len(center_array) < 1 or not np.isfinite(center_array).all():
            raise ValueError(
                "centers must be an int >= 1 (when n_samples is an int) or a 2-D array of finite "
                f"coordinates, one row per blob, got {centers!r}"
            )
        n_centers, n_features = center_array.shape
    if per_blob is not None and len(per_blob) != n_centers:
        raise ValueError(
            f"n_samples has {len(per_blob)} entries but there are {n_centers} centers: "
            f"n_samples={n_samples!r}, centers={centers!r}"
        )

    stds = np.full(n_centers, cluster_std) if _is_real(cluster_std) else _float_array(cluster_std)
    if stds.shape != (n_centers,) or not (np.isfinite(stds) & (stds >= 0)).all():
        raise ValueError(
            f"cluster_std must be a float >= 0 or one such float per center ({n_centers}), "
            f"got {cluster_std!r}"
        )

    rng = _check_random_state(random_state)
    if center_array is None:
        center_array = rng.uniform(-10.0, 10.0, size=(n_centers, n_features))
    if per_blob is None:
        per_blob = _spread(total, n_centers)

    # One normal draw per blob, in blob order, then one shuffle: sklearn's sequence of draws.
    X = np.concatenate(
        [
            rng.normal(loc=center, scale=std, size=(n, n_features))
            for center, std, n in zip(center_array, stds, per_blob, strict=True)
        ]
    )
    return _shuffle_and_blur(X, _labels(per_blob), shuffle, None, rng)


def make_xor(
    n_samples: int = 100,
    *,
    noise: float | None = None,
    random_state: Seed = None,
) -> tuple[FloatArray, IntArray]:
    """Points uniform in the square [-1, 1]², label 1 where x and y have opposite signs, else 0.

    The problem a single neuron cannot solve: no straight line separates the classes.
    Labels come from the points before noise, so noise (the standard deviation of Gaussian noise
    added to X) blurs the boundary. The points are drawn in random order, so there is no shuffle.
    """
    n_samples = _check_count(n_samples, "n_samples")
    noise = _check_noise(noise)
    rng = _check_random_state(random_state)

    X = rng.uniform(-1.0, 1.0, size=(n_samples, 2))
    y = ((X[:, 0] > 0) != (X[:, 1] > 0)).astype(np.intp)
    if noise is not None:
        X = X + rng.normal(scale=noise, size=X.shape)
    return X, y


def make_spirals(
    n_samples: int = 100,
    *,
    n_classes: int = 2,
    turns: float = 1.0,
    shuffle: bool = True,
    noise: float | None = None,
    random_state: Seed = None,
) -> tuple[FloatArray, IntArray]:
    """`n_classes` spiral arms winding out of the origin, one label per arm (0, 1, ...).

    Arm k is the curve (t cos a, t sin a), a = 2π (turns * t + k / n_classes), for t in (0, 1],
    sampled at evenly spaced t as make_moons samples its arcs: the seed only sets the order
    (shuffle) and the noise (standard deviation of Gaussian noise added to X).
    n_samples is shared between arms as evenly as possible, the first arms taking the remainder.
    """
    n_samples = _check_count(n_samples, "n_samples")
    n_classes = _check_count(n_classes, "n_classes", minimum=2)
    if not (_is_real(turns) and math.isfinite(turns) and turns > 0):
        raise ValueError(f"turns must be a finite float > 0, got {turns!r}")
    noise = _check_noise(noise)
    rng = _check_random_state(random_state)

    counts = _spread(n_samples, n_classes)
    arms = []
    for k, n in enumerate(counts):
        t = np.arange(1, n + 1) / n if n else np.empty(0)  # t = 0 would put every arm at the origin
        angle = 2 * np.pi * (turns * t + k / n_classes)
        arms.append(np.column_stack([t * np.cos(angle), t * np.sin(angle)]))
    return _shuffle_and_blur(np.concatenate(arms), _labels(counts), shuffle, noise, rng)


# --------------------------------------------------------------------------------------------------
# A dataset by name.
# --------------------------------------------------------------------------------------------------

# Each dataset's noise when none is given: enough to blur the classes without hiding them. For blobs
# it is the clusters' standard deviation (before they are standardised, below).
DEFAULT_NOISE = {"moons": 0.1, "circles": 0.1, "blobs": 1.0, "xor": 0.1, "spirals": 0.02}
DATASETS = tuple(DEFAULT_NOISE)
_MANY_CLASSES = ("blobs", "spirals")  # the others always have 2


def make_dataset(
    name: str,
    n_samples: int = 100,
    *,
    noise: float | None = None,
    n_classes: int = 2,
    random_state: Seed = None,
) -> tuple[FloatArray, IntArray]:
    """The 2-D toy dataset `name` (one of DATASETS), as `chainrule train --dataset name` trains on it.

    noise: None takes the dataset's DEFAULT_NOISE. n_classes: 2, or more for blobs and spirals.
    Circles have an inner radius of 0.5; blobs are standardised (mean 0, standard deviation 1 on each
    axis). Otherwise the arrays are those of the make_* function of that name. random_state None draws from
    a fresh, unseeded RandomState, never NumPy's global one (which only the sklearn-named makers read, so
    that micrograd's `np.random.seed(1337); make_moons(...)` carries over).
    """
    if name not in DEFAULT_NOISE:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    n_classes = _check_count(n_classes, "n_classes", minimum=2)
    if n_classes != 2 and name not in _MANY_CLASSES:
        raise ValueError(f"{name} always has 2 classes, got n_classes={n_classes} (only "
                         f"{' and '.join(_MANY_CLASSES)} have more)")
    n_samples = _check_count(n_samples, "n_samples")
    if n_samples < n_classes:
        raise ValueError(f"need at least one point per class: n_samples={n_samples} for "
                         f"n_classes={n_classes}")
    std = DEFAULT_NOISE[name] if noise is None else _check_noise(noise) or 0.0
    rng = np.random.RandomState() if random_state is None else _check_random_state(random_state)
    if name == "moons":
        return make_moons(n_samples, noise=std, random_state=rng)
    if name == "circles":
        return make_circles(n_samples, noise=std, factor=0.5, random_state=rng)
    if name == "xor":
        return make_xor(n_samples, noise=std, random_state=rng)
    if name == "spirals":
        return make_spirals(n_samples, n_classes=n_classes, noise=std, random_state=rng)
    X, y = make_blobs(n_samples, centers=n_classes, cluster_std=std, random_state=rng)
    # Blob centres lie anywhere in [-10, 10]²: standardised, tanh and sigmoid units don't start saturated.
    return (X - X.mean(axis=0)) / X.std(axis=0), y


# --------------------------------------------------------------------------------------------------
# Splitting a dataset.
# --------------------------------------------------------------------------------------------------


def train_test_split(
    X: npt.ArrayLike,
    y: npt.ArrayLike,
    test_size: float = 0.25,
    random_state: Seed = None,
    shuffle: bool = True,
) -> tuple[npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[Any]]:
    """Split rows into (X_train, X_test, y_train, y_test). Same as sklearn's for a float test_size.

    The test set gets ceil(test_size * n) rows. shuffle=True draws one permutation of the rows and
    gives its first rows to the test set (sklearn's ShuffleSplit); shuffle=False keeps the order,
    with the test set last, and draws nothing.
    """
    X_arr, y_arr = np.asarray(X), np.asarray(y)
    if X_arr.ndim == 0 or y_arr.ndim == 0 or len(X_arr) != len(y_arr):
        raise ValueError(
            f"X and y must have the same number of rows, got shapes {X_arr.shape} and {y_arr.shape}"
        )
    if not (_is_real(test_size) and 0 < test_size < 1):
        raise ValueError(f"test_size must be a float in (0, 1), got {test_size!r}")
    n = len(X_arr)
    n_test = math.ceil(float(test_size) * n)
    n_train = n - n_test
    if n_train < 1:
        raise ValueError(f"test_size={test_size!r} leaves no training rows out of n_samples={n}")

    if shuffle:
        order = _check_random_state(random_state).permutation(n)
        test, train = order[:n_test], order[n_test:]
    else:
        train, test = np.arange(n_train), np.arange(n_train, n)
    return X_arr[train], X_arr[test], y_arr[train], y_arr[test]


# --------------------------------------------------------------------------------------------------
# Names: the data set of makemore and microgpt.
# --------------------------------------------------------------------------------------------------


def names() -> list[str]:
    """The 32,033 lowercase first names of makemore's names.txt, in the file's order (a-z, 2-15 letters).

    The file ships in the package (chainrule/datasets/names.txt, with names.LICENSE.txt: MIT, Andrej
    Karpathy, 2022), built from the US Social Security Administration's baby-name lists: no download.
    A fresh list each call, so a caller may shuffle it. 29,494 are distinct: some names appear twice.
    """
    text = resources.files("chainrule").joinpath("datasets/names.txt").read_text(encoding="utf-8")
    # As microgpt reads it: one name per line, blank lines and surrounding spaces dropped.
    return [line.strip() for line in text.splitlines() if line.strip()]
