"""The faust application of a stream worker, built from :class:`~stream.settings.StreamSettings`.

faust is the framework: the worker process, its lifecycle and signals, topic declarations, the web
server with ``/metrics``, ``/healthz`` (readiness) and ``/livez`` (liveness). Detection runs in a
faust service that drives the checkpointed consumer of :mod:`stream.pipeline` (why not a faust agent
with tables: ``docs/stream.md``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import faust
from faust.auth import Credentials, SASLCredentials, SSLCredentials
from mode import Service
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .checkpoint import CheckpointRefused
from .metrics import StreamMetrics
from .pipeline import DetectionPipeline
from .settings import StreamSettings
from .topics import Topics, declare_faust_topics

__all__ = ["DetectionService", "broker_credentials", "create_app", "health"]

log = logging.getLogger(__name__)


class DetectionService(Service):
    """Runs one :class:`DetectionPipeline` for as long as the app runs."""

    def __init__(self, pipeline: DetectionPipeline, **kwargs: Any) -> None:
        self.pipeline = pipeline
        self._run_done = asyncio.Event()
        #: the checkpoint the pipeline refused, which stopped it (it has logged why, in one line)
        self.refused: CheckpointRefused | None = None
        #: called then: stops the worker as SIGTERM would, without a crash report (``run_worker``)
        self.on_refused: Callable[[], object] | None = None
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        await self.pipeline.start()

    @Service.task
    async def _consume(self) -> None:
        try:
            await self.pipeline.run()
        except CheckpointRefused as exc:
            self.refused = exc
            if self.on_refused is None:
                raise
            self.on_refused()
        except Exception:
            log.exception("detection pipeline failed; stopping the worker")
            raise
        finally:
            self._run_done.set()

    async def on_stop(self) -> None:
        # let the current batch finish, then checkpoint and leave the group
        self.pipeline.request_stop()
        try:
            await asyncio.wait_for(self._run_done.wait(), timeout=30)
        except TimeoutError:
            log.warning("detection pipeline did not finish its batch within 30 s; stopping anyway")
        await self.pipeline.stop()


def broker_credentials(settings: StreamSettings) -> Credentials | None:
    """faust's credentials for ``QW_SECURITY_PROTOCOL``. faust takes the protocol from the credentials'
    class and TLS context, not from a setting: ``SSLCredentials`` speak SSL, ``SASLCredentials`` speak
    SASL_SSL with a TLS context and SASL_PLAINTEXT without one, and no credentials PLAINTEXT. The TLS
    context trusts ``QW_SSL_CAFILE``'s authorities (else the system's), as the other clients do."""
    protocol = settings.security_protocol
    if protocol == "SSL":
        return SSLCredentials(settings.ssl_context())
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        password = settings.sasl_password
        return SASLCredentials(
            username=settings.sasl_username,
            password=password.get_secret_value() if password is not None else None,
            mechanism=settings.sasl_mechanism,
            ssl_context=settings.ssl_context(),  # None for SASL_PLAINTEXT
        )
    return None


def health(pipe: DetectionPipeline, *, stopped: bool) -> tuple[dict[str, Any], bool]:
    """``/healthz``: the body, and whether the worker is ready (detecting on partitions it holds).

    Not ready while the consumer has not joined its group or holds no partition (a worker beyond the
    partition count stays so), nor once detection has stopped. ``/livez`` fails only in that last case,
    so that liveness does not restart a worker that is waiting for its group.
    """
    partitions = pipe.assigned()
    last = pipe.last_checkpoint_at
    body: dict[str, Any] = {
        "status": "ok",
        "partitions": partitions,
        "last_checkpoint_age_seconds": round(max(0.0, time.time() - last), 3) if last is not None else None,
    }
    if stopped:
        body |= {"status": "detection stopped", "reason": "the detection consumer has stopped: restart"}
    elif not partitions:
        body |= {
            "status": "waiting for partitions",
            "reason": "no partition assigned yet (joining the consumer group, a rebalance, or more "
            "workers than partitions)",
        }
    return body, body["status"] == "ok"


def create_app(settings: StreamSettings, pipeline: DetectionPipeline | None = None) -> faust.App:
    """One faust ``App``: topics declared, ``/metrics`` served, the detection service attached."""
    metrics = pipeline.metrics if pipeline is not None else StreamMetrics()
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{h.strip()}" for h in settings.bootstrap_servers.split(",")],
        store="memory://",
        web_enabled=settings.web_enabled,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        broker_session_timeout=settings.session_timeout_ms / 1000,
        broker_heartbeat_interval=settings.heartbeat_interval_ms / 1000,
        broker_request_timeout=settings.request_timeout_ms / 1000,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=True,
        autodiscover=False,
        broker_credentials=broker_credentials(settings),
    )
    topics = Topics.from_settings(settings)
    app.qw_topics = declare_faust_topics(app, topics, settings.partitions)  # type: ignore[attr-defined]
    pipe = pipeline or DetectionPipeline(settings, metrics=metrics)
    app.qw_pipeline = pipe  # type: ignore[attr-defined]
    detection = DetectionService(pipe, loop=None)
    app.qw_detection = detection  # type: ignore[attr-defined]
    app.service(detection)  # type: ignore[arg-type]  # faust's stub types a class; an instance works too

    @app.page("/metrics")
    async def _metrics(web: Any, request: Any) -> Any:
        return web.bytes(
            generate_latest(pipe.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    @app.page("/healthz")
    async def _healthz(web: Any, request: Any) -> Any:
        body, ready = health(pipe, stopped=detection._run_done.is_set())
        return web.json(body, status=200 if ready else 503)

    @app.page("/livez")
    async def _livez(web: Any, request: Any) -> Any:
        if detection._run_done.is_set():  # the detection consumer has stopped: restart the worker
            return web.json({"status": "detection stopped"}, status=503)
        return web.json({"status": "alive"})

    return app
