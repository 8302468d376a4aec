"""Every topic the stream uses, in one place, named with the configured prefix.

* ``sampling-results`` and ``patrol-reports``: the input, keyed by region (a county's records stay in
  one partition and in order; a record whose key is not its region goes to the dead letter);
* ``cell-weeks``: internal. Every closed (county, industry, week) cell, written to *every* partition,
  so each partition's industry and systemic stages see all counties (their barrier needs them);
* ``warnings``: ``RiskWarning`` JSON keyed by fingerprint;
* ``dead-letter``: refused input with the reason, topic, partition, offset and the original bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .settings import StreamSettings

if TYPE_CHECKING:
    import faust

__all__ = ["Topics", "declare_faust_topics"]


@dataclass(frozen=True)
class Topics:
    """Topic names for one prefix."""

    sampling: str
    patrols: str
    cell_weeks: str
    warnings: str
    dead_letter: str

    @classmethod
    def from_settings(cls, settings: StreamSettings) -> Topics:
        return cls(
            sampling=settings.topic_name("sampling-results"),
            patrols=settings.topic_name("patrol-reports"),
            cell_weeks=settings.topic_name("cell-weeks"),
            warnings=settings.topic_name("warnings"),
            dead_letter=settings.topic_name("dead-letter"),
        )

    @property
    def inputs(self) -> tuple[str, str, str]:
        """What the detection consumer reads."""
        return (self.sampling, self.patrols, self.cell_weeks)

    @property
    def all(self) -> tuple[str, ...]:
        return (self.sampling, self.patrols, self.cell_weeks, self.warnings, self.dead_letter)


def declare_faust_topics(app: faust.App, topics: Topics, partitions: int) -> dict[str, faust.TopicT]:
    """The same topics as faust ``Topic`` objects (raw bytes), for agents and tools of the app."""
    return {
        name: app.topic(
            name,
            key_type=bytes,
            value_type=bytes,
            partitions=partitions,
            value_serializer="raw",
            key_serializer="raw",
        )
        for name in topics.all
    }
