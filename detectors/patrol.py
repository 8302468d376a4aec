"""Patrol findings of one county: major hazards at once, repeated or clustered general hazards.

:class:`PatrolDetector` reads one :class:`~schemas.PatrolReport` at a time in event-time order
(``raised_at`` is the report's ``patrolled_at``) and emits three kinds of ``site`` warnings, each with
its own fingerprint (levels and resolution rules in ``docs/detectors.md``):

* ``major`` — a major hazard (重大隐患), scope {region, industry, enterprise_id, item=hazard};
* ``repeat`` — repeated general hazards at one enterprise, scope {region, industry, enterprise_id};
* ``cluster`` — general hazards in the county well above its own rolling baseline, scope {region}.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from scipy.special import pdtrc

from schemas import (
    Level,
    PatrolAction,
    PatrolReport,
    RiskWarning,
    Scope,
    Severity,
    WarningKind,
    WarningStatus,
)

from .base import Detector, Score, make_warning

__all__ = ["PatrolDetector", "poisson_tail"]


def poisson_tail(count: int, mean: float) -> float:
    """P(X >= count) for X ~ Poisson(mean)."""
    if count <= 0:
        return 1.0
    return float(pdtrc(count - 1, mean))


@dataclass(slots=True)
class _Major:
    """An open major-hazard warning."""

    scope: Scope
    level: Level
    opened: datetime
    last_seen: datetime
    ids: list[str]


@dataclass(slots=True)
class _Repeat:
    """General hazards of one enterprise within the repeat window, and the level it fired at."""

    scope: Scope
    events: deque[tuple[datetime, str, str]] = field(default_factory=deque)
    level: Level | None = None
    #: the reports behind the last firing emission
    fired_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Cluster:
    """The county's general hazards in the last ``cluster_days`` against its baseline (``score``)."""

    count: int
    expected: float
    p_value: float
    baseline_count: int
    baseline_days: float
    ids: tuple[str, ...]
    alarm: bool


