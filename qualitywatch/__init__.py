"""The front door: the ``qualitywatch`` command and the all-in-one runner.

It imports ``schemas``, ``detectors``, ``stream`` and ``alerts``; none of them imports it.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
