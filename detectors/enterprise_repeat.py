"""The repeat-failure detector: an enterprise's quality-credit record.

:class:`EnterpriseRepeatDetector` (one per enterprise) counts the enterprise's failed samplings in a
rolling event-time window and escalates on repeats (levels in ``docs/detectors.md``). It reads one
:class:`~schemas.SamplingResult` at a time, in event-time order, and follows event time only
(``raised_at`` is the record's ``sampled_at``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import cast

from schemas import Level, RiskWarning, SamplingResult, WarningKind, WarningStatus
from schemas.weeks import epoch_seconds

from .base import Detector, Score, enterprise_scope, make_warning
from .stats import binomial_upper_tail

__all__ = ["DEFAULT_SEVERE_ITEMS", "EnterpriseRepeatDetector", "binomial_tail"]


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
