"""A compiled isolation forest: what :class:`~detectors.enterprise_outlier.EnterpriseOutlierDetector` fits.

:func:`fit_forest` grows the trees ``sklearn.ensemble.IsolationForest(...).fit`` grows, with the same
random draws but without the ensemble's overhead per tree, and compiles them into a :class:`Forest`:
flat arrays, compact to hold and pickle, that decide many rows at once with numpy or one row at a
time as nested tuples. Its scores and decisions equal scikit-learn's bit for bit (the unit tests hold
the two together; :func:`_compile` is the reference).
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

import numpy as np
from sklearn.utils.random import sample_without_replacement

__all__ = ["Forest", "fit_forest"]


@lru_cache(maxsize=4096)
def _average_path_length(n: int) -> float:
    """Expected path length of an unsuccessful search in a binary search tree of ``n`` points."""
    if n <= 1:
        return 0.0
    if n == 2:
        return 1.0
    return 2.0 * (math.log(n - 1.0) + np.euler_gamma) - 2.0 * (n - 1.0) / n


#: A fitted isolation tree as nested tuples: an inner node is ``(feature, threshold, left, right)``,
#: a leaf is its depth plus the expected path length of the training points it holds.
_Node = tuple[int, float, "_Node", "_Node"] | float


@lru_cache(maxsize=16)
def _path_length_table(n: int) -> np.ndarray:
    """``_average_path_length(k)`` for ``k`` in ``0..n``, as an array (the same floats, bit for bit)."""
    return np.array([_average_path_length(k) for k in range(n + 1)], dtype=np.float64)


@dataclass(frozen=True, slots=True)
class _Grown:
    """The nodes of fitted scikit-learn trees, the trees one after the other.

    Node ``n`` of tree ``k`` is ``start[k] + n``; ``left`` and ``right`` number the children within
    their tree (-1 at a leaf), as scikit-learn does. Read once from the trees, for the forest and
    for the training scores (:func:`fit_forest`).
    """

    start: np.ndarray  #: each tree's first node
    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    counts: np.ndarray  #: the training points in each node
    depth: np.ndarray  #: 1 at a root, as ``Tree.compute_node_depths`` counts

    @classmethod
    def of(cls, trees: list[Any]) -> _Grown:
        """The nodes of ``trees``: fitted scikit-learn ``Tree`` objects."""
        sizes = [tree.node_count for tree in trees]
        return cls(
            start=np.cumsum([0, *sizes[:-1]], dtype=np.intp),
            left=np.concatenate([tree.children_left for tree in trees]),
            right=np.concatenate([tree.children_right for tree in trees]),
            feature=np.concatenate([tree.feature for tree in trees]),
            threshold=np.concatenate([tree.threshold for tree in trees]),
            counts=np.concatenate([tree.n_node_samples for tree in trees]),
            depth=np.concatenate([tree.compute_node_depths() for tree in trees]),
        )


class Forest:
    """A fitted isolation forest as flat arrays: compact to hold and pickle, quick to decide many rows.

    Node ``n`` of the whole forest (the trees one after the other) has ``feature[n]``,
    ``threshold[n]`` and children ``left[n]`` / ``right[n]``; a leaf points to itself with an
    infinite threshold and holds its path length (its depth plus the expected path length of the
    training points it holds) in ``value[n]``. So ``levels`` steps of "go left when
    ``x[feature] <= threshold``" from the ``roots`` bring a row to its leaf in every tree, which is
    how :meth:`depths` decides many rows at once with numpy (a replay's batch mode).

    One row at a time (a live stream) walks the same trees as nested tuples (:attr:`trees`, built
    from the arrays on first use and never pickled: a cache). Both compare the row rounded to
    float32 with the thresholds as float64, and add the path lengths tree after tree in the same
    order, so they give the same depths, scores and decisions to the last bit.
    """

    __slots__ = (
        "_trees",
        "_ways",
        "denominator",
        "feature",
        "floors",
        "left",
        "levels",
        "medians",
        "min_train_score",
        "n_train",
        "offset",
        "right",
        "roots",
        "threshold",
        "value",
    )
    _ARRAYS = ("feature", "threshold", "left", "right", "value", "roots")
    _SCALARS = ("levels", "denominator", "offset", "medians", "min_train_score", "n_train", "floors")

    def __init__(
        self,
        *,
        nodes: _Grown,
        denominator: float,
        offset: float,
        medians: tuple[float, ...],
        min_train_score: float,
        n_train: int,
    ) -> None:
        """``nodes``: the fitted trees' nodes (their arrays are copied, not kept)."""
        # all trees at once: a few numpy calls per forest rather than a dozen per tree
        leaf = nodes.left == -1
        own = np.arange(len(leaf))
        shift = np.repeat(nodes.start, np.diff(nodes.start, append=len(leaf)))  # a tree's first node
        depth = nodes.depth - 1  # the root is at depth 0
        lengths = np.zeros(len(leaf), dtype=np.float64)
        counts = nodes.counts[leaf]
        lengths[leaf] = depth[leaf] + _path_length_table(int(counts.max()))[counts]
        self.feature = np.where(leaf, 0, nodes.feature).astype(np.int32)
        self.threshold = np.where(leaf, math.inf, nodes.threshold).astype(np.float64)
        self.left = np.where(leaf, own, nodes.left + shift).astype(np.int32)
        self.right = np.where(leaf, own, nodes.right + shift).astype(np.int32)
        self.value = lengths
        self.roots = nodes.start.astype(np.int32)
        levels = int(depth[leaf].max())
        # each tree's shallowest leaf (inner nodes hold no path length)
        floors: list[float] = np.minimum.reduceat(np.where(leaf, lengths, math.inf), nodes.start).tolist()
        self.levels = levels
        self.denominator = denominator
        self.offset = offset
        self.medians = medians
        self.min_train_score = min_train_score
        self.n_train = n_train
        #: ``floors[k]``: the least depth trees ``k:`` can add (their shallowest leaves), for :meth:`unusual`
        self.floors = _floors(floors)
        self._trees: tuple[_Node, ...] | None = None
        self._ways: np.ndarray | None = None

    # -- state: the arrays and numbers, not the nested trees ---------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in (*self._ARRAYS, *self._SCALARS)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, v in state.items():
            setattr(self, name, v)
        self._trees = None
        self._ways = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Forest):
            return NotImplemented
        return all(np.array_equal(getattr(self, a), getattr(other, a)) for a in self._ARRAYS) and all(
            getattr(self, s) == getattr(other, s) for s in self._SCALARS
        )

    __hash__ = None  # type: ignore[assignment]

    # -- many rows at once (numpy) -----------------------------------------------------------------
    @property
    def ways(self) -> np.ndarray:
        """``[2n]``: node ``n``'s right child, ``[2n + 1]``: its left one (built on first use: a cache)."""
        if self._ways is None:
            self._ways = np.stack([self.right, self.left], axis=1).ravel()
        return self._ways

    def depths(self, rows: np.ndarray) -> list[float]:
        """Each row's path lengths summed over the trees, in tree order (``rows``: imputed features).

        All rows walk all trees at once, one level a step: each step is a few flat ``take`` calls
        over every (row, tree) pair, the next node being ``ways[2 * node + go_left]``; no
        ``np.where`` and no two-dimensional indexing, the costly parts of such a walk in numpy.
        The arrays stay 32 bits wide: a forest is read from memory afresh at each batch.
        """
        with np.errstate(over="ignore"):  # a ratio beyond float32 becomes inf, as array("f") makes it
            x = rows.astype(np.float32).astype(np.float64)
        n, width = x.shape
        trees = len(self.roots)
        # one entry per row and tree (rows major): its node, and where the row's features start in x
        node = np.tile(self.roots, n)
        start = np.repeat(np.arange(0, n * width, width, dtype=np.intp), trees)
        x = x.ravel()
        feature, threshold, ways = self.feature, self.threshold, self.ways
        for _ in range(self.levels):
            go_left = x.take(feature.take(node) + start) <= threshold.take(node)
            node = ways.take(node + node + go_left)
        # cumsum adds left to right, one tree after the other: the order of score()
        return np.cumsum(self.value.take(node).reshape(n, trees), axis=1)[:, -1].tolist()  # type: ignore[no-any-return]

    def score_of(self, depth: float) -> float:
        """The score of a row whose path lengths sum to ``depth`` (lower is more abnormal)."""
        return float(-(2.0 ** (-depth / self.denominator)))

    # -- one row at a time (nested tuples) ---------------------------------------------------------
    @property
    def trees(self) -> tuple[_Node, ...]:
        """The trees as nested tuples (see ``_Node``), built from the arrays on first use."""
        if self._trees is None:
            feature = self.feature.tolist()
            threshold = self.threshold.tolist()
            left = self.left.tolist()
            right = self.right.tolist()
            value = self.value.tolist()
            # nodes are numbered in depth-first pre-order (children after their parent), so
            # building them from the last to the first finds both children of every node built
            built: list[_Node] = [0.0] * len(left)
            for node in range(len(left) - 1, -1, -1):
                lo = left[node]
                if lo == node:
                    built[node] = value[node]
                else:
                    built[node] = (feature[node], threshold[node], built[lo], built[right[node]])
            self._trees = tuple(built[r] for r in self.roots.tolist())
        return self._trees

    def unusual(self, x: tuple[float, ...]) -> bool:
        """``score(x) < offset``, stopping as soon as the trees left cannot make it so.

        A row is unusual when its depths summed over the trees fall below ``limit``; once the depth
        walked so far plus the least the remaining trees could add clears ``limit`` (with a margin
        for rounding), the answer is no. Otherwise the exact score decides, as :meth:`score` does.
        """
        limit = -self.denominator * math.log2(-self.offset) if self.offset < 0.0 else math.inf
        margin = 1e-9 * max(1.0, abs(limit))
        x32 = array("f", x).tolist()
        depth = 0.0
        floors = self.floors
        for k, node in enumerate(self.trees):
            while node.__class__ is tuple:
                feature, threshold, left, right = node
                node = left if x32[feature] <= threshold else right
            depth += node  # type: ignore[operator]
            if depth + floors[k + 1] > limit + margin:
                return False
        return self.score_of(depth) < self.offset

    def score(self, x: tuple[float, ...]) -> float:
        """``IsolationForest.score_samples`` of one row (lower is more abnormal)."""
        x32 = array("f", x).tolist()  # the trees compare float32 values (rounded as numpy rounds them)
        depth = 0.0
        for node in self.trees:
            while node.__class__ is tuple:
                feature, threshold, left, right = node
                node = left if x32[feature] <= threshold else right
            depth += node  # type: ignore[operator]
        return self.score_of(depth)


