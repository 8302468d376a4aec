"""The outlier detector: unusual test-item results in passing batches.

:class:`EnterpriseOutlierDetector` (one per county and industry) fits an isolation forest
(:mod:`detectors.forest`) to the test-item values of passing batches (each value relative to its
limit) and flags a passing batch whose pattern is unlike the others: the early signal a pass/fail
count cannot give. It reads one :class:`~schemas.SamplingResult` at a time, in event-time order, and
follows event time only (``raised_at`` is the record's ``sampled_at``).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping

import numpy as np

from schemas import Level, RiskWarning, SamplingResult, WarningKind

from .base import Detector, Score, enterprise_scope, make_warning
from .forest import Forest, fit_forest

__all__ = ["EnterpriseOutlierDetector"]

#: the most rows batch mode holds back per detector: enough for numpy to pay off, few enough that
#: the records waiting stay a small part of the memory
_BATCH_ROWS = 256


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
        self._forest: Forest | None = None
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
        with numpy (:meth:`Forest.depths`), then flagged or learnt in order: the same decisions,
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
    def _row(x: tuple[float, ...], forest: Forest) -> tuple[float, ...]:
        """The features with untested items imputed by the training medians."""
        return tuple(m if math.isnan(v) else v for v, m in zip(x, forest.medians, strict=True))

    def _score(self, x: tuple[float, ...], forest: Forest, score: float | None = None) -> Score:
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
        self._forest = fit_forest(
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