class PatrolDetector(Detector[PatrolReport]):
    """Major hazards at once; repeated general hazards per enterprise; clusters in the county.

    * major: orange; red when the action is ``escalated`` or ``suspended`` (the inspector judged it
      beyond on-site control), or when the enterprise had another major hazard within
      ``repeat_days``. Resolved by a later report at the enterprise with action
      ``rectified_on_site``, or after ``major_stale_days`` without any report at the enterprise.
    * repeat: general hazards at one enterprise within ``repeat_days``: 2 blue, 3 yellow, 4+ orange;
      fires when the level rises; resolved when ``repeat_days`` pass without a new general hazard
      there (checked on the county's next report).
    * cluster: the county's general hazards in the last ``cluster_days`` against a Poisson with the
      county's own rate over the ``baseline_days`` before that window (rate shrunk by half an
      event); yellow when the count is at least ``min_cluster`` and the tail p-value at most
      ``alpha``, once ``min_baseline_days`` of history exist. Reports counted while a cluster fires
      are left out of the baseline (a cluster does not become the new normal). Resolved when a
      later report finds the condition gone.

    Summaries name the county by ``label``, industries by ``industry_labels`` and hazards by
    ``item_labels`` (the catalogue's names; a hazard without one, such as free text, as reported).
    """

    name = "patrol"

    def __init__(
        self,
        *,
        region: str,
        label: str,
        industry_labels: Mapping[str, str],
        item_labels: Mapping[str, str],
        repeat_days: int = 90,
        cluster_days: int = 28,
        baseline_days: int = 364,
        min_baseline_days: int = 84,
        min_cluster: int = 5,
        alpha: float = 0.001,
        major_stale_days: int = 180,
    ) -> None:
        if min(repeat_days, cluster_days, baseline_days, min_baseline_days, major_stale_days) <= 0:
            raise ValueError("the day windows of PatrolDetector must be positive")
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        self.region, self.label = region, label
        self.industry_labels = dict(industry_labels)
        self.item_labels = dict(item_labels)
        self.repeat = timedelta(days=repeat_days)
        self.cluster = timedelta(days=cluster_days)
        self.baseline = timedelta(days=baseline_days)
        self.min_baseline = timedelta(days=min_baseline_days)
        self.min_cluster = min_cluster
        self.alpha = alpha
        self.major_stale = timedelta(days=major_stale_days)
        # state (bounded by the windows)
        self._first: datetime | None = None
        #: general hazards of the county: (time, id, counts in the baseline)
        self._general: deque[tuple[datetime, str, bool]] = deque()
        self._repeats: dict[str, _Repeat] = {}
        self._majors: dict[tuple[str, str], _Major] = {}
        self._recent_majors: dict[str, deque[datetime]] = {}
        self._cluster_firing = False

    # -- contract ---------------------------------------------------------------------------------
    def score(self, obs: PatrolReport) -> Score:
        c = self._cluster_at(obs)
        return Score(
            statistic=float(c.count),
            threshold=float(self.min_cluster),
            expected_rate=c.expected,
            p_value=c.p_value,
            alarm=c.alarm or obs.severity is Severity.major or self._repeat_level(obs) is not None,
            extra={"major": obs.severity is Severity.major, "repeat_level": self._repeat_level(obs)},
        )

    def learn(self, obs: PatrolReport) -> None:
        self._learn(obs, baseline=True)

    def step(self, obs: PatrolReport, at: float | None = None) -> list[RiskWarning]:
        """``at`` (the event time in POSIX seconds) is accepted like every record detector's; unused."""
        out = self._expire(obs)
        cluster = self._cluster_at(obs)
        if obs.severity is Severity.major:
            out += self._on_major(obs)
        else:
            out += self._on_general(obs)
        if obs.action is PatrolAction.rectified_on_site:
            out += self._rectified(obs)
        if cluster.alarm and not self._cluster_firing:
            self._cluster_firing = True
            out.append(self._cluster_warning(obs, cluster, WarningStatus.firing))
        elif self._cluster_firing and not cluster.alarm:
            self._cluster_firing = False
            out.append(self._cluster_warning(obs, cluster, WarningStatus.resolved))
        self._learn(obs, baseline=not self._cluster_firing)
        return out

    # -- state ------------------------------------------------------------------------------------
    def _learn(self, obs: PatrolReport, *, baseline: bool) -> None:
        now = obs.patrolled_at
        if self._first is None:
            self._first = now
        if obs.severity is Severity.general:
            self._general.append((now, obs.id, baseline))
            rep = self._repeats.get(obs.enterprise_id)
            if rep is None:
                scope = Scope(region=self.region, industry=obs.industry, enterprise_id=obs.enterprise_id)
                rep = self._repeats[obs.enterprise_id] = _Repeat(scope=scope)
            rep.events.append((now, obs.id, obs.hazard))
        else:
            self._recent_majors.setdefault(obs.enterprise_id, deque()).append(now)
        horizon = now - self.cluster - self.baseline
        while self._general and self._general[0][0] <= horizon:
            self._general.popleft()
        for eid in list(self._recent_majors):
            q = self._recent_majors[eid]
            while q and q[0] <= now - self.repeat:
                q.popleft()
            if not q:
                del self._recent_majors[eid]

    def _expire(self, obs: PatrolReport) -> list[RiskWarning]:
        """Resolve repeats quiet for ``repeat`` and majors stale for ``major_stale``; drop old events."""
        now = obs.patrolled_at
        out: list[RiskWarning] = []
        for eid in list(self._repeats):
            rep = self._repeats[eid]
            while rep.events and rep.events[0][0] <= now - self.repeat:
                rep.events.popleft()
            if rep.events:
                continue
            if rep.level is not None:
                out.append(self._repeat_warning(rep, obs, WarningStatus.resolved, rep.level, []))
            del self._repeats[eid]
        for key in list(self._majors):
            m = self._majors[key]
            if m.last_seen <= now - self.major_stale:
                out.append(self._major_warning(m, now, WarningStatus.resolved, "stale", obs))
                del self._majors[key]
        return out

    def _repeat_level(self, obs: PatrolReport) -> Level | None:
        if obs.severity is not Severity.general:
            return None
        rep = self._repeats.get(obs.enterprise_id)
        cutoff = obs.patrolled_at - self.repeat
        n = 1 + (sum(1 for when, _, _ in rep.events if when > cutoff) if rep else 0)
        if n >= 4:
            return Level.orange
        return {2: Level.blue, 3: Level.yellow}.get(n)

    def _cluster_at(self, obs: PatrolReport) -> _Cluster:
        now = obs.patrolled_at
        start = now - self.cluster
        recent = [rid for when, rid, _ in self._general if when > start]
        if obs.severity is Severity.general:
            recent.append(obs.id)
        base_from = start - self.baseline
        baseline_count = sum(1 for when, _, counts in self._general if base_from < when <= start and counts)
        first = self._first or now
        covered = min(self.baseline, max(start - first, timedelta(0)))
        days = covered / timedelta(days=1)
        if covered < self.min_baseline:
            return _Cluster(len(recent), 0.0, 1.0, baseline_count, days, tuple(recent), False)
        expected = (baseline_count + 0.5) / days * (self.cluster / timedelta(days=1))
        p = poisson_tail(len(recent), expected)
        alarm = len(recent) >= self.min_cluster and p <= self.alpha
        return _Cluster(len(recent), expected, p, baseline_count, days, tuple(recent), alarm)

    # -- decisions --------------------------------------------------------------------------------
    def _on_major(self, obs: PatrolReport) -> list[RiskWarning]:
        key = (obs.enterprise_id, obs.hazard)
        again = bool(self._recent_majors.get(obs.enterprise_id))
        beyond = obs.action in (PatrolAction.escalated, PatrolAction.suspended)
        level = Level.red if beyond or again else Level.orange
        m = self._majors.get(key)
        if m is None:
            scope = Scope(
                region=self.region, industry=obs.industry, enterprise_id=obs.enterprise_id, item=obs.hazard
            )
            m = self._majors[key] = _Major(scope, level, obs.patrolled_at, obs.patrolled_at, [])
        elif level > m.level:
            m.level = level
        m.last_seen = obs.patrolled_at
        m.ids.append(obs.id)
        del m.ids[:-50]
        return [self._major_warning(m, obs.patrolled_at, WarningStatus.firing, None, obs)]

    def _on_general(self, obs: PatrolReport) -> list[RiskWarning]:
        for m in self._majors.values():
            if m.scope.enterprise_id == obs.enterprise_id:
                m.last_seen = obs.patrolled_at
        level = self._repeat_level(obs)
        rep = self._repeats.get(obs.enterprise_id)
        if level is None or (rep is not None and rep.level is not None and level <= rep.level):
            return []
        if rep is None:
            scope = Scope(region=self.region, industry=obs.industry, enterprise_id=obs.enterprise_id)
            rep = self._repeats[obs.enterprise_id] = _Repeat(scope=scope)
        rep.level = level
        cutoff = obs.patrolled_at - self.repeat
        events = [e for e in rep.events if e[0] > cutoff] + [(obs.patrolled_at, obs.id, obs.hazard)]
        rep.fired_ids = [rid for _, rid, _ in events]
        return [self._repeat_warning(rep, obs, WarningStatus.firing, level, events)]

    def _rectified(self, obs: PatrolReport) -> list[RiskWarning]:
        out = []
        for key in [k for k in self._majors if k[0] == obs.enterprise_id]:
            m = self._majors[key]
            if obs.id in m.ids:
                continue  # the report that raised it does not also clear it
            out.append(self._major_warning(m, obs.patrolled_at, WarningStatus.resolved, "rectified", obs))
            del self._majors[key]
        return out

    # -- warnings ---------------------------------------------------------------------------------
    def _industry(self, slug: str) -> str:
        return self.industry_labels.get(slug, slug)

    def _item(self, hazard: str) -> str:
        return self.item_labels.get(hazard, hazard)

    def _major_warning(
        self, m: _Major, now: datetime, status: WarningStatus, reason: str | None, obs: PatrolReport | None
    ) -> RiskWarning:
        hazard, eid = self._item(m.scope.item or ""), m.scope.enterprise_id
        if status is WarningStatus.firing:
            assert obs is not None
            summary = (
                f"Major hazard {hazard} at enterprise {eid} ({self.label}, {self._industry(obs.industry)}): "
                f"action {obs.action.value} — {m.level.value} site warning"
            )
        elif reason == "rectified":
            summary = f"Major hazard {hazard} at enterprise {eid} ({self.label}) rectified on site — resolved"
        else:
            summary = (
                f"Major hazard {hazard} at enterprise {eid} ({self.label}): no report for "
                f"{self.major_stale.days} days — closed"
            )
        # the report that cleared it, when at the enterprise; a stale major is closed by the county's
        # next report, at another enterprise, which is no evidence of it
        here = obs is not None and obs.enterprise_id == eid and obs.id not in m.ids
        ids = list(m.ids) + ([obs.id] if here and obs is not None else [])
        return make_warning(
            detector=self.name,
            kind=WarningKind.site,
            level=m.level,
            scope=m.scope,
            raised_at=now,
            window_start=m.opened,
            window_end=now,
            tested=len(ids),
            failed=len(m.ids),
            expected_rate=None,
            summary=summary,
            record_ids=ids,
            status=status,
            rule="major",
            action=obs.action.value if obs is not None and reason != "stale" else None,
            resolved_by=reason,
        )

    def _repeat_warning(
        self,
        rep: _Repeat,
        obs: PatrolReport,
        status: WarningStatus,
        level: Level,
        events: list[tuple[datetime, str, str]],
    ) -> RiskWarning:
        now = obs.patrolled_at
        eid = rep.scope.enterprise_id
        hazards = sorted({h for _, _, h in events})
        if status is WarningStatus.firing:
            industry = self._industry(rep.scope.industry or "")
            named = ", ".join(self._item(h) for h in hazards)
            summary = (
                f"Enterprise {eid} ({self.label}, {industry}): {len(events)} general hazards "
                f"within {self.repeat.days} days ({named}) — {level.value} site warning"
            )
            ids = [rid for _, rid, _ in events]
        else:
            quiet = self.repeat.days
            summary = f"Enterprise {eid} ({self.label}): no new general hazard for {quiet} days — resolved"
            # the county's report that found the enterprise quiet is evidence only when it is there
            ids = [*rep.fired_ids, *([obs.id] if obs.enterprise_id == eid else [])]
        return make_warning(
            detector=self.name,
            kind=WarningKind.site,
            level=level,
            scope=rep.scope,
            raised_at=now,
            window_start=now - self.repeat,
            window_end=now,
            tested=len(events),
            failed=len(events),
            expected_rate=None,
            summary=summary,
            statistic=float(len(events)) if events else None,
            threshold=2.0,
            record_ids=ids,
            status=status,
            rule="repeat",
            hazards=hazards,
        )

    def _cluster_warning(self, obs: PatrolReport, c: _Cluster, status: WarningStatus) -> RiskWarning:
        now = obs.patrolled_at
        days = self.cluster.days
        if status is WarningStatus.firing:
            summary = (
                f"{self.label}: {c.count} general hazards in {days} days, {c.expected:.1f} expected "
                f"(p={c.p_value:.1g}) — yellow cluster warning"
            )
        else:
            summary = f"{self.label}: general hazards back to {c.count} in {days} days — cluster resolved"
        return make_warning(
            detector=self.name,
            kind=WarningKind.site,
            level=Level.yellow,
            scope=Scope(region=self.region),
            raised_at=now,
            window_start=now - self.cluster,
            window_end=now,
            tested=c.count,
            failed=c.count,
            expected_rate=c.expected / days,
            observed_rate=c.count / days,
            summary=summary,
            statistic=float(c.count),
            threshold=float(self.min_cluster),
            p_value=c.p_value,
            record_ids=list(c.ids) or [obs.id],
            status=status,
            rule="cluster",
            expected_count=c.expected,
            alpha=self.alpha,
            baseline_count=c.baseline_count,
            baseline_days=c.baseline_days,
        )
