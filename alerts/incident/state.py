"""The incident state machine: reported → investigating → controlled → resolved → closed.

A controlled incident may relapse to investigating; closing needs a summary and every task done
(checked by the service).
"""

from __future__ import annotations

from ..errors import IllegalTransition
from .models import IncidentState

__all__ = ["TRANSITIONS", "check_transition"]

S = IncidentState
TRANSITIONS: dict[IncidentState, frozenset[IncidentState]] = {
    S.reported: frozenset({S.investigating}),
    S.investigating: frozenset({S.controlled}),
    S.controlled: frozenset({S.resolved, S.investigating}),
    S.resolved: frozenset({S.closed}),
    S.closed: frozenset(),
}


def check_transition(current: str, target: str) -> IncidentState:
    try:
        to = IncidentState(target)
    except ValueError:
        raise IllegalTransition(
            f"unknown state {target!r} (states: {', '.join(s.value for s in IncidentState)})", field="state"
        ) from None
    frm = IncidentState(current)
    if to not in TRANSITIONS[frm]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[frm])) or "none: the incident is closed"
        raise IllegalTransition(
            f"cannot move from {frm.value} to {to.value} (allowed: {allowed})", field="state"
        )
    return to