def _floors(floors: list[float]) -> tuple[float, ...]:
    """Suffix sums of the trees' shallowest leaves: ``[k]`` is the least trees ``k:`` add (last: 0)."""
    out = [0.0]
    for floor in reversed(floors):
        out.append(out[-1] + floor)
    return tuple(reversed(out))


def _compile(forest: Any, medians: tuple[float, ...], train: np.ndarray) -> Forest:
    """A fitted ``IsolationForest`` as a :class:`Forest` (the tests hold :func:`fit_forest` to it)."""
    return Forest(
        nodes=_Grown.of([est.tree_ for est in forest.estimators_]),
        denominator=len(forest.estimators_) * _average_path_length(int(forest.max_samples_)),
        offset=float(forest.offset_),
        medians=medians,
        min_train_score=float(np.min(forest.score_samples(train))),
        n_train=len(train),
    )


def _path_lengths(counts: np.ndarray) -> np.ndarray:
    """:func:`_average_path_length` of an integer array, as scikit-learn's isolation forest computes it."""
    out = np.zeros(counts.shape)
    one = counts <= 1
    two = counts == 2
    rest = ~np.logical_or(one, two)
    out[one] = 0.0
    out[two] = 1.0
    many = counts[rest]
    out[rest] = 2.0 * (np.log(many - 1.0) + np.euler_gamma) - 2.0 * (many - 1.0) / many
    return out


