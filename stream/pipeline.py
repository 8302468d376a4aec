"""The detection consumer: read input partitions, run the stages, publish, checkpoint.

Per message: decode -> validate -> (the stage drops repeated ids) -> stages -> publish warnings to
``warnings`` and closed cell-weeks to ``cell-weeks``; refused messages go to ``dead-letter``.

Exactly-once state (see ``docs/stream.md``): the state of each assigned partition is checkpointed
together with the offset of the next message it has not seen, after every output it caused has been
acknowledged by the broker (``acks=all``): the state is snapshotted between two messages, and the
snapshot is saved once every output sent before it has been acknowledged (a failed send fails the
checkpoint). Consuming goes on while a periodic checkpoint waits for the acknowledgements and the
database, so it does not stall the stream. On assignment the consumer restores the checkpoint and
seeks to its offset (or to the beginning when there is none), so every record changes the state
exactly once; outputs re-sent after a crash are harmless (deterministic warning ids, an idempotent
cell-week barrier). Kafka's committed offsets are written only for monitoring.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from sqlalchemy.exc import SQLAlchemyError

from detectors.engine import EngineConfig, Outcome
from schemas import Catalogue, PatrolReport, RiskWarning, SamplingResult, default_catalogue, load_catalogue
from schemas.fastpath import SamplingRecord

from .checkpoint import Checkpoint, CheckpointRefused, CheckpointStore, decode_state, encode_state
from .codec import (
    Rejection,
    check_cell_week,
    dead_letter,
    decode_cell_week,
    decode_record,
    encode_cell_week,
    encode_warning,
)
from .metrics import StreamMetrics
from .settings import StreamSettings
from .stages import CellWeekPartition, PatrolPartition, SamplingPartition, StageContext
from .topics import Topics

__all__ = ["DetectionPipeline", "ensure_topics", "stage_context"]

#: modules the detectors import lazily on first use (the enterprise outlier detector's first fit
#: imports scikit-learn, which takes seconds); imported before the first partition is assigned so
#: that the first fit does not stall the consumer
WARM_IMPORTS = ("sklearn.ensemble",)

log = logging.getLogger(__name__)

#: the longest key a dead letter is sent with (the input topics are keyed by county code)
DEAD_LETTER_MAX_KEY = 1024

PartitionState = SamplingPartition | PatrolPartition | CellWeekPartition


def stage_context(settings: StreamSettings, catalogue: Catalogue | None = None) -> StageContext:
    cat = catalogue or (
        load_catalogue(settings.catalogue_path) if settings.catalogue_path else default_catalogue()
    )
    if settings.epoch is None:
        raise ValueError(
            "epoch: QW_EPOCH must be set (a Monday 00:00 with its UTC offset, the first week watched)"
        )
    idle = settings.idle_county_release_hours
    config = EngineConfig(
        epoch=settings.epoch.astimezone(cat.zone),
        seed=settings.seed,
        idle_release=timedelta(hours=idle) if idle > 0 else None,
    )
    return StageContext.create(cat, config)


async def ensure_topics(settings: StreamSettings, topics: Topics) -> None:
    """Create the stream's topics with the configured partitions (those that exist are left alone)."""
    admin = AIOKafkaAdminClient(**settings.aiokafka_kwargs())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, settings.partitions, settings.replication_factor)
            for name in topics.all
            if name not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker was faster
                await admin.create_topics(missing)
    finally:
        await admin.close()


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, pipeline: DetectionPipeline) -> None:
        self._p = pipeline

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._p._revoke(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._p._assign(assigned)


class _Part:
    __slots__ = ("dirty", "next_offset", "state")

    def __init__(self, state: PartitionState, next_offset: int) -> None:
        self.state = state
        self.next_offset = next_offset
        self.dirty = False


@dataclass
class _Snapshot:
    """Partition states taken between two messages, to be saved once their outputs are acknowledged."""

    items: list[Checkpoint]
    offsets: dict[TopicPartition, int]
    #: delivery futures of every output sent before the snapshot (and not yet checked)
    sends: list[asyncio.Future[Any]]


class DetectionPipeline:
    """One member of the detection consumer group (run it inside the faust app, or on its own)."""

    #: how long stopping waits for the broker before giving up on the final checkpoint
    STOP_TIMEOUT_S = 15.0

    def __init__(
        self,
        settings: StreamSettings,
        *,
        catalogue: Catalogue | None = None,
        metrics: StreamMetrics | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.settings = settings
        self.topics = Topics.from_settings(settings)
        self.ctx = stage_context(settings, catalogue)
        self._made_with = self.ctx.made_with()  # recorded in every checkpoint, checked on every restore
        self.metrics = metrics or StreamMetrics()
        self._clock = clock or (lambda: datetime.now(UTC))
        self.store = CheckpointStore(settings.checkpoint_url, settings.group_id)
        self._parts: dict[TopicPartition, _Part] = {}
        self._lock = asyncio.Lock()
        self._cell_partitions: list[int] = []
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._last_checkpoint = time.monotonic()
        self._persisting: asyncio.Task[None] | None = None  # the periodic checkpoint in flight
        self._sends: list[asyncio.Future[Any]] = []  # delivery futures since the last snapshot
        self._stopping = asyncio.Event()
        self._fatal: Exception | None = None  # why run() must stop the worker (a checkpoint it cannot read)
        self._topic_metrics: dict[str, tuple[Any, Any]] = {}
        self.processed = 0
        #: when this worker last saved a checkpoint (epoch seconds; None before its first)
        self.last_checkpoint_at: float | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        for name in WARM_IMPORTS:
            await asyncio.to_thread(importlib.import_module, name)
        await ensure_topics(s, self.topics)
        common = s.aiokafka_kwargs()
        self._producer = AIOKafkaProducer(
            **common,
            acks="all",
            enable_idempotence=bool(s.enable_idempotence),
            linger_ms=5,
        )
        await self._producer.start()
        parts = await self._producer.partitions_for(self.topics.cell_weeks)
        self._cell_partitions = sorted(parts)
        self._consumer = AIOKafkaConsumer(
            **common,
            group_id=s.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=s.heartbeat_interval_ms,
            fetch_max_wait_ms=s.fetch_max_wait_ms,
            max_poll_records=s.max_poll_records,
        )
        await self._consumer.start()
        self._consumer.subscribe(list(self.topics.inputs), listener=_Listener(self))

    async def run(self) -> None:
        """Consume until :meth:`request_stop`."""
        assert self._consumer is not None
        while not self._stopping.is_set():
            batch = await self._consumer.getmany(timeout_ms=200)
            async with self._lock:
                for tp, messages in batch.items():
                    part = self._parts.get(tp)
                    if part is None:
                        continue  # revoked while fetched
                    for msg in messages:
                        if msg.offset < part.next_offset:
                            continue
                        await self._handle(tp, part, msg)
                        part.next_offset = msg.offset + 1
                        part.dirty = True
                        self.processed += 1
                self._update_lag()
                self._periodic_checkpoint()
        if self._fatal is not None:
            raise self._fatal

    def _periodic_checkpoint(self) -> None:
        """Every ``checkpoint_interval_s``: snapshot now, save in the background (one at a time)."""
        task = self._persisting
        if task is not None:
            if not task.done():
                return
            self._persisting = None
            task.result()  # a failed checkpoint stops the worker; the next owner redoes the rest
        if time.monotonic() - self._last_checkpoint < self.settings.checkpoint_interval_s:
            return
        snap = self._snapshot(list(self._parts))
        if snap is not None:
            self._persisting = asyncio.create_task(self._persist(snap))

    def assigned(self) -> list[str]:
        """The partitions this worker holds, as ``topic[partition]``."""
        return [f"{tp.topic}[{tp.partition}]" for tp in sorted(self._parts)]

    def request_stop(self) -> None:
        self._stopping.set()

    async def stop(self) -> None:
        """Checkpoint what is assigned, leave the group, close the clients."""
        self._stopping.set()
        try:
            async with self._lock:  # also waits for a periodic checkpoint in flight
                await asyncio.wait_for(self._checkpoint(list(self._parts)), self.STOP_TIMEOUT_S)
        except (TimeoutError, KafkaError, SQLAlchemyError) as exc:
            # outputs not acknowledged: no checkpoint, the next owner redoes them (harmless)
            log.warning("final checkpoint skipped: %r", exc)
        for client in (self._consumer, self._producer):
            if client is None:
                continue
            try:
                await asyncio.wait_for(client.stop(), self.STOP_TIMEOUT_S)
            except (TimeoutError, KafkaError) as exc:
                log.warning("client did not stop cleanly: %r", exc)
        self.store.close()

    # -- rebalancing -----------------------------------------------------------------------------

    async def _assign(self, assigned: set[TopicPartition]) -> None:
        assert self._consumer is not None
        async with self._lock:
            for tp in sorted(assigned):
                if tp in self._parts:
                    continue
                t0 = time.perf_counter()
                # in a thread: a slow store must not stall the event loop (and with it the heartbeats)
                cp = await asyncio.to_thread(self.store.load, tp.topic, tp.partition)
                if cp is None:
                    part = _Part(self._new_state(tp), 0)
                    await self._consumer.seek_to_beginning(tp)
                else:
                    try:
                        state = decode_state(cp.state, f"{tp.topic}[{tp.partition}]", self._made_with)
                    except CheckpointRefused as exc:
                        # an exception here would be swallowed by the consumer's rebalance: stop the
                        # worker from run() instead, without touching the old checkpoint
                        log.error("%s", exc)
                        self._fatal = exc
                        self._stopping.set()
                        return
                    if isinstance(state, CellWeekPartition):  # the setting now, not the one pickled
                        state.set_idle_release(self.ctx.config.idle_release)
                    part = _Part(state, cp.next_offset)
                    self._consumer.seek(tp, cp.next_offset)
                self._parts[tp] = part
                self.metrics.restore_seconds.labels(tp.topic, str(tp.partition)).set(time.perf_counter() - t0)
                log.info("assigned %s[%d] from offset %d", tp.topic, tp.partition, part.next_offset)

    async def _revoke(self, revoked: set[TopicPartition]) -> None:
        """Checkpoint the revoked partitions and forget them, also when the checkpoint fails.

        A partition kept in memory after a failed checkpoint would be skipped by the next
        :meth:`_assign` (neither restored nor sought), and carry on from a state that another worker
        may have moved past meanwhile. Forgotten, it is restored from its last checkpoint, with the
        offset saved beside it: what came after is read again, and counted once.
        """
        async with self._lock:
            mine = [tp for tp in revoked if tp in self._parts]
            try:
                if mine:
                    await self._checkpoint(mine)
            except (KafkaError, OSError, SQLAlchemyError) as exc:
                log.warning(
                    "checkpoint on revocation failed; %s resume from their last checkpoint: %r",
                    ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(mine)),
                    exc,
                )
            finally:
                for tp in mine:
                    del self._parts[tp]
                    with contextlib.suppress(KeyError):  # never sampled: nothing to remove
                        self.metrics.lag.remove(tp.topic, str(tp.partition))

    def _new_state(self, tp: TopicPartition) -> PartitionState:
        if tp.topic == self.topics.sampling:
            return SamplingPartition(self.ctx)
        if tp.topic == self.topics.patrols:
            return PatrolPartition(self.ctx)
        return CellWeekPartition(self.ctx, tp.partition, len(self._cell_partitions))

    # -- checkpoints -----------------------------------------------------------------------------

    async def _checkpoint(self, tps: list[TopicPartition]) -> None:
        """Checkpoint ``tps`` now and wait until it is saved (revocation, shutdown)."""
        await self._settle()
        snap = self._snapshot(tps)
        if snap is not None:
            await self._persist(snap)

    async def _settle(self) -> None:
        """Wait for the periodic checkpoint in flight; if it failed, its partitions stay dirty."""
        task, self._persisting = self._persisting, None
        if task is None:
            return
        try:
            await task
        except (KafkaError, OSError, SQLAlchemyError) as exc:
            log.warning("periodic checkpoint failed (its partitions are checkpointed again): %r", exc)

    def _snapshot(self, tps: list[TopicPartition]) -> _Snapshot | None:
        """The dirty states of ``tps`` with their next offsets, taken between two messages."""
        self._last_checkpoint = time.monotonic()
        dirty = [(tp, self._parts[tp]) for tp in tps if tp in self._parts and self._parts[tp].dirty]
        if not dirty:
            return None
        items = []
        for tp, part in dirty:
            blob = encode_state(part.state, self._made_with)
            items.append(Checkpoint(tp.topic, tp.partition, part.next_offset, blob))
            part.dirty = False
        sends, self._sends = self._sends, []
        return _Snapshot(items, {tp: part.next_offset for tp, part in dirty}, sends)

    async def _persist(self, snap: _Snapshot) -> None:
        """Save a snapshot once every output sent before it is acknowledged (``acks=all``)."""
        assert self._producer is not None
        try:
            await self._producer.flush()
            for fut in snap.sends:  # flush() does not report a failed delivery; result() does
                if not fut.done():
                    await fut
                fut.result()
            await asyncio.to_thread(self.store.save, snap.items)
        except BaseException:
            for tp in snap.offsets:  # not saved: checkpoint these partitions again
                part = self._parts.get(tp)
                if part is not None:
                    part.dirty = True
            raise
        for cp in snap.items:
            self.metrics.checkpoint_bytes.labels(cp.topic, str(cp.partition)).set(len(cp.state))
        self.metrics.checkpoints.inc(len(snap.items))
        self.last_checkpoint_at = time.time()
        self.metrics.last_checkpoint.set(self.last_checkpoint_at)
        if self._consumer is not None:  # for monitoring tools only; restores never read these
            try:
                await self._consumer.commit(snap.offsets)
            except KafkaError as exc:
                log.warning("offset commit (monitoring only) failed: %s", exc)

    # -- one message -----------------------------------------------------------------------------

    async def _handle(self, tp: TopicPartition, part: _Part, msg: Any) -> None:
        topic = tp.topic
        records_in, detector_seconds = self._metrics_of(topic)
        records_in.inc()
        state = part.state
        t0 = time.perf_counter()
        warnings: list[RiskWarning] = []
        if isinstance(state, CellWeekPartition):
            cell = decode_cell_week(msg.value, self.ctx.catalogue.zone)
            if not isinstance(cell, Rejection):
                assert self.ctx.config.epoch is not None  # StageContext.create checks it
                cell = check_cell_week(cell, self.ctx.catalogue, self.ctx.config.epoch, self._clock()) or cell
            if isinstance(cell, Rejection):
                await self._dead_letter(msg, cell)
                return
            known = len(state.incomplete_weeks)
            warnings = state.submit(cell, now=self._clock())
            for start, counties in state.incomplete_weeks[known:]:
                log.warning(
                    "%s[%d]: week of %s released without counties %s (nothing from them for %.0f h while "
                    "later weeks waited); their late cells of it will be ignored",
                    tp.topic,
                    tp.partition,
                    start.date().isoformat(),
                    ", ".join(counties),
                    self.settings.idle_county_release_hours,
                )
                self.metrics.incomplete_weeks.inc()
        else:
            model: type[SamplingResult] | type[PatrolReport] = (
                SamplingResult if isinstance(state, SamplingPartition) else PatrolReport
            )
            record = decode_record(msg.value, model, self.ctx.catalogue, self._clock())
            if isinstance(record, Rejection):
                await self._dead_letter(msg, record)
                return
            key = msg.key.decode("utf-8", "replace") if msg.key is not None else None
            if key != record.region:
                await self._dead_letter(
                    msg,
                    Rejection(
                        f"key: must be the record's region {record.region!r} (got {key!r}); "
                        "a county's records must share one partition"
                    ),
                )
                return
            if isinstance(state, SamplingPartition):
                assert isinstance(record, SamplingRecord)
                outcome, warnings, cells = state.submit(record)
                for cell in cells:
                    raw = encode_cell_week(cell)
                    for p in self._cell_partitions:
                        await self._send(self.topics.cell_weeks, raw, cell.industry.encode(), partition=p)
            else:
                assert isinstance(record, PatrolReport) and isinstance(state, PatrolPartition)
                outcome, warnings = state.submit(record)
            self.metrics.outcomes.labels(topic, outcome.value).inc()
            if outcome is Outcome.duplicate:
                self.metrics.duplicates.labels(topic).inc()
        detector_seconds.observe(time.perf_counter() - t0)
        for w in warnings:
            await self._send(self.topics.warnings, encode_warning(w), w.fingerprint.encode())
            self.metrics.warnings.labels(str(w.kind), str(w.level), str(w.status)).inc()

    async def _dead_letter(self, msg: Any, why: Rejection) -> None:
        reason = why.reason if len(why.reason) <= 1000 else why.reason[:1000] + "..."
        log.warning("dead letter %s[%d]@%d: %s", msg.topic, msg.partition, msg.offset, reason)
        self.metrics.invalid.labels(msg.topic).inc()
        body = dead_letter(
            reason=why.reason,
            topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
            key=msg.key,
            value=msg.value,
            errors=why.errors,
            at=self._clock(),
        )
        # the original key, cut like the copy in the body: a huge key must not make it unsendable
        key = msg.key[:DEAD_LETTER_MAX_KEY] if msg.key is not None else None
        await self._send(self.topics.dead_letter, body, key)

    async def _send(self, topic: str, value: bytes, key: bytes | None, partition: int | None = None) -> None:
        assert self._producer is not None
        self._sends.append(await self._producer.send(topic, value=value, key=key, partition=partition))

    def _metrics_of(self, topic: str) -> tuple[Any, Any]:
        """The per-topic children of the hot-path metrics (``labels()`` costs a lookup and a lock)."""
        children = self._topic_metrics.get(topic)
        if children is None:
            m = self.metrics
            children = self._topic_metrics[topic] = (
                m.records_in.labels(topic),
                m.detector_seconds.labels(topic),
            )
        return children

    def _update_lag(self) -> None:
        """Consumer lag of every assigned partition: high watermark minus the next offset to process.

        The high watermark is the one the broker sent with its last fetch response for the partition
        (no extra request): on a Kafka cluster it is the partition's end offset for this consumer.
        Not the end offsets of a ListOffsets request (``end_offsets``), which the embedded broker
        reports wrongly (the first offset of the last batch + 1); its fetch responses carry the right
        high watermark (``docs/stream.md``, Metrics).
        """
        consumer = self._consumer
        assert consumer is not None
        assigned = consumer.assignment()  # during a rebalance it may already differ from _parts
        for tp, part in self._parts.items():
            if tp not in assigned:
                continue
            high = consumer.highwater(tp)
            if high is not None:
                self.metrics.lag.labels(tp.topic, str(tp.partition)).set(max(0, high - part.next_offset))
