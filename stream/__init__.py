"""The live pipeline: the faust app, its topics, the checkpointed detection consumer, the embedded broker.

Records flow from ``qw.sampling-results`` / ``qw.patrol-reports`` through the detection stages of
:mod:`detectors.engine` to ``qw.warnings``; see ``docs/stream.md`` for the exactly-once design.
Sub-modules are imported where used (faust and the Kafka clients are heavy to import).
"""

__all__: list[str] = []
