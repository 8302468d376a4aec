"""Which detectors run in which stage, with which hyper-parameters: the one place to read or change.

Adding a detector: write the class (see ``detectors/base.py``), add it to ``detectors.__all__`` and
to the conformance suite, and build it in the stage whose key it watches below.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from schemas import Catalogue, RiskWarning, Scope, WarningKind

from .enterprise_outlier import EnterpriseOutlierDetector
from .enterprise_repeat import EnterpriseRepeatDetector
from .patrol import PatrolDetector
from .rate import RateChangeDetector
from .systemic import SystemicItemDetector
from .target import PolicyTargetDetector

if TYPE_CHECKING:
    from .engine import EngineConfig, Labels

__all__ = [
    "RATE_CHANGE_PARAMS",
    "SYSTEMIC_PARAMS",
    "DetectorSet",
    "KeyedDetector",
    "build_industry_detectors",
    "build_patrol_detectors",
    "build_region_detectors",
    "build_systemic_detector",
]


#: regional_rate / industry_rate, per kind: the one-week score threshold, the GLR window (weeks),
#: threshold and per-week cap, and the week's own score needed to open (``onset_z``) and to hold
#: (``hold_z``) a GLR alarm (the baseline's guard band and refit interval keep the class defaults,
#: 4 weeks each). A county sums 8 industries
#: (5-8 failures a week), an industry 4 counties (2-4 a week): the county alarms on one week sooner,
#: the industry needs a stronger single week and leans on the GLR. Tuned together on 10 simulated
#: seeds for the pooled false-alarm budget and the median delay (docs/benchmarks.md, "Detection
#: quality")
RATE_CHANGE_PARAMS: dict[WarningKind, dict[str, Any]] = {
    WarningKind.regional: {
        "z_threshold": 2.3,
        "glr_weeks": 8,
        "glr_threshold": 3.0,
        "glr_cap": 2.0,
        "onset_z": 0.5,
        "hold_z": 1.2,
    },
    WarningKind.industry: {
        "z_threshold": 3.4,
        "glr_weeks": 8,
        "glr_threshold": 2.7,
        "glr_cap": 2.5,
        "onset_z": 0.5,
        "hold_z": 1.8,
    },
}
#: systemic_item: per-cell level over windows of 1..4 weeks, and the combined (Fisher) p-value the
#: flagged cells must reach together; the item's whole week (``max_total_p``) for a rise spread thinly
#: over many cells. A combined level of 5e-4 (the class default is 1e-4) spends part of the pooled
#: false-alarm budget on low, slowly rising systemic incidents (about 10 false alarm-weeks on 10
#: simulated seeds) and brings systemic alarms earlier; the whole-week test costs no false alarm-week
#: on seeds 1-10 and one on 11-20 (docs/benchmarks.md, "Detection quality")
SYSTEMIC_PARAMS: dict[str, Any] = {
    "alpha": 0.1,
    "window_weeks": 4,
    "max_combined_p": 5e-4,
    "max_total_p": 3e-4,
}


class KeyedDetector:
    """One detector instance per key (an enterprise, an industry), created on first sight.

    ``only``: a cheap test of the record (``attrgetter("test_items")``); records it finds falsy
    never reach an instance (nor create one), for a detector that ignores them anyway.
    """

    def __init__(
        self,
        key: Callable[[Any], str],
        factory: Callable[[str], Any],
        *,
        only: Callable[[Any], Any] | None = None,
    ) -> None:
        self._key = key
        self._factory = factory
        self._only = only
        self.instances: dict[str, Any] = {}

    def step(self, obs: Any, at: float | None = None) -> list[RiskWarning]:
        """``step`` of the instance for ``obs``'s key; ``at``: the event time in POSIX seconds, if known."""
        if self._only is not None and not self._only(obs):
            return []
        return self.step_instance(obs, at)

    def step_instance(self, obs: Any, at: float | None = None) -> list[RiskWarning]:
        """:meth:`step` for a record that ``only`` has already passed."""
        k = self._key(obs)
        det = self.instances.get(k)
        if det is None:
            det = self.instances[k] = self._factory(k)
        result: list[RiskWarning] = det.step(obs, at)
        return result

    def drain(self) -> list[RiskWarning]:
        """What the instances that decide in batches (``drain()``) still hold back, in key order."""
        return _drain_all(self.instances[k] for k in sorted(self.instances))


#: a record detector's step, and the test a record must pass first (None: every record)
RecordStep = tuple[Callable[[Any], Any] | None, Callable[[Any, float | None], list[RiskWarning]]]


def _record_step(det: Any) -> RecordStep:
    if isinstance(det, KeyedDetector):
        return det._only, det.step_instance
    return None, det.step


