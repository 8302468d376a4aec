"""Service functions of the incident domain: open from alerts, move through states, staff, tasks, links.

Every action appends to the incident's timeline and to the audit log.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, exists, func, select
from sqlalchemy.orm import Session

from schemas import Level

from ..alert.models import Alert
from ..alert.service import get_alert
from ..audit import service as audit
from ..auth.service import Principal, check_county
from ..errors import Conflict, Forbidden, InvalidInput, NotFound
from ..events import emit
from .models import (
    Incident,
    IncidentAlert,
    IncidentLink,
    IncidentMember,
    IncidentState,
    IncidentTask,
    TimelineEntry,
)
from .state import check_transition

__all__ = [
    "add_member",
    "add_task",
    "change_state",
    "complete_task",
    "follow_alert",
    "get_incident",
    "incident_detail",
    "incidents_of_alert",
    "link",
    "link_alert",
    "list_incidents",
    "open_incident",
    "readers",
    "set_commander",
]

AUDITED = ("title", "state", "level", "region", "commander", "summary", "closed_at")


def _iso(v: Any) -> Any:
    return v.isoformat() if isinstance(v, datetime) else v


def _timeline(
    session: Session,
    inc: Incident,
    *,
    actor: str,
    kind: str,
    text: str,
    now: datetime,
    data: dict[str, Any],
) -> None:
    """Append an entry: ``kind`` and ``data`` for the dashboard to word, ``text`` in English for the rest."""
    session.add(TimelineEntry(incident_id=inc.id, at=now, actor=actor, kind=kind, text=text, data=data))


def _commander_named(session: Session, inc: Incident, *, actor: str, commander: str, now: datetime) -> None:
    _timeline(
        session,
        inc,
        actor=actor,
        kind="commander",
        text=f"commander: {commander}",
        now=now,
        data={"commander": commander},
    )


def _changed(
    session: Session,
    inc: Incident,
    *,
    actor: str,
    action: str,
    before: dict[str, Any] | None,
    now: datetime,
    about: dict[str, Any] | None = None,
) -> None:
    """Audit and announce a change; ``about`` names what the action added or changed (a member, a
    task, a link, an alert) and goes into the entry's ``after`` beside the incident's fields."""
    inc.updated_at = now
    audit.record(
        session,
        actor=actor,
        action=action,
        entity="incident",
        entity_id=inc.id,
        at=now,
        before=before,
        after={**audit.snapshot(inc, AUDITED), **(about or {})},
    )
    emit(
        session,
        "incident.updated",
        counties=readers(session, inc),
        data={c: _iso(getattr(inc, c)) for c in ("id", *AUDITED)},
    )


def readers(session: Session, inc: Incident) -> frozenset[str] | None:
    """The counties that may read ``inc`` (``None``: all), by the rule of :func:`_visible_to`."""
    if inc.region is not None:
        return frozenset({inc.region})
    return frozenset(_alert_counties(session, inc.id)) or None


def get_incident(
    session: Session, *, incident_id: int, principal: Principal | None = None, acting: bool = False
) -> Incident:
    inc = session.get(Incident, incident_id)
    if inc is None:
        raise NotFound(f"no incident with id {incident_id}", field="incident_id")
    if principal is not None:
        check_county(principal, inc.region, acting=acting, what=f"incident {incident_id}")
        if principal.county is not None and inc.region is None:
            counties = _alert_counties(session, inc.id)
            if counties and principal.county not in counties:
                raise Forbidden(
                    f"incident {incident_id} belongs to counties {', '.join(sorted(counties))}; "
                    f"token is scoped to county {principal.county}",
                    field="county",
                )
    return inc


def _alert_counties(session: Session, incident_id: int) -> set[str]:
    """The counties of an incident's linked alerts (prefecture-wide alerts name none)."""
    rows = session.scalars(
        select(Alert.region)
        .join(IncidentAlert, IncidentAlert.alert_id == Alert.id)
        .where(IncidentAlert.incident_id == incident_id, Alert.region.is_not(None))
    )
    return {r for r in rows if r is not None}


