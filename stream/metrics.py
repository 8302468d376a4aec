"""Prometheus metrics of a stream worker (served by the faust web server at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["StreamMetrics"]


class StreamMetrics:
    """The worker's metrics, on their own registry (several workers can live in one test process)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.records_in = Counter("qw_stream_records_in_total", "Messages read", ["topic"], registry=r)
        self.invalid = Counter(
            "qw_stream_records_invalid_total", "Messages sent to the dead letter", ["topic"], registry=r
        )
        self.duplicates = Counter(
            "qw_stream_records_duplicate_total", "Records whose id was seen before", ["topic"], registry=r
        )
        self.outcomes = Counter(
            "qw_stream_record_outcomes_total",
            "Outcome of each valid record",
            ["topic", "outcome"],
            registry=r,
        )
        self.detector_seconds = Histogram(
            "qw_stream_detector_seconds",
            "Time spent in the detection stages per message",
            ["topic"],
            buckets=(1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5, 1.0),
            registry=r,
        )
        self.warnings = Counter(
            "qw_stream_warnings_total", "Warnings published", ["kind", "level", "status"], registry=r
        )
        self.lag = Gauge(
            "qw_stream_consumer_lag", "High watermark minus position", ["topic", "partition"], registry=r
        )
        self.checkpoints = Counter("qw_stream_checkpoints_total", "Partition checkpoints written", registry=r)
        self.last_checkpoint = Gauge(
            "qw_stream_last_checkpoint_timestamp_seconds",
            "Unix time of the last checkpoint saved (0: none since the worker started)",
            registry=r,
        )
        self.incomplete_weeks = Counter(
            "qw_stream_weeks_released_incomplete_total",
            "Weeks the industry and systemic stages released without a county that sent nothing",
            registry=r,
        )
        self.checkpoint_bytes = Gauge(
            "qw_stream_checkpoint_bytes",
            "Size of the last checkpoint of a partition",
            ["topic", "partition"],
            registry=r,
        )
        self.restore_seconds = Gauge(
            "qw_stream_restore_seconds",
            "Time to restore a partition on assignment",
            ["topic", "partition"],
            registry=r,
        )
