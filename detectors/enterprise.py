"""Enterprise detectors: an enterprise's quality-credit record, and unusual results in passing batches.

* :class:`EnterpriseRepeatDetector` (one per enterprise) counts the enterprise's failed samplings in
  a rolling event-time window and escalates on repeats (levels in ``docs/detectors.md``);
* :class:`EnterpriseOutlierDetector` (one per county and industry) fits an isolation forest to the
  test-item values of passing batches (each value relative to its limit) and flags a passing batch
  whose pattern is unlike the others: the early signal a pass/fail count cannot give.

Both read one :class:`~schemas.SamplingResult` at a time, in event-time order, and follow event time
only (``raised_at`` is the record's ``sampled_at``).
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache, partial
from typing import Any, cast

import numpy as np
from sklearn.utils.random import sample_without_replacement

from schemas import Level, RiskWarning, SamplingResult, WarningKind, WarningStatus
from schemas.weeks import epoch_seconds

from .base import Detector, Score, enterprise_scope, make_warning
from .stats import binomial_upper_tail

__all__ = [
    "DEFAULT_SEVERE_ITEMS",
    "EnterpriseOutlierDetector",
    "EnterpriseRepeatDetector",
    "binomial_tail",
]

#: Hazard items whose single failure is already a (blue) warning: acute hazards to health, life and
#: limb (toxins and lead in food, pesticide residue, radiation, electric shock). Chronic-exposure items
#: (heavy-metal migration, azo dyes) are left to the repeat rules: they are common enough that a blue
#: warning per failure would bury the rest. A hyper-parameter: another prefecture passes its own list.
DEFAULT_SEVERE_ITEMS: tuple[str, ...] = (
    "aflatoxin_b1",
    "lead",
    "pesticide_residue",
    "radioactivity",
    "electrical_safety",
)
_DEFAULT_SEVERE = frozenset(DEFAULT_SEVERE_ITEMS)  # shared by every instance (and stored once per pickle)


def _named(items: Iterable[str], labels: Mapping[str, str]) -> str:
    """``items`` by their human names (``labels``), comma-separated; an item without one as it is."""
    return ", ".join(labels.get(item, item) for item in items)


binomial_tail = binomial_upper_tail  # P(X >= failed) for X ~ Binomial(tested, rate)
#: the same, remembered: an enterprise's counts are small integers that repeat across enterprises
_tail = lru_cache(maxsize=8192)(binomial_upper_tail)
#: what a record detector's ``step`` returns when it has nothing to say: an empty tuple (nothing to
#: allocate, nothing a caller could append to by mistake) typed as the list callers test and iterate
_NONE = cast("list[RiskWarning]", ())


def _days(n: float) -> timedelta:
    return timedelta(days=n)


@dataclass(frozen=True, slots=True)
class _RepeatRules:
    """The hyper-parameters of :class:`EnterpriseRepeatDetector`, shared by its many instances."""

    window: timedelta
    window_s: float
    expected_rate: float
    alpha: float
    clear_after_passes: int
    severe_items: frozenset[str]
    max_tests: int


@lru_cache(maxsize=64)
def _repeat_rules(
    window_days: int,
    expected_rate: float,
    alpha: float,
    clear_after_passes: int,
    severe_items: tuple[str, ...],
    max_tests: int,
) -> _RepeatRules:
    if not 0.0 < expected_rate < 1.0:
        raise ValueError(f"expected_rate must be in (0, 1), got {expected_rate}")
    if window_days <= 0 or clear_after_passes <= 0 or max_tests <= 0:
        raise ValueError("window_days, clear_after_passes and max_tests must be positive")
    window = _days(window_days)
    return _RepeatRules(
        window=window,
        window_s=window.total_seconds(),
        expected_rate=expected_rate,
        alpha=alpha,
        clear_after_passes=clear_after_passes,
        severe_items=_DEFAULT_SEVERE if severe_items == DEFAULT_SEVERE_ITEMS else frozenset(severe_items),
        max_tests=max_tests,
    )


def _prune(entries: list[tuple[float, str, tuple[str, ...]]], cutoff: float) -> None:
    """Drop the head entries at or before ``cutoff`` (the list is in event-time order)."""
    n = 0
    for entry in entries:
        if entry[0] > cutoff:
            break
        n += 1
    del entries[:n]


def _prune_keys(keys: list[float], cutoff: float, keep: int) -> None:
    """Drop the head keys at or before ``cutoff``, and the oldest beyond the ``keep`` newest."""
    n = max(0, len(keys) - keep)
    while n < len(keys) and keys[n] <= cutoff:
        n += 1
    del keys[:n]


# --------------------------------------------------------------------------------------------------
# Repeat failures (quality-credit record)
# --------------------------------------------------------------------------------------------------


class _Record:
    """What the repeat detector sees of the window, ``obs`` included (the result of ``_assess``).

    A plain slotted class: built for one record in ten, and a frozen dataclass's ``__init__`` pays
    an ``object.__setattr__`` call per field.
    """

    __slots__ = (
        "failed",
        "failed_ids",
        "items",
        "level",
        "p_value",
        "passes_in_row",
        "repeated_items",
        "severe_items",
        "tested",
    )

    def __init__(
        self,
        tested: int,
        failed: int,
        failed_ids: tuple[str, ...],
        items: tuple[str, ...],
        repeated_items: tuple[str, ...],
        severe_items: tuple[str, ...],
        p_value: float,
        level: Level | None,
        passes_in_row: int,
    ) -> None:
        self.tested = tested
        self.failed = failed
        self.failed_ids = failed_ids
        self.items = items
        self.repeated_items = repeated_items
        self.severe_items = severe_items
        self.p_value = p_value
        self.level = level
        self.passes_in_row = passes_in_row


class EnterpriseRepeatDetector(Detector[SamplingResult]):
    """Repeat failures of one enterprise within a rolling event-time window.

    Levels (failures counted within ``window_days`` of the record, the record included):

    * red: at least 4 failures, the same hazard item failed three times, or a severe item
      (``severe_items``) failed twice;
    * orange: 3 failures, or the same hazard item failed twice; yellow: 2 failures;
    * the three above only when the binomial tail p-value of the failures among the enterprise's
      samplings in the window, against ``expected_rate``, is at most ``alpha`` (an enterprise
      sampled every week is expected to fail now and then);
    * blue: otherwise, a failure of a ``severe_items`` item within the window.

    ``region_label`` names the county and ``item_labels`` the hazard items in summaries (the
    catalogue's names; an item without one is named by its key). The registry hands every instance
    the same ``item_labels`` mapping, which is kept, not copied.

    A firing warning is emitted when the level first appears or rises. It resolves when the
    enterprise passes ``clear_after_passes`` samplings in a row (its earlier failures are then
    forgiven: they no longer count), or when, at its next sampling, the failures left in the
    window no longer meet any rule. The expected rate is a fixed hyper-parameter, so there is no
    learnt baseline to protect: the failures *are* the record and are always kept.
    """

    name = "enterprise_repeat"
    # one instance per enterprise sampled: slotted, the hyper-parameters shared (``_RepeatRules``)
    __slots__ = (
        "_failures",
        "_firing",
        "_label",
        "_passes_in_row",
        "_quiet_until",
        "_tests",
        "_where",
        "enterprise_id",
        "item_labels",
        "region_label",
        "rules",
    )

    def __init__(
        self,
        *,
        enterprise_id: str,
        region_label: str,
        item_labels: Mapping[str, str],
        window_days: int = 365,
        expected_rate: float = 0.06,
        alpha: float = 0.05,
        clear_after_passes: int = 3,
        severe_items: tuple[str, ...] = DEFAULT_SEVERE_ITEMS,
        max_tests: int = 1000,
    ) -> None:
        self.enterprise_id = enterprise_id
        self.region_label = region_label
        self.item_labels = item_labels  # shared by the instances, and stored once per pickle
        self.rules = _repeat_rules(
            window_days, expected_rate, alpha, clear_after_passes, severe_items, max_tests
        )
        # state: samplings and failures within the window only (bounded, oldest first), keyed by
        # event time in POSIX seconds (cheap to compare; the window is a fixed number of seconds)
        self._tests: list[float] = []
        self._failures: list[tuple[float, str, tuple[str, ...]]] = []
        self._passes_in_row = 0
        #: passes before this event time (POSIX seconds) cannot raise a level (see _could_fire)
        self._quiet_until = -math.inf
        self._firing: Level | None = None
        self._where: tuple[str, str] | None = None  # (region, industry) of the first record seen
        self._label = enterprise_id

    @property
    def window(self) -> timedelta:
        return self.rules.window

    @property
    def expected_rate(self) -> float:
        return self.rules.expected_rate

    @property
    def alpha(self) -> float:
        return self.rules.alpha

    @property
    def clear_after_passes(self) -> int:
        return self.rules.clear_after_passes

    @property
    def severe_items(self) -> frozenset[str]:
        return self.rules.severe_items

    # -- contract ---------------------------------------------------------------------------------
    def score(self, obs: SamplingResult) -> Score:
        rec = self._assess(obs, epoch_seconds(obs.sampled_at))
        return Score(
            statistic=float(rec.failed),
            threshold=2.0,
            expected_rate=self.rules.expected_rate,
            p_value=rec.p_value,
            alarm=rec.level is not None,
            extra={"level": rec.level.value if rec.level else None, "tested": rec.tested},
        )

    def learn(self, obs: SamplingResult) -> None:
        self._learn(obs, epoch_seconds(obs.sampled_at))

    def step(self, obs: SamplingResult, at: float | None = None) -> list[RiskWarning]:
        """``at``: ``obs.sampled_at`` in POSIX seconds when the caller has it (the engine does)."""
        key = epoch_seconds(obs.sampled_at) if at is None else at
        if (
            obs.passed
            and self._firing is None
            and (not self._failures or key < self._quiet_until or not self._could_fire(key))
        ):
            # the common case, a pass that cannot raise a level: what _learn does for a pass
            tests = self._tests
            tests.append(key)
            self._passes_in_row += 1
            if obs.enterprise_name:
                self._label = obs.enterprise_name
            if self._where is None:
                self._where = (obs.region, obs.industry)
            rules = self.rules
            cutoff = key - rules.window_s
            if tests[0] <= cutoff:  # the newest key, just added, is within the window
                del tests[0]  # usually the one sampling that left the window
                if tests[0] <= cutoff:
                    _prune_keys(tests, cutoff, rules.max_tests)
            if len(tests) > rules.max_tests:
                _prune_keys(tests, cutoff, rules.max_tests)
            failures = self._failures
            if failures and failures[0][0] <= cutoff:
                _prune(failures, cutoff)
            return _NONE
        rec = self._assess(obs, key)
        self._learn(obs, key)
        out: list[RiskWarning] = []
        if self._firing is not None:
            if obs.passed and rec.passes_in_row >= self.rules.clear_after_passes:
                out.append(self._warn(obs, rec, self._firing, WarningStatus.resolved, "passes"))
                self._firing = None
                self._failures.clear()
                return out
            if rec.level is None:
                out.append(self._warn(obs, rec, self._firing, WarningStatus.resolved, "window"))
                self._firing = None
                return out
        if rec.level is not None and (self._firing is None or rec.level > self._firing):
            self._firing = rec.level
            out.append(self._warn(obs, rec, rec.level, WarningStatus.firing, None))
        return out

    # -- internals --------------------------------------------------------------------------------
    def _could_fire(self, key: float) -> bool:
        """Whether a pass at ``key`` leaves a level: the rules of :meth:`_assess`, short-circuited.

        A pass adds no failure, so a level remains only if the failures still in the window name a
        severe item, or are at least two and significant among the samplings in the window. When
        the answer is no, it stays no for later passes until a failure is learnt, or (two failures
        or more) until a sampling leaves the window: passes only add samplings and time only takes
        failures away, both of which make the failures less significant. ``_quiet_until`` keeps
        that time, so those passes skip the test.
        """
        rules = self.rules
        cutoff = key - rules.window_s
        failures = self._failures
        if failures and failures[0][0] <= cutoff:
            _prune(failures, cutoff)
        if not failures:
            return False
        severe = rules.severe_items
        for _key, _rid, items in failures:
            for item in items:
                if item in severe:
                    return True
        if len(failures) < 2:
            self._quiet_until = math.inf
            return False
        expired = 0
        for when in self._tests:
            if when > cutoff:
                break
            expired += 1
        tested = 1 + len(self._tests) - expired
        if _tail(len(failures), tested, rules.expected_rate) <= rules.alpha:
            return True
        tests = self._tests
        self._quiet_until = tests[expired] + rules.window_s if expired < len(tests) else math.inf
        return False

    def _learn(self, obs: SamplingResult, key: float) -> None:
        if self._where is None:
            self._where = (obs.region, obs.industry)
        if obs.enterprise_name:
            self._label = obs.enterprise_name
        rules = self.rules
        tests = self._tests
        tests.append(key)
        if obs.passed:
            self._passes_in_row += 1
        else:
            self._passes_in_row = 0
            self._quiet_until = -math.inf
            self._failures.append((key, obs.id, tuple(obs.failed_items)))
            if len(self._failures) > rules.max_tests:
                del self._failures[0]
        cutoff = key - rules.window_s
        if tests[0] <= cutoff or len(tests) > rules.max_tests:
            _prune_keys(tests, cutoff, rules.max_tests)
        if self._failures and self._failures[0][0] <= cutoff:
            _prune(self._failures, cutoff)

    def _assess(self, obs: SamplingResult, key: float) -> _Record:
        rules = self.rules
        cutoff = key - rules.window_s
        expired = 0  # the lists are in event-time order and pruned by learn: skip the stale head only
        for when in self._tests:
            if when > cutoff:
                break
            expired += 1
        tested = 1 + len(self._tests) - expired
        if obs.passed and not self._failures:  # the common case: a clean record of a clean enterprise
            return _Record(tested, 0, (), (), (), (), 1.0, None, self._passes_in_row + 1)
        failures = [(rid, items) for when, rid, items in self._failures if when > cutoff]
        if not obs.passed:
            failures.append((obs.id, tuple(obs.failed_items)))
        seen: dict[str, int] = {}
        for _rid, items in failures:
            for item in items:
                seen[item] = seen.get(item, 0) + 1
        failed = len(failures)
        repeated = tuple(sorted(i for i, n in seen.items() if n >= 2))
        severe = tuple(sorted(i for i in seen if i in rules.severe_items))
        p_value = _tail(failed, tested, rules.expected_rate)
        level: Level | None = None
        if failed >= 2 and p_value <= rules.alpha:
            severe_repeat = any(i in rules.severe_items for i in repeated)
            if failed >= 4 or any(seen[i] >= 3 for i in repeated) or severe_repeat:
                level = Level.red
            elif failed == 3 or repeated:
                level = Level.orange
            else:
                level = Level.yellow
        elif severe:
            level = Level.blue
        return _Record(
            tested,
            failed,
            tuple(rid for rid, _ in failures),
            tuple(sorted(seen)),
            repeated,
            severe,
            p_value,
            level,
            self._passes_in_row + 1 if obs.passed else 0,
        )

    def _warn(
        self, obs: SamplingResult, rec: _Record, level: Level, status: WarningStatus, reason: str | None
    ) -> RiskWarning:
        region, industry = self._where or (obs.region, obs.industry)
        scope = enterprise_scope(region, industry, self.enterprise_id)
        labels = self.item_labels
        items = _named(rec.items, labels) or "no open items"
        days = self.window.days
        who = f"Enterprise {self._label} ({self.region_label})"
        if status is WarningStatus.firing:
            # why this level: the failures' tail against the usual rate (a repeat counts only when
            # p <= alpha), the items failed twice or more, the severe items (blue is a severe item
            # alone: "4 failed of 25" without them would read as a red)
            why = f"p={rec.p_value:.2g} at the usual {100 * self.expected_rate:g} % failure rate"
            if rec.repeated_items:
                why += f"; repeated: {_named(rec.repeated_items, labels)}"
            if rec.severe_items:
                why += f"; severe: {_named(rec.severe_items, labels)}"
            summary = (
                f"{who}: {rec.failed} failed of {rec.tested} samplings within {days} days ({items}; {why}) "
                f"— {level.value} quality-credit warning"
            )
        elif reason == "passes":
            summary = f"{who}: passed {rec.passes_in_row} samplings in a row — repeat warning resolved"
        else:
            # what is left in the window and why it no longer warns: more samplings made the
            # failures less significant, or some left the window (not necessarily "expired")
            if rec.failed == 0:
                left = f"no failure left within {days} days"
            elif rec.failed == 1:
                left = f"1 failed of {rec.tested} samplings within {days} days, not a severe item"
            else:
                left = (
                    f"{rec.failed} failed of {rec.tested} samplings within {days} days, "
                    f"p={rec.p_value:.2g} above {self.alpha:g} and no severe item"
                )
            summary = f"{who}: now {left} — meets no warning rule, repeat warning resolved"
        ids = list(rec.failed_ids) if rec.failed_ids else [obs.id]
        if status is WarningStatus.resolved:
            ids.append(obs.id)
        return make_warning(
            detector=self.name,
            kind=WarningKind.enterprise,
            level=level,
            scope=scope,
            raised_at=obs.sampled_at,
            window_start=obs.sampled_at - self.window,
            window_end=obs.sampled_at,
            tested=rec.tested,
            failed=rec.failed,
            expected_rate=self.expected_rate,
            summary=summary,
            statistic=float(rec.failed),
            threshold=2.0,
            p_value=rec.p_value,
            record_ids=ids,
            status=status,
            alpha=self.alpha,
            items=list(rec.items),
            repeated_items=list(rec.repeated_items),
            severe_items=list(rec.severe_items),
            enterprise_name=self._label,
            resolved_by=reason,
        )


# --------------------------------------------------------------------------------------------------
# Unusual passing results (isolation forest)
# --------------------------------------------------------------------------------------------------


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
    for the training scores (:func:`_fit_forest`).
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


class _Forest:
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
        if not isinstance(other, _Forest):
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


#: the most rows batch mode holds back per detector: enough for numpy to pay off, few enough that
#: the records waiting stay a small part of the memory
_BATCH_ROWS = 256


def _floors(floors: list[float]) -> tuple[float, ...]:
    """Suffix sums of the trees' shallowest leaves: ``[k]`` is the least trees ``k:`` add (last: 0)."""
    out = [0.0]
    for floor in reversed(floors):
        out.append(out[-1] + floor)
    return tuple(reversed(out))


def _compile(forest: Any, medians: tuple[float, ...], train: np.ndarray) -> _Forest:
    """A fitted ``IsolationForest`` as a :class:`_Forest` (the tests hold :func:`_fit_forest` to it)."""
    return _Forest(
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
    speed depends on this order (see :func:`_fit_forest`), so a coarse one does.
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


def _fit_forest(
    train: np.ndarray,
    medians: tuple[float, ...],
    *,
    n_estimators: int,
    max_samples: int,
    contamination: float,
    seed: int,
) -> _Forest:
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
    return _Forest(
        nodes=nodes,
        denominator=n_estimators * _average_path_length(max_samples),
        offset=float(np.percentile(scores, 100.0 * contamination)),
        medians=medians,
        min_train_score=float(np.min(scores)),
        n_train=n,
    )


class EnterpriseOutlierDetector(Detector[SamplingResult]):
    """Unusual test-item patterns among the passing batches of one county and industry.

    Features: for each of the industry's catalogue ``items``, the tested value divided by its limit;
    an item the batch did not test is imputed with that item's median in the training window (0
    when it was never tested). Records without any usable test item are ignored.

    The model describes *passing* batches: only passing records are scored, learnt and flagged
    (a failure is already a warning for the other detectors, and failed values would teach the
    model that out-of-limit values are normal). Vectors go into a fixed-size window
    (``window`` newest); the forest is fitted once ``min_train`` vectors exist and refitted on the
    window every ``refit_every`` new vectors, with ``random_state=seed``. A passing batch is flagged
    when its score is below the threshold the forest learnt from ``contamination`` (blue), or below
    every score of its training window (yellow). Flagged vectors are not learnt.

    These are point warnings: one ``firing`` emission per unusual batch, never a ``resolved`` one.
    Summaries name the county, the industry and the items by ``region_label``, ``industry_label``
    and ``item_labels`` (the catalogue's names; an item without one is named by its key).
    """

    name = "enterprise_outlier"

    def __init__(
        self,
        *,
        region: str,
        industry: str,
        items: tuple[str, ...],
        seed: int,
        region_label: str,
        industry_label: str,
        item_labels: Mapping[str, str],
        min_train: int = 200,
        refit_every: int = 1000,
        window: int = 2000,
        contamination: float = 0.01,
        n_estimators: int = 50,
        max_samples: int = 256,
        batch: bool = False,
    ) -> None:
        if not 0.0 < contamination < 0.5:
            raise ValueError(f"contamination must be in (0, 0.5), got {contamination}")
        if min_train < 2 or refit_every < 1 or window < min_train:
            raise ValueError("need min_train >= 2, refit_every >= 1 and window >= min_train")
        self.region, self.industry = region, industry
        self.items = tuple(items)
        self.region_label, self.industry_label = region_label, industry_label
        self.item_labels = {item: item_labels.get(item, item) for item in self.items}
        self.seed = seed
        self.min_train = min_train
        self.refit_every = refit_every
        self.contamination = contamination
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self._index = {item: n for n, item in enumerate(self.items)}
        self._buffer: deque[tuple[float, ...]] = deque(maxlen=window)
        self._since_fit = 0
        self._forest: _Forest | None = None
        self.fits = 0
        #: batch mode: rows waiting to be decided together (see :meth:`drain`)
        self.batch = batch
        self._pending: list[tuple[SamplingResult, tuple[float, ...]]] = []

    # -- features ---------------------------------------------------------------------------------
    def features(self, obs: SamplingResult) -> tuple[float, ...] | None:
        """value/limit per catalogue item (NaN when not tested); None when nothing is usable."""
        if not obs.test_items or not self.items:
            return None
        x = [math.nan] * len(self.items)
        found = False
        for ti in obs.test_items:
            n = self._index.get(ti.name)
            if n is None or ti.value is None or not ti.limit:
                continue
            ratio = ti.value / ti.limit
            if math.isfinite(ratio):
                x[n] = ratio
                found = True
        return tuple(x) if found else None

    # -- contract ---------------------------------------------------------------------------------
    def score(self, obs: SamplingResult) -> Score:
        x = self.features(obs)
        forest = self._forest
        if x is None or forest is None or not obs.passed:
            return Score(statistic=math.nan, threshold=math.nan, expected_rate=self.contamination)
        return self._score(x, forest)

    def learn(self, obs: SamplingResult) -> None:
        if not obs.passed:
            return
        x = self.features(obs)
        if x is not None:
            self._learn(x)

    def step(self, obs: SamplingResult, at: float | None = None) -> list[RiskWarning]:
        """``at`` (the event time in POSIX seconds) is accepted like every record detector's; unused."""
        if not obs.passed or not obs.test_items:  # the common case: nothing to score or learn
            return []
        x = self.features(obs)
        if x is None:
            return []
        if self.batch:
            self._pending.append((obs, x))
            return self.drain() if len(self._pending) >= min(self._room(), _BATCH_ROWS) else []
        forest = self._forest
        if forest is not None and forest.unusual(self._row(x, forest)):
            return [self._warn(obs, self._score(x, forest))]
        self._learn(x)
        return []

    def drain(self) -> list[RiskWarning]:
        """Batch mode: decide the rows waiting, together; the warnings :meth:`step` would have given.

        In batch mode :meth:`step` only queues a row, until as many rows wait as can be learnt
        before the forest changes (the next fit: ``min_train`` rows, then ``refit_every``), or
        ``_BATCH_ROWS``. Within that many rows the forest is fixed, so they are decided at once
        with numpy (:meth:`_Forest.depths`), then flagged or learnt in order: the same decisions,
        warnings and fits as one row at a time, bit for bit. The engine drains what is left at the
        end of input; a replay uses batch mode, a live stream decides each row as it comes.
        """
        pending, self._pending = self._pending, []
        if not pending:
            return []
        forest = self._forest
        if forest is None:  # nothing to score yet: the rows fill the first training window
            for _obs, x in pending:
                self._learn(x)
            return []
        rows = np.array([x for _obs, x in pending], dtype=np.float64)
        rows = np.where(np.isnan(rows), np.array(forest.medians, dtype=np.float64), rows)
        out: list[RiskWarning] = []
        offset = forest.offset
        for (obs, x), depth in zip(pending, forest.depths(rows), strict=True):
            score = forest.score_of(depth)
            if score < offset:
                out.append(self._warn(obs, self._score(x, forest, score)))
            else:
                self._learn(x)  # a refit can only come with the last row (see _room)
        return out

    def _room(self) -> int:
        """How many rows may wait in batch mode: as many as can be learnt before the next fit."""
        if self._forest is None:
            return max(1, self.min_train - len(self._buffer))
        return max(1, self.refit_every - self._since_fit)

    # -- internals --------------------------------------------------------------------------------
    @staticmethod
    def _row(x: tuple[float, ...], forest: _Forest) -> tuple[float, ...]:
        """The features with untested items imputed by the training medians."""
        return tuple(m if math.isnan(v) else v for v, m in zip(x, forest.medians, strict=True))

    def _score(self, x: tuple[float, ...], forest: _Forest, score: float | None = None) -> Score:
        """The :class:`Score` of features ``x``; ``score``: the forest's score of them, if known."""
        s = forest.score(self._row(x, forest)) if score is None else score
        alarm = s < forest.offset
        return Score(
            statistic=s,
            threshold=forest.offset,
            expected_rate=self.contamination,
            alarm=alarm,
            extra={"extreme": alarm and s < forest.min_train_score, "features": x},
        )

    def _learn(self, x: tuple[float, ...]) -> None:
        self._buffer.append(x)
        self._since_fit += 1
        ready = len(self._buffer) >= self.min_train
        if ready and (self._forest is None or self._since_fit >= self.refit_every):
            self._fit()

    def _fit(self) -> None:
        x = np.array(self._buffer, dtype=float)
        present = ~np.isnan(x)
        medians = tuple(
            float(np.median(x[present[:, j], j])) if present[:, j].any() else 0.0 for j in range(x.shape[1])
        )
        x = np.where(present, x, np.array(medians))
        self._forest = _fit_forest(
            x,
            medians,
            n_estimators=self.n_estimators,
            max_samples=min(self.max_samples, len(x)),
            contamination=self.contamination,
            seed=self.seed,
        )
        self._since_fit = 0
        self.fits += 1

    def _warn(self, obs: SamplingResult, s: Score) -> RiskWarning:
        forest = self._forest
        assert forest is not None  # an alarm needs a fitted forest
        x: tuple[float, ...] = s.extra["features"]
        tested = {item: round(v, 4) for item, v in zip(self.items, x, strict=True) if not math.isnan(v)}
        level = Level.yellow if s.extra["extreme"] else Level.blue
        names = self.item_labels
        shown = ", ".join(f"{names[k]} {v:.2f}×limit" for k, v in tested.items())
        label = obs.enterprise_name or obs.enterprise_id
        summary = (
            f"Unusual passing result of {label} ({obs.product}, {self.industry_label}, {self.region_label}): "
            f"{shown} — score {s.statistic:.3f} below {forest.offset:.3f}"
        )
        return make_warning(
            detector=self.name,
            kind=WarningKind.enterprise,
            level=level,
            scope=enterprise_scope(self.region, self.industry, obs.enterprise_id),
            raised_at=obs.sampled_at,
            window_start=obs.sampled_at,
            window_end=obs.sampled_at,
            tested=1,
            failed=0,
            expected_rate=self.contamination,
            summary=summary,
            statistic=s.statistic,
            threshold=forest.offset,
            record_ids=[obs.id],
            record_id=obs.id,
            features=tested,
            imputed=[item for item, v in zip(self.items, x, strict=True) if math.isnan(v)],
            min_train_score=forest.min_train_score,
            trained_on=forest.n_train,
            product=obs.product,
        )