def _visible_to(county: str) -> ColumnElement[bool]:
    """A county sees its incidents, those of several counties that include one of its alerts, and
    prefecture-wide ones (no alert of any single county)."""
    linked = select(IncidentAlert).join(Alert, Alert.id == IncidentAlert.alert_id)
    linked = linked.where(IncidentAlert.incident_id == Incident.id)
    own = exists(linked.where(Alert.region == county))
    of_a_county = exists(linked.where(Alert.region.is_not(None)))
    return (Incident.region == county) | (Incident.region.is_(None) & (own | ~of_a_county))


def open_incident(
    session: Session,
    *,
    principal: Principal,
    title: str,
    alert_ids: list[int],
    now: datetime,
    commander: str | None = None,
) -> Incident:
    """Open an incident from one or more alerts (its level is the highest among them)."""
    if not title.strip():
        raise InvalidInput("must not be empty", field="title")
    if not alert_ids:
        raise InvalidInput("an incident is opened from at least one alert", field="alert_ids")
    alerts = [
        get_alert(session, alert_id=i, principal=principal, acting=True) for i in dict.fromkeys(alert_ids)
    ]
    for a in alerts:
        _not_in_another_open_incident(session, a, field="alert_ids")
    regions = {a.region for a in alerts}
    region = regions.pop() if len(regions) == 1 else None
    if principal.county is not None:
        region = principal.county
    level = max(Level(a.max_level) for a in alerts)
    inc = Incident(
        title=title,
        state=IncidentState.reported.value,
        level=level.value,
        region=region,
        commander=commander,
        created_by=principal.name,
        created_at=now,
        updated_at=now,
    )
    session.add(inc)
    session.flush()
    _timeline(
        session,
        inc,
        actor=principal.name,
        kind="opened",
        text=f"opened: {title}",
        now=now,
        data={"title": title},
    )
    for a in alerts:
        _attach(session, inc, a, actor=principal.name, now=now)
    if commander:
        session.add(IncidentMember(incident_id=inc.id, name=commander, role="commander"))
        _commander_named(session, inc, actor=principal.name, commander=commander, now=now)
    _changed(
        session,
        inc,
        actor=principal.name,
        action="incident.open",
        before=None,
        now=now,
        about={"alert_ids": [a.id for a in alerts]},
    )
    return inc


def incidents_of_alert(
    session: Session, *, alert_id: int, principal: Principal | None = None
) -> list[Incident]:
    """The incidents an alert is linked to (those ``principal`` may see), oldest first."""
    q = select(Incident).join(IncidentAlert, IncidentAlert.incident_id == Incident.id)
    q = q.where(IncidentAlert.alert_id == alert_id)
    if principal is not None and principal.county is not None:
        q = q.where(_visible_to(principal.county))
    return list(session.scalars(q.order_by(Incident.id)))


def _not_in_another_open_incident(
    session: Session, alert: Alert, *, field: str, incident_id: int | None = None
) -> None:
    """Refuse a second open incident for one warning: two teams would work the same event apart."""
    for other in incidents_of_alert(session, alert_id=alert.id):
        if other.id != incident_id and other.state != IncidentState.closed:
            raise Conflict(
                f"alert {alert.id} is already in incident {other.id} ({other.state}): "
                f"{other.title!r}; work it there, or close that incident first",
                field=field,
            )


def _attach(session: Session, inc: Incident, alert: Alert, *, actor: str, now: datetime) -> None:
    session.add(IncidentAlert(incident_id=inc.id, alert_id=alert.id))
    _timeline(
        session,
        inc,
        actor=actor,
        kind="alert",
        text=f"linked alert #{alert.id}: {alert.summary}",
        now=now,
        data={"alert_id": alert.id, "summary": alert.summary},
    )
    if alert.enterprise_id:
        _link(session, inc, kind="enterprise", value=alert.enterprise_id)


def _link(session: Session, inc: Incident, *, kind: str, value: str) -> bool:
    exists = session.scalar(
        select(IncidentLink).where(
            IncidentLink.incident_id == inc.id, IncidentLink.kind == kind, IncidentLink.value == value
        )
    )
    if exists is None:
        session.add(IncidentLink(incident_id=inc.id, kind=kind, value=value))
        return True
    return False