try:  # scikit-learn's tree builder, below its estimators (see _tree_grower)
    from sklearn.tree._criterion import MSE as _MSE
    from sklearn.tree._splitter import RandomSplitter as _RandomSplitter
    from sklearn.tree._tree import DepthFirstTreeBuilder as _DepthFirstTreeBuilder
    from sklearn.tree._tree import Tree as _Tree

    _BUILDER: tuple[Any, Any, Any, Any] | None = (_MSE, _RandomSplitter, _DepthFirstTreeBuilder, _Tree)
except ImportError:  # pragma: no cover - depends on the scikit-learn release
    _BUILDER = None


def _tree_grower(max_depth: int) -> Any:
    """``grow(x, y, weights, random_state) -> sklearn Tree``: one tree of an isolation forest.

    ``ExtraTreeRegressor(max_features=1, splitter="random", max_depth=max_depth).fit`` validates its
    parameters and inputs for every tree (about a millisecond each, most of a fit); this drives the
    same Cython builder with the same arguments and random state, once the inputs are known to be
    valid (float32 features, float64 targets and weights). When scikit-learn's private tree modules
    are not where this expects them, it grows the tree through the public estimator instead; either
    way the unit tests hold the result to ``IsolationForest`` bit for bit.
    """
    if _BUILDER is None:  # pragma: no cover - depends on the scikit-learn release
        return partial(_grow_with_estimator, max_depth)
    MSE, RandomSplitter, DepthFirstTreeBuilder, Tree = _BUILDER
    one_output = np.ones(1, dtype=np.intp)

    def grow(x: np.ndarray, y: np.ndarray, weights: np.ndarray, random_state: Any) -> Any:
        splitter = RandomSplitter(MSE(1, x.shape[0]), 1, 1, 0.0, random_state, None)
        tree = Tree(x.shape[1], one_output, 1)
        DepthFirstTreeBuilder(splitter, 2, 1, 0.0, max_depth, 0.0).build(tree, x, y[:, None], weights, None)
        return tree

    return grow


