"""The alert state machine: which action moves an alert from which state to which."""

from __future__ import annotations

from ..errors import IllegalTransition
from .models import AlertState

__all__ = ["TRANSITIONS", "next_state"]

#: (state, action) -> new state; anything else is refused
TRANSITIONS: dict[tuple[AlertState, str], AlertState] = {
    (AlertState.firing, "acknowledge"): AlertState.acknowledged,
    (AlertState.firing, "resolve"): AlertState.resolved,
    (AlertState.acknowledged, "resolve"): AlertState.resolved,
    # a higher level needs a fresh acknowledgement
    (AlertState.acknowledged, "raise_level"): AlertState.firing,
    (AlertState.resolved, "refire"): AlertState.firing,
}


def next_state(state: str, action: str) -> AlertState:
    current = AlertState(state)
    try:
        return TRANSITIONS[(current, action)]
    except KeyError:
        allowed = sorted(a for (s, a) in TRANSITIONS if s is current)
        raise IllegalTransition(
            f"cannot {action.replace('_', ' ')} an alert that is {current.value}"
            + (f" (allowed: {', '.join(allowed)})" if allowed else ""),
            field="state",
        ) from None