def change_state(
    session: Session,
    *,
    incident_id: int,
    principal: Principal,
    state: str,
    now: datetime,
    summary: str | None = None,
    note: str | None = None,
) -> Incident:
    inc = get_incident(session, incident_id=incident_id, principal=principal, acting=True)
    to = check_transition(inc.state, state)
    before = audit.snapshot(inc, AUDITED)
    if to is IncidentState.closed:
        text = (summary or inc.summary or "").strip()
        if not text:
            raise InvalidInput("closing an incident requires a summary", field="summary")
        _no_open_tasks(session, inc)
        inc.summary = text
        inc.closed_at = now
    elif summary:
        inc.summary = summary
    frm = inc.state
    inc.state = to.value
    _timeline(
        session,
        inc,
        actor=principal.name,
        kind="state",
        text=f"{frm} -> {to.value}" + (f": {note}" if note else ""),
        now=now,
        data={"from": frm, "to": to.value, "note": note or None},
    )
    _changed(session, inc, actor=principal.name, action="incident.state", before=before, now=now)
    return inc


def _no_open_tasks(session: Session, inc: Incident) -> None:
    """Refuse to close an incident with a task not done: a closed incident's tasks can no longer change."""
    open_tasks = list(
        session.scalars(
            select(IncidentTask)
            .where(IncidentTask.incident_id == inc.id, IncidentTask.done.is_(False))
            .order_by(IncidentTask.id)
        )
    )
    if open_tasks:
        listed = ", ".join(f"#{t.id} {t.title!r} ({t.owner})" for t in open_tasks)
        raise Conflict(
            f"cannot close the incident: {len(open_tasks)} task(s) not done: {listed}; "
            f"mark them done with POST /api/incidents/{inc.id}/tasks/{{task_id}}/done first",
            field="tasks",
        )


def _not_closed(inc: Incident, what: str) -> None:
    if inc.state == IncidentState.closed:
        from ..errors import IllegalTransition

        raise IllegalTransition(f"cannot {what}: the incident is closed", field="state")


def set_commander(
    session: Session, *, incident_id: int, principal: Principal, commander: str, now: datetime
) -> Incident:
    inc = get_incident(session, incident_id=incident_id, principal=principal, acting=True)
    _not_closed(inc, "change the commander")
    if not commander.strip():
        raise InvalidInput("must not be empty", field="commander")
    before = audit.snapshot(inc, AUDITED)
    inc.commander = commander
    members = session.scalars(select(IncidentMember).where(IncidentMember.incident_id == inc.id))
    new = None
    for member in members:
        if member.name == commander:
            new, member.role = member, "commander"
        elif member.role == "commander":
            member.role = "member"  # the previous commander stays on the team
    if new is None:
        session.add(IncidentMember(incident_id=inc.id, name=commander, role="commander"))
    _commander_named(session, inc, actor=principal.name, commander=commander, now=now)
    _changed(session, inc, actor=principal.name, action="incident.commander", before=before, now=now)
    return inc


def add_member(
    session: Session, *, incident_id: int, principal: Principal, name: str, role: str, now: datetime
) -> IncidentMember:
    inc = get_incident(session, incident_id=incident_id, principal=principal, acting=True)
    _not_closed(inc, "add a member")
    if not name.strip():
        raise InvalidInput("must not be empty", field="name")
    if role.strip().casefold() == "commander":
        raise InvalidInput(
            f"the commander is appointed with POST /api/incidents/{inc.id}/commander, not added as a member",
            field="role",
        )
    if name == inc.commander:
        raise Conflict(
            f"{name} is the incident's commander; appoint another one with "
            f"POST /api/incidents/{inc.id}/commander first (the previous commander stays a member)",
            field="role",
        )
    member = session.scalar(
        select(IncidentMember).where(IncidentMember.incident_id == inc.id, IncidentMember.name == name)
    )
    was = None if member is None else {"name": member.name, "role": member.role}
    before = {**audit.snapshot(inc, AUDITED), "member": was}
    if member is None:
        member = IncidentMember(incident_id=inc.id, name=name, role=role)
        session.add(member)
    else:
        member.role = role
    _timeline(
        session,
        inc,
        actor=principal.name,
        kind="member",
        text=f"member {name} ({role})",
        now=now,
        data={"name": name, "role": role},
    )
    _changed(
        session,
        inc,
        actor=principal.name,
        action="incident.member",
        before=before,
        now=now,
        about={"member": {"name": name, "role": role}},
    )
    return member