def _grow_with_estimator(
    max_depth: int, x: np.ndarray, y: np.ndarray, weights: np.ndarray, random_state: Any
) -> Any:
    from sklearn import config_context
    from sklearn.tree import ExtraTreeRegressor

    with config_context(skip_parameter_validation=True):
        tree = ExtraTreeRegressor(
            max_features=1, splitter="random", max_depth=max_depth, random_state=random_state
        )
        tree.fit(x, y, sample_weight=weights, check_input=False)
    return tree.tree_


@lru_cache(maxsize=8)
def _z_bits(width: int) -> np.ndarray:
    """``[v]``: the 8 bits of ``v`` (0..255) spread ``width`` places apart, for :func:`_z_order`."""
    v = np.arange(256, dtype=np.uint64)
    out = np.zeros(256, dtype=np.uint64)
    for bit in range(8):
        out |= ((v >> np.uint64(bit)) & np.uint64(1)) << np.uint64(bit * width)
    return out


def _z_order(x: np.ndarray) -> np.ndarray:
    """An order of the rows of ``x`` along a Z-order (Morton) curve: rows near in every feature come near.

    Each feature that varies (up to 8 of them) is cut into 256 steps between its least and
    greatest value, and the bits of the steps interleaved into one 64-bit key per row. Only
    speed depends on this order (see :func:`fit_forest`), so a coarse one does.
    """
    low, high = x.min(axis=0), x.max(axis=0)
    varying = np.flatnonzero(high > low)[:8]
    key = np.zeros(len(x), dtype=np.uint64)
    bits = _z_bits(max(1, len(varying)))
    with np.errstate(invalid="ignore", over="ignore"):  # inf features: any step will do
        for place, column in enumerate(varying.tolist()):
            steps = (x[:, column] - low[column]) * (255.0 / (high[column] - low[column]))
            cells = np.clip(np.nan_to_num(steps), 0.0, 255.0).astype(np.uint8)
            key |= bits.take(cells) << np.uint64(place)
    return np.argsort(key)