class DetectorSet:
    """The detectors of one stage, stepped in a fixed order.

    Record detectors take the record and, optionally, its event time in POSIX seconds (``at``),
    which the engine has already computed: ``step(record, at)``.
    """

    def __init__(self, week: Sequence[Any] = (), record: Sequence[Any] = ()) -> None:
        self.week = list(week)
        self.record = list(record)

    @property
    def record(self) -> list[Any]:
        """The record detectors, in order (assign a new list to change them: :attr:`record_steps`
        follows the assignment, not changes made to the list in place)."""
        return self._record

    @record.setter
    def record(self, detectors: Iterable[Any]) -> None:
        self._record = list(detectors)
        #: each record detector as ``(only, step)``: the engine's hot path tests ``only`` itself,
        #: so the records a keyed detector ignores cost no call
        self.record_steps: tuple[RecordStep, ...] = tuple(_record_step(d) for d in self._record)

    def __getstate__(self) -> dict[str, Any]:
        return {"week": self.week, "record": self._record}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.week = state["week"]
        self.record = state["record"]

    def on_week(self, obs: Any) -> list[RiskWarning]:
        out: list[RiskWarning] = []
        for det in self.week:
            out += det.step(obs)
        return out

    def on_record(self, record: Any, at: float | None = None) -> list[RiskWarning]:
        out: list[RiskWarning] | None = None
        for det in self.record:
            found = det.step(record, at)
            if found:
                out = found if out is None else [*out, *found]
        return out if out is not None else []

    def drain(self) -> list[RiskWarning]:
        """The warnings of record detectors that decide in batches, for the records given so far."""
        return _drain_all(self.record)


def _drain_all(detectors: Iterable[Any]) -> list[RiskWarning]:
    """``drain()`` of every detector that has one (batch scoring), in order."""
    out: list[RiskWarning] = []
    for det in detectors:
        drain = getattr(det, "drain", None)
        if drain is not None:
            out += drain()
    return out


def _enterprise_repeat(
    enterprise_id: str, *, region_label: str, item_labels: Mapping[str, str]
) -> EnterpriseRepeatDetector:
    return EnterpriseRepeatDetector(
        enterprise_id=enterprise_id, region_label=region_label, item_labels=item_labels
    )


def _enterprise_outlier(
    industry: str,
    *,
    region: str,
    cat_items: dict[str, tuple[str, ...]],
    seed: int,
    batch: bool,
    labels: Labels,
) -> EnterpriseOutlierDetector:
    return EnterpriseOutlierDetector(
        region=region,
        industry=industry,
        items=cat_items.get(industry, ()),
        seed=seed,
        batch=batch,
        region_label=labels.region(region),
        industry_label=labels.industry(industry),
        item_labels=labels.items,
    )


def build_region_detectors(region: str, cat: Catalogue, config: EngineConfig, labels: Labels) -> DetectorSet:
    scope = Scope(region=region)
    label = labels.region(region)
    return DetectorSet(
        week=[
            RateChangeDetector(
                name="regional_rate",
                kind=WarningKind.regional,
                scope=scope,
                label=label,
                **RATE_CHANGE_PARAMS[WarningKind.regional],
            ),
            PolicyTargetDetector(kind=WarningKind.regional, scope=scope, label=label),
        ],
        record=[
            KeyedDetector(
                attrgetter("enterprise_id"),
                # one mapping of item names for every enterprise of the county (not a copy each)
                partial(_enterprise_repeat, region_label=label, item_labels=labels.items),
            ),
            KeyedDetector(
                attrgetter("industry"),
                only=attrgetter("test_items"),  # the outlier model reads test-item values only
                factory=partial(
                    _enterprise_outlier,
                    region=region,
                    cat_items={i.slug: i.hazard_items for i in cat.industries},
                    seed=config.seed,
                    batch=config.batch_scoring,
                    labels=labels,
                ),
            ),
        ],
    )


def build_patrol_detectors(region: str, cat: Catalogue, config: EngineConfig, labels: Labels) -> DetectorSet:
    return DetectorSet(
        record=[
            PatrolDetector(
                region=region,
                label=labels.region(region),
                industry_labels=labels.industries,
                item_labels=labels.items,
            )
        ]
    )


def build_industry_detectors(
    industry: str, cat: Catalogue, config: EngineConfig, labels: Labels
) -> DetectorSet:
    scope = Scope(industry=industry)
    label = labels.industry(industry)
    return DetectorSet(
        week=[
            RateChangeDetector(
                name="industry_rate",
                kind=WarningKind.industry,
                scope=scope,
                label=label,
                **RATE_CHANGE_PARAMS[WarningKind.industry],
            ),
            PolicyTargetDetector(kind=WarningKind.industry, scope=scope, label=label),
        ]
    )


def build_systemic_detector(
    item: str, cat: Catalogue, config: EngineConfig, labels: Labels
) -> SystemicItemDetector:
    return SystemicItemDetector(
        item=item,
        label=labels.item(item),
        region_labels=dict(labels.regions),
        industry_labels=dict(labels.industries),
        warmup_weeks=8 if cat.is_known_item(item) else 0,  # a new item has nothing to learn first
        **SYSTEMIC_PARAMS,
    )