def add_task(
    session: Session,
    *,
    incident_id: int,
    principal: Principal,
    title: str,
    owner: str,
    due_at: datetime,
    now: datetime,
) -> IncidentTask:
    inc = get_incident(session, incident_id=incident_id, principal=principal, acting=True)
    _not_closed(inc, "add a task")
    if not title.strip():
        raise InvalidInput("must not be empty", field="title")
    if not owner.strip():
        raise InvalidInput("a task needs an owner", field="owner")
    before = {**audit.snapshot(inc, AUDITED), "task": None}
    task = IncidentTask(incident_id=inc.id, title=title, owner=owner, due_at=due_at, created_at=now)
    session.add(task)
    session.flush()
    _timeline(
        session,
        inc,
        actor=principal.name,
        kind="task",
        text=f"task #{task.id} {title!r} for {owner}, due {due_at.isoformat()}",
        now=now,
        data={
            "task_id": task.id,
            "title": title,
            "owner": owner,
            "due_at": due_at.astimezone(UTC).isoformat(),
            "done": False,
        },
    )
    _changed(
        session, inc, actor=principal.name, action="incident.task", before=before, now=now, about=_task(task)
    )
    return task


def _task(task: IncidentTask) -> dict[str, Any]:
    """A task as the audit keeps it (its due time in UTC)."""
    due = task.due_at.astimezone(UTC).isoformat()
    return {
        "task": {"id": task.id, "title": task.title, "owner": task.owner, "due_at": due, "done": task.done}
    }


def complete_task(
    session: Session, *, incident_id: int, task_id: int, principal: Principal, now: datetime
) -> IncidentTask:
    inc = get_incident(session, incident_id=incident_id, principal=principal, acting=True)
    task = session.get(IncidentTask, task_id)
    if task is None or task.incident_id != inc.id:
        raise NotFound(f"no task {task_id} in incident {incident_id}", field="task_id")
    _not_closed(inc, "change a task")
    if task.done:
        return task  # already done: nothing changes, nothing is written
    before = {**audit.snapshot(inc, AUDITED), **_task(task)}
    task.done = True
    _timeline(
        session,
        inc,
        actor=principal.name,
        kind="task",
        text=f"task #{task.id} done",
        now=now,
        data={"task_id": task.id, "title": task.title, "done": True},
    )
    _changed(
        session,
        inc,
        actor=principal.name,
        action="incident.task_done",
        before=before,
        now=now,
        about=_task(task),
    )
    return task


def link_alert(
    session: Session, *, incident_id: int, principal: Principal, alert_id: int, now: datetime
) -> Incident:
    inc = get_incident(session, incident_id=incident_id, principal=principal, acting=True)
    _not_closed(inc, "link an alert")
    alert = get_alert(session, alert_id=alert_id, principal=principal, acting=True)
    if session.get(IncidentAlert, (inc.id, alert.id)) is None:
        _not_in_another_open_incident(session, alert, field="alert_id", incident_id=inc.id)
        before = audit.snapshot(inc, AUDITED)
        _attach(session, inc, alert, actor=principal.name, now=now)
        if Level(alert.max_level) > Level(inc.level):
            inc.level = alert.max_level
        if alert.region is not None and inc.region not in (None, alert.region):
            inc.region = None  # of several counties now: seen by each whose alerts it holds
        _changed(
            session,
            inc,
            actor=principal.name,
            action="incident.link_alert",
            before=before,
            now=now,
            about={"alert_id": alert.id},
        )
    return inc


#: what a linked alert did, as the timeline's English text says it
_CHANGES = {"level_raised": "level raised", "fired_again": "fired again"}