def fit_forest(
    train: np.ndarray,
    medians: tuple[float, ...],
    *,
    n_estimators: int,
    max_samples: int,
    contamination: float,
    seed: int,
) -> Forest:
    """The forest ``IsolationForest(...).fit(train)`` grows, compiled, without the ensemble's overhead.

    ``IsolationForest.fit`` spends most of its time cloning and validating each of its trees, not
    growing them. This grows the same extra trees with the same random draws (the bagging seeds,
    each tree's seed and its sample), and scores the training rows the way ``score_samples`` does,
    so the result equals ``_compile(IsolationForest(...).fit(train), medians, train)`` bit for bit
    (a unit test holds the two together).
    """
    x = np.asarray(train, dtype=np.float32)
    n, n_features = x.shape
    int32_max = np.iinfo(np.int32).max
    # One generator re-seeded where scikit-learn builds a new one from an int seed: re-seeding
    # gives the same state, and building a generator costs more than growing a small tree.
    draws = np.random.RandomState(seed)
    y = draws.uniform(size=n)
    draws.seed(seed)
    tree_seeds = draws.randint(int32_max, size=n_estimators)
    splits = np.random.RandomState(0)
    max_depth = int(np.ceil(np.log2(max(max_samples, 2))))
    trees: list[Any] = []
    leaves: list[np.ndarray] = []  # each training row's leaf, tree after tree, in the order `near`
    grow = _tree_grower(max_depth)
    # Leading thousands of rows down a freshly grown tree is mostly mispredicted branches: taken
    # along a Z-order curve, consecutive rows mostly turn the same way and `apply` takes about a
    # third less time. A row's leaf does not depend on the order the rows go in.
    order = _z_order(x)
    near = x[order]
    for tree_seed in tree_seeds:
        draws.seed(tree_seed)
        splits.seed(draws.randint(int32_max))
        draws.seed(tree_seed)
        sample_without_replacement(n_features, n_features, random_state=draws)  # the feature draw
        rows = sample_without_replacement(n, max_samples, random_state=draws)
        fitted = grow(x, y, np.bincount(rows, minlength=n).astype(np.float64), splits)
        trees.append(fitted)
        leaves.append(fitted.apply(near))
    nodes = _Grown.of(trees)
    # score_samples adds, tree after tree, the depth of each row's leaf plus the expected path
    # length of the training points there, less one: per node here, the same floats
    lengths = nodes.depth + _path_lengths(nodes.counts) - 1.0
    summed = np.zeros(n)
    for start, leaf in zip(nodes.start, leaves, strict=True):
        summed += lengths[leaf + start]
    depths = np.zeros(n, order="F")
    depths[order] = summed  # back in the order of the rows
    denominator = n_estimators * _path_lengths(np.array([max_samples]))
    scores = -(2 ** (-np.divide(depths, denominator, out=np.ones_like(depths), where=denominator != 0)))
    return Forest(
        nodes=nodes,
        denominator=n_estimators * _average_path_length(max_samples),
        offset=float(np.percentile(scores, 100.0 * contamination)),
        medians=medians,
        min_train_score=float(np.min(scores)),
        n_train=n,
    )

