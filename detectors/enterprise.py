"""The enterprise detectors under the module path they had before each got a module of its own.

* :class:`EnterpriseRepeatDetector`, an enterprise's quality-credit record:
  :mod:`detectors.enterprise_repeat`;
* :class:`EnterpriseOutlierDetector`, unusual results in passing batches:
  :mod:`detectors.enterprise_outlier` (its isolation forest: :mod:`detectors.forest`).

A checkpoint pickled while they lived here names its classes by this path
(``detectors.enterprise.EnterpriseRepeatDetector``, ``._RepeatRules``, ``.EnterpriseOutlierDetector``,
``._Forest``); the names below keep such a checkpoint loading. New code imports from the modules above.
"""

from __future__ import annotations

from . import enterprise_repeat as _repeat
from . import forest as _forest
from .enterprise_outlier import EnterpriseOutlierDetector
from .enterprise_repeat import DEFAULT_SEVERE_ITEMS, EnterpriseRepeatDetector, binomial_tail

__all__ = [
    "DEFAULT_SEVERE_ITEMS",
    "EnterpriseOutlierDetector",
    "EnterpriseRepeatDetector",
    "binomial_tail",
]

#: held inside the detectors' pickles under these names
_RepeatRules = _repeat._RepeatRules
_Forest = _forest.Forest