def follow_alert(session: Session, *, alert: Alert, change: str, was: str, now: datetime) -> list[Incident]:
    """Tell the incidents (not closed) that hold ``alert`` that it changed: ``level_raised`` or
    ``fired_again`` (after resolving), from level ``was`` to its level now.

    Each incident's level rises to its highest linked alert's; the change goes on its timeline, into
    the audit and onto the live stream. A resolved incident stays resolved (the state machine has no
    way back), the entry tells its team the warning is back.
    """
    followed = []
    for inc in incidents_of_alert(session, alert_id=alert.id):
        if inc.state == IncidentState.closed:
            continue
        before = audit.snapshot(inc, AUDITED)
        if Level(alert.max_level) > Level(inc.level):
            inc.level = alert.max_level
        text = f"alert #{alert.id} {_CHANGES[change]}: {was} -> {alert.level}"
        if change == "fired_again" and inc.state == IncidentState.resolved:
            text += "; the incident is resolved: review it"
        _timeline(
            session,
            inc,
            actor="system",
            kind="alert_changed",
            text=f"{text} ({alert.summary})",
            now=now,
            data={
                "alert_id": alert.id,
                "change": change,
                "from": was,
                "to": alert.level,
                "summary": alert.summary,
                "state": inc.state,  # the incident's, when told: a resolved one needs a second look
            },
        )
        about = {"id": alert.id, "change": change, "from": was, "to": alert.level}
        _changed(
            session,
            inc,
            actor="system",
            action="incident.alert_changed",
            before=before,
            now=now,
            about={"alert": about},
        )
        followed.append(inc)
    return followed


def link(
    session: Session, *, incident_id: int, principal: Principal, kind: str, value: str, now: datetime
) -> Incident:
    if kind not in ("enterprise", "product"):
        raise InvalidInput("must be 'enterprise' or 'product'", field="kind")
    if not value.strip():
        raise InvalidInput("must not be empty", field="value")
    inc = get_incident(session, incident_id=incident_id, principal=principal, acting=True)
    _not_closed(inc, f"link a{'n' if kind == 'enterprise' else ''} {kind}")
    before = audit.snapshot(inc, AUDITED)
    if _link(session, inc, kind=kind, value=value):
        _timeline(
            session,
            inc,
            actor=principal.name,
            kind="link",
            text=f"linked {kind} {value}",
            now=now,
            data={"kind": kind, "value": value},
        )
        _changed(
            session,
            inc,
            actor=principal.name,
            action="incident.link",
            before=before,
            now=now,
            about={"link": {"kind": kind, "value": value}},
        )
    return inc


def list_incidents(
    session: Session,
    *,
    principal: Principal | None,
    state: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Incident], int]:
    q = select(Incident)
    if state is not None:
        q = q.where(Incident.state == state)
    if principal is not None and principal.county is not None:
        q = q.where(_visible_to(principal.county))
    total = session.scalar(select(func.count()).select_from(q.subquery())) or 0
    return list(session.scalars(q.order_by(Incident.id.desc()).limit(limit).offset(offset))), total


def incident_detail(session: Session, *, incident: Incident) -> dict[str, Any]:
    iid = incident.id
    return {
        **{c.key: _iso(getattr(incident, c.key)) for c in Incident.__table__.columns},
        "members": [
            {"name": m.name, "role": m.role}
            for m in session.scalars(select(IncidentMember).where(IncidentMember.incident_id == iid))
        ],
        "tasks": [
            {"id": t.id, "title": t.title, "owner": t.owner, "due_at": _iso(t.due_at), "done": t.done}
            for t in session.scalars(
                select(IncidentTask).where(IncidentTask.incident_id == iid).order_by(IncidentTask.id)
            )
        ],
        "timeline": [
            {"at": _iso(e.at), "actor": e.actor, "kind": e.kind, "data": e.data, "text": e.text}
            for e in session.scalars(
                select(TimelineEntry).where(TimelineEntry.incident_id == iid).order_by(TimelineEntry.id)
            )
        ],
        "alert_ids": list(
            session.scalars(
                select(IncidentAlert.alert_id)
                .where(IncidentAlert.incident_id == iid)
                .order_by(IncidentAlert.alert_id)
            )
        ),
        "enterprises": list(
            session.scalars(
                select(IncidentLink.value)
                .where(IncidentLink.incident_id == iid, IncidentLink.kind == "enterprise")
                .order_by(IncidentLink.id)
            )
        ),
        "products": list(
            session.scalars(
                select(IncidentLink.value)
                .where(IncidentLink.incident_id == iid, IncidentLink.kind == "product")
                .order_by(IncidentLink.id)
            )
        ),
    }
