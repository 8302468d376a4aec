"""Detection only: pure Python + numpy/scikit-learn, no I/O, deterministic given the same events.

Each detector is a small class (``score`` / ``learn`` / ``step``, see :mod:`detectors.base`); the
:class:`~detectors.engine.DetectionEngine` wires them along the stream's partitioning.
"""

from .base import CellWeek, Detector, ItemCell, ItemWeek, Score, SeriesWeek, make_warning
from .engine import (
    DetectionEngine,
    EngineConfig,
    IndustryStage,
    Labels,
    Outcome,
    PatrolStage,
    RegionStage,
    SystemicStage,
)
from .enterprise_outlier import EnterpriseOutlierDetector
from .enterprise_repeat import EnterpriseRepeatDetector
from .patrol import PatrolDetector
from .rate import RateChangeDetector
from .systemic import SystemicItemDetector
from .target import PolicyTargetDetector

__all__ = [
    "CellWeek",
    "DetectionEngine",
    "Detector",
    "EngineConfig",
    "EnterpriseOutlierDetector",
    "EnterpriseRepeatDetector",
    "IndustryStage",
    "ItemCell",
    "ItemWeek",
    "Labels",
    "Outcome",
    "PatrolDetector",
    "PatrolStage",
    "PolicyTargetDetector",
    "RateChangeDetector",
    "RegionStage",
    "Score",
    "SeriesWeek",
    "SystemicItemDetector",
    "SystemicStage",
    "make_warning",
]
