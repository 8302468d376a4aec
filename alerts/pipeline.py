"""What happens to one warning, top to bottom: dedup → inhibit → silence → route → notify.

Each stage is a small function over the same :class:`Context`; each records its decision about
each alert it touched, with the reason, in ``alert_decisions``. The stages run inside the caller's
transaction; notifications are only *owed* here (outbox rows) and delivered after the commit, so a
warning is either fully applied or not at all, and a redelivered warning id changes nothing.

A batch (:func:`process_batch`, what the consumer runs per poll) reads the rules once and writes the
received-warning rows and the decisions in bulk at its end (:class:`Journal`); :func:`process_warning`
is a batch of one.

* **dedup** — a warning id already received stops the pipeline (its outcome names the alert that holds
  it); otherwise the warning folds into
  the alert of its fingerprint (count, first/last seen, latest evidence, highest level reached) and
  decides the *event* worth telling: ``firing`` (new or reopened), ``level_raised`` (above the level
  before, or for an acknowledged alert above the level acknowledged), ``resolved``, or nothing (a repeat);
  an alert whose level rises or that fires again tells the incidents (not closed) that hold it
  (``alerts.incident.service.follow_alert``).
* **inhibit** — an open systemic alert holds back the regional and industry alerts of the cells it
  covers (its evidence lists ``regions``/``industries`` or ``cells``); they stay attached to it
  (``inhibited_by_id``) and are released, and told, when it resolves (one another open systemic alert
  still covers is attached to that one instead; one told before gets its escalation timer back, started
  at the release); one that resolves while held back and was never told it fired is not told it
  resolved either.
* **silence** — an active silence whose matchers all match holds back the notification; the alert
  keeps the event held back (``held_event``) and is told at the first escalation tick after no silence
  covers it, if still firing (``alerts.silence.ended``); one that resolves meanwhile is not told.
* **route** — the first matching route names the team and receivers (else the default team).
* **notify** — one pending notification per receiver, keyed by warning id; escalation timers start.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, exists, insert, select
from sqlalchemy.orm import Session

from schemas import Level, RiskWarning, WarningKind, WarningStatus

from .alert.models import Alert, AlertDecision, AlertState, ReceivedWarning
from .alert.service import alert_dict
from .alert.state import next_state
from .events import emit, of_county
from .incident.service import follow_alert
from .notification.models import Notification
from .notification.service import owe
from .route.models import Route
from .route.service import DEFAULT_TEAM, list_routes, match_route
from .settings import AlertSettings
from .silence.models import Silence
from .silence.service import active_silences, matching_silence

__all__ = [
    "STAGES",
    "Context",
    "Journal",
    "Outcome",
    "Rules",
    "Target",
    "covers",
    "load_rules",
    "process_batch",
    "process_warning",
]


@dataclass(slots=True)
class Rules:
    """What a batch reads once: routes, active silences, open systemic alerts, and (prefetched for
    the batch's warnings) the ids already received and the alerts of their fingerprints."""

    routes: list[Route]
    silences: list[Silence]
    systemic: list[Alert] = field(default_factory=list)
    received: set[str] = field(default_factory=set)
    alerts: dict[str, Alert] = field(default_factory=dict)


def load_rules(session: Session, *, now: datetime, warnings: Sequence[RiskWarning] = ()) -> Rules:
    rules = Rules(routes=list_routes(session), silences=active_silences(session, now=now))
    rules.systemic = list(
        session.scalars(
            select(Alert).where(
                Alert.kind == WarningKind.systemic.value, Alert.state != AlertState.resolved.value
            )
        )
    )
    ids = list({w.id for w in warnings})
    fps = list({w.fingerprint for w in warnings})
    for i in range(0, len(ids), 1000):
        rules.received.update(
            session.scalars(select(ReceivedWarning.id).where(ReceivedWarning.id.in_(ids[i : i + 1000])))
        )
    for i in range(0, len(fps), 1000):
        for a in session.scalars(select(Alert).where(Alert.fingerprint.in_(fps[i : i + 1000]))):
            rules.alerts[a.fingerprint] = a
    return rules


@dataclass(slots=True)
class Journal:
    """What a batch writes at its end, in bulk: a row per received warning and every decision.

    Rows are kept with their alert and get its id when written (a new alert has none before the flush).
    """

    received: list[tuple[Alert, dict[str, Any]]] = field(default_factory=list)
    decisions: list[tuple[Alert, dict[str, Any]]] = field(default_factory=list)

    def write(self, session: Session) -> None:
        session.flush()  # new alerts get their ids
        for model, pending in ((ReceivedWarning, self.received), (AlertDecision, self.decisions)):
            for alert, row in pending:
                row["alert_id"] = alert.id
            if pending:
                session.execute(insert(cast(Table, model.__table__)), [row for _, row in pending])
            pending.clear()


@dataclass(slots=True)
class Target:
    """An alert this warning touched, the event worth telling about it, and whether to tell."""

    alert: Alert
    event: str | None
    key: str
    notify: bool = True
    held_by: str | None = None


@dataclass(slots=True)
class Context:
    warning: RiskWarning
    now: datetime
    settings: AlertSettings
    rules: Rules
    journal: Journal
    change: str = ""
    stopped: bool = False
    targets: list[Target] = field(default_factory=list)
    owed: int = 0
    #: the alert that already holds a duplicate warning
    holder: Alert | None = None

    def decide(self, session: Session, alert: Alert, stage: str, decision: str, reason: str) -> None:
        """Record a stage's decision about ``alert`` and its reason (written with the batch)."""
        row = {
            "warning_id": self.warning.id,
            "stage": stage,
            "decision": decision,
            "reason": reason,
            "at": self.now,
        }
        self.journal.decisions.append((alert, row))

    def outcome(self) -> Outcome:
        first = self.targets[0].alert if self.targets else self.holder
        return Outcome(
            warning_id=self.warning.id,
            alert_id=first.id if first is not None else None,
            change=self.change,
            notifications=self.owed,
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    warning_id: str
    alert_id: int | None
    change: str  # new, grouped, level_raised, resolved, reopened, stale, duplicate
    notifications: int


# --------------------------------------------------------------------------------------------- dedup


def dedup(session: Session, ctx: Context) -> None:
    w = ctx.warning
    if w.id in ctx.rules.received:
        ctx.change, ctx.stopped = "duplicate", True
        ctx.holder = ctx.rules.alerts.get(w.fingerprint) or session.scalar(
            select(Alert)
            .join(ReceivedWarning, ReceivedWarning.alert_id == Alert.id)
            .where(ReceivedWarning.id == w.id)
        )
        return
    ctx.rules.received.add(w.id)
    alert = ctx.rules.alerts.get(w.fingerprint)
    firing = w.status is WarningStatus.firing
    event: str | None = None
    if alert is None:
        alert = _new_alert(w, ctx.now)
        session.add(alert)
        if alert.kind == WarningKind.systemic:
            session.flush()  # other alerts point at it by id within this batch
        ctx.rules.alerts[w.fingerprint] = alert
        ctx.change = "new"
        event = "firing" if firing else None
        ctx.decide(session, alert, "dedup", "new", f"first emission of fingerprint {w.fingerprint}")
    elif w.raised_at < alert.last_seen:
        alert.count += 1
        ctx.change = "stale"
        ctx.decide(
            session,
            alert,
            "dedup",
            "stale",
            f"raised at {w.raised_at.isoformat()}, before the last emission ({alert.last_seen.isoformat()}): "
            "counted, state unchanged",
        )
    else:
        was = alert.level
        event = _fold(session, ctx, alert)
        alert.max_level = max(Level(alert.max_level), w.level).value
        if ctx.change in _FOLLOWED:
            follow_alert(session, alert=alert, change=_FOLLOWED[ctx.change], was=was, now=ctx.now)
    alert.updated_at = ctx.now
    ctx.journal.received.append(
        (
            alert,
            {
                "id": w.id,
                "fingerprint": w.fingerprint,
                "status": w.status.value,
                "level": w.level.value,
                "raised_at": w.raised_at,
                "received_at": ctx.now,
                "payload": w.model_dump(mode="json"),
            },
        )
    )
    ctx.targets.append(Target(alert=alert, event=event, key=w.id))


#: the changes of an alert its incidents are told of, as their timelines name them
_FOLLOWED = {"level_raised": "level_raised", "reopened": "fired_again"}


def _new_alert(w: RiskWarning, now: datetime) -> Alert:
    firing = w.status is WarningStatus.firing
    return Alert(
        fingerprint=w.fingerprint,
        kind=w.kind.value,
        detector=w.detector,
        region=w.scope.region,
        industry=w.scope.industry,
        item=w.scope.item,
        enterprise_id=w.scope.enterprise_id,
        state=(AlertState.firing if firing else AlertState.resolved).value,
        level=w.level.value,
        max_level=w.level.value,
        summary=w.summary,
        evidence=w.evidence.model_dump(mode="json"),
        last_warning_id=w.id,
        count=1,
        first_seen=w.raised_at,
        last_seen=w.raised_at,
        window_start=w.window_start,
        window_end=w.window_end,
        started_at=w.raised_at,
        resolved_at=None if firing else w.raised_at,
        receivers=[],
        tier=0,
        created_at=now,
        updated_at=now,
    )


def _fold(session: Session, ctx: Context, alert: Alert) -> str | None:
    """Fold a newer emission into its alert; returns the event worth telling, if any."""
    w = ctx.warning
    previous = Level(alert.level)
    alert.count += 1
    alert.last_seen = w.raised_at
    alert.last_warning_id = w.id
    alert.summary = w.summary
    alert.evidence = w.evidence.model_dump(mode="json")
    alert.window_start, alert.window_end = w.window_start, w.window_end
    if w.status is WarningStatus.resolved:
        if alert.state == AlertState.resolved:
            ctx.change = "grouped"
            ctx.decide(session, alert, "dedup", "grouped", "resolved again: already resolved")
            return None
        alert.state = next_state(alert.state, "resolve").value
        alert.resolved_at = w.raised_at
        alert.escalate_at = None
        ctx.change = "resolved"
        ctx.decide(session, alert, "dedup", "resolved", f"detector {w.detector} reported the condition over")
        return "resolved"
    alert.level = w.level.value
    if alert.state == AlertState.resolved:
        alert.state = next_state(alert.state, "refire").value
        alert.started_at, alert.resolved_at, alert.tier = w.raised_at, None, 0
        alert.acknowledged_at = alert.acknowledged_by = alert.disposition = alert.acknowledged_level = None
        alert.inhibited_by_id = alert.silenced_by_id = None
        ctx.change = "reopened"
        ctx.decide(
            session, alert, "dedup", "reopened", f"fired again at level {w.level.value} after resolving"
        )
        return "firing"
    # an acknowledged alert pages again only above the level acknowledged (it may have fallen meanwhile)
    acked = alert.acknowledged_level if alert.state == AlertState.acknowledged else None
    bar = Level(acked) if acked else previous
    if w.level > bar:
        if alert.state == AlertState.acknowledged:
            alert.state = next_state(alert.state, "raise_level").value
            alert.acknowledged_at = alert.acknowledged_by = alert.disposition = None
            alert.acknowledged_level = None
        ctx.change = "level_raised"
        ctx.decide(
            session, alert, "dedup", "level_raised", f"level raised {previous.value} -> {w.level.value}"
        )
        return "level_raised"
    if w.level > previous:
        why = (
            f"level {previous.value} -> {w.level.value}, not above the acknowledged level {bar.value}: "
            "not paged again"
        )
    else:
        why = f"emission {alert.count} of fingerprint {w.fingerprint} (level {w.level.value})"
    ctx.change = "grouped"
    ctx.decide(session, alert, "dedup", "grouped", why)
    return None


# ------------------------------------------------------------------------------------------ inhibit


def coverage(evidence: dict[str, Any]) -> tuple[set[str], set[str]]:
    """Counties and industries a systemic alert covers (evidence ``regions``, ``industries`` or ``cells``)."""
    regions = {str(r) for r in evidence.get("regions") or []}
    industries = {str(i) for i in evidence.get("industries") or []}
    for cell in evidence.get("cells") or []:
        if isinstance(cell, dict):
            region, industry = cell.get("region"), cell.get("industry")
        elif isinstance(cell, list | tuple) and len(cell) == 2:
            region, industry = cell
        else:
            continue
        if region:
            regions.add(str(region))
        if industry:
            industries.add(str(industry))
    return regions, industries


def covers(systemic: Alert, alert: Alert) -> bool:
    """Does ``systemic`` cover ``alert`` (a regional or industry alert of one of its cells)?"""
    if alert.item is not None and systemic.item is not None and alert.item != systemic.item:
        return False
    regions, industries = coverage(systemic.evidence)
    if alert.kind == WarningKind.regional:
        return alert.region in regions
    if alert.kind == WarningKind.industry:
        return alert.industry in industries
    return False


def _describe(systemic: Alert) -> str:
    regions, industries = coverage(systemic.evidence)
    item = systemic.item or "hazard"
    return f"systemic alert #{systemic.id} ({item} in {sorted(regions)} x {sorted(industries)})"


def inhibit(session: Session, ctx: Context) -> None:
    for t in list(ctx.targets):
        a = t.alert
        if t.event is None:
            continue
        if a.kind == WarningKind.systemic:
            _systemic_changed(session, ctx, t)
        elif t.event == "resolved" and a.inhibited_by_id is not None:
            if session.scalar(select(exists().where(Notification.alert_id == a.id))):
                ctx.decide(
                    session, a, "inhibit", "pass", "resolved: it was told it fired before it was covered"
                )
            else:
                t.notify, t.held_by = False, "inhibited"
                ctx.decide(
                    session,
                    a,
                    "inhibit",
                    "inhibited",
                    f"resolved while held back by systemic alert #{a.inhibited_by_id}: never told it fired",
                )
        elif a.kind in (WarningKind.regional, WarningKind.industry) and a.state != AlertState.resolved:
            holder = next((s for s in ctx.rules.systemic if covers(s, a)), None)
            if holder is not None:
                a.inhibited_by_id = holder.id
                t.notify, t.held_by = False, "inhibited"
                ctx.decide(session, a, "inhibit", "inhibited", f"held back: covered by {_describe(holder)}")
            else:
                a.inhibited_by_id = None
                ctx.decide(session, a, "inhibit", "pass", "no open systemic alert covers it")
        else:
            ctx.decide(session, a, "inhibit", "pass", f"{a.kind} alerts are not inhibited")


def _systemic_changed(session: Session, ctx: Context, t: Target) -> None:
    s = t.alert
    ctx.rules.systemic = [x for x in ctx.rules.systemic if x.id != s.id]
    if s.state != AlertState.resolved:
        ctx.rules.systemic.append(s)
    if t.event == "resolved":
        attached = session.scalars(
            select(Alert).where(Alert.inhibited_by_id == s.id, Alert.state != AlertState.resolved.value)
        )
        for c in list(attached):
            other = next((x for x in ctx.rules.systemic if covers(x, c)), None)
            if other is not None:  # still covered: it stays held back, by the other one
                c.inhibited_by_id = other.id
                ctx.decide(
                    session,
                    c,
                    "inhibit",
                    "attached",
                    f"{_describe(s)} resolved; still covered by {_describe(other)}",
                )
                continue
            c.inhibited_by_id = None
            told = session.scalar(select(exists().where(Notification.alert_id == c.id)))
            reason = f"{_describe(s)} resolved"
            due = _restart_timer(ctx, c) if told else None
            if due is not None:  # told already, so not told again; its own escalation runs again
                reason += f"; escalates at {due.isoformat()} unless acknowledged"
            ctx.decide(session, c, "inhibit", "released", reason)
            ctx.targets.append(
                Target(alert=c, event=None if told else "firing", key=f"{ctx.warning.id}:release:{c.id}")
            )
        ctx.decide(session, s, "inhibit", "pass", "systemic alert resolved; attached alerts released")
        return
    candidates = session.scalars(
        select(Alert).where(
            Alert.kind.in_([WarningKind.regional.value, WarningKind.industry.value]),
            Alert.state != AlertState.resolved.value,
        )
    )
    newly = 0
    for c in candidates:
        if covers(s, c) and c.inhibited_by_id != s.id:
            c.inhibited_by_id = s.id
            c.escalate_at = None
            newly += 1
            ctx.decide(session, c, "inhibit", "attached", f"now covered by {_describe(s)}")
    ctx.decide(
        session, s, "inhibit", "pass", f"systemic alert; {newly} covered alert(s) attached as evidence"
    )


# ------------------------------------------------------------------------------------------ silence


def silence(session: Session, ctx: Context) -> None:
    for t in ctx.targets:
        if t.event is None or not t.notify:
            continue
        s = matching_silence(ctx.rules.silences, t.alert, now=ctx.now)
        if s is None:
            t.alert.silenced_by_id = None
            ctx.decide(session, t.alert, "silence", "pass", "no active silence matches")
            continue
        t.alert.silenced_by_id = s.id
        t.notify, t.held_by = False, "silenced"
        ctx.decide(
            session,
            t.alert,
            "silence",
            "silenced",
            f"held back: silence #{s.id} by {s.author} until {s.ends_at.isoformat()} ({s.reason})",
        )


# -------------------------------------------------------------------------------------------- route


def route(session: Session, ctx: Context) -> None:
    for t in ctx.targets:
        if t.event is None:
            continue
        a = t.alert
        r = match_route(ctx.rules.routes, a)
        if r is None:
            a.route_id, a.team, a.receivers = None, DEFAULT_TEAM, []
            ctx.decide(
                session,
                a,
                "route",
                "default",
                f"no route matched; default team {DEFAULT_TEAM!r}, no receivers",
            )
        else:
            a.route_id, a.team, a.receivers = r.id, r.team, list(r.receivers)
            ctx.decide(
                session,
                a,
                "route",
                "routed",
                f"route {r.name!r} (county {r.region or 'any'}, industry {r.industry or 'any'}, "
                f"level >= {r.min_level or 'blue'}) -> team {r.team!r}",
            )
        _set_timer(ctx, t)


def _restart_timer(ctx: Context, a: Alert) -> datetime | None:
    """Start a released alert's escalation timer afresh from now; None if it does not escalate
    (not firing, i.e. acknowledged, or already at the top tier)."""
    if a.state != AlertState.firing or a.tier >= ctx.settings.escalation_tiers:
        a.escalate_at = None
    else:
        a.escalate_at = ctx.now + timedelta(seconds=ctx.settings.escalation_timeout(Level(a.level)))
    return a.escalate_at


def _set_timer(ctx: Context, t: Target) -> None:
    a = t.alert
    # a silenced alert keeps its timer: the escalation tick holds it back while the silence is active
    if t.event == "resolved" or t.held_by == "inhibited" or a.state != AlertState.firing:
        a.escalate_at = None
        return
    due = ctx.now + timedelta(seconds=ctx.settings.escalation_timeout(Level(a.level)))
    if ctx.settings.escalation_tiers > a.tier:
        a.escalate_at = due if a.escalate_at is None or t.event == "firing" else min(a.escalate_at, due)


# ------------------------------------------------------------------------------------------- notify


def notify(session: Session, ctx: Context) -> None:
    for t in ctx.targets:
        if t.event is None:
            continue
        a = t.alert
        if not t.notify:
            if t.held_by == "silenced":  # told once no silence covers it, if still firing then
                a.held_event = None if t.event == "resolved" else a.held_event or t.event
            ctx.decide(session, a, "notify", "held", f"{t.event}: nothing sent ({t.held_by})")
            continue
        a.held_event = None
        if not a.receivers:
            ctx.decide(session, a, "notify", "none", f"{t.event}: team {a.team!r} has no receivers")
            continue
        if a.id is None:
            session.flush()  # the notification names the alert
        rows = owe(
            session,
            alert=a,
            event=t.event,
            receivers=list(a.receivers),
            key=t.key,
            warning=ctx.warning.model_dump(mode="json") if a.id == ctx.targets[0].alert.id else None,
            external_url=ctx.settings.external_url,
            now=ctx.now,
        )
        ctx.owed += len(rows)
        ctx.decide(session, a, "notify", "owed", f"{t.event}: owed to {', '.join(a.receivers)}")


#: the pipeline, in order
STAGES: tuple[Callable[[Session, Context], None], ...] = (dedup, inhibit, silence, route, notify)


def process_batch(
    session: Session, *, warnings: Sequence[RiskWarning], now: datetime, settings: AlertSettings
) -> list[Outcome]:
    """Run each warning, in order, through every stage in the caller's transaction (the caller commits).

    The rules are read once for the batch; received warnings and decisions are written at its end.
    """
    rules = load_rules(session, now=now, warnings=warnings)
    journal = Journal()
    snapshot = functools.cache(alert_dict)  # one picture per alert for the batch's events, after commit
    runs = [
        _run(session, Context(warning=w, now=now, settings=settings, rules=rules, journal=journal), snapshot)
        for w in warnings
    ]
    journal.write(session)
    return [ctx.outcome() for ctx in runs]


def process_warning(
    session: Session, *, warning: RiskWarning, now: datetime, settings: AlertSettings
) -> Outcome:
    """Run one warning through every stage in the caller's transaction (the caller commits)."""
    [outcome] = process_batch(session, warnings=[warning], now=now, settings=settings)
    return outcome


def _run(session: Session, ctx: Context, snapshot: Callable[[Alert], dict[str, Any]]) -> Context:
    for stage in STAGES:
        stage(session, ctx)
        if ctx.stopped:
            break
    _announce(session, ctx.targets, created=ctx.change == "new", snapshot=snapshot)
    return ctx


def _announce(
    session: Session,
    targets: Iterable[Target],
    *,
    created: bool,
    snapshot: Callable[[Alert], dict[str, Any]],
) -> None:
    for i, t in enumerate(targets):
        kind = "alert.created" if created and i == 0 else "alert.updated"
        emit(session, kind, counties=of_county(t.alert.region), data=functools.partial(snapshot, t.alert))
