"""Kept so that ``from scalems_call.executors import run_many``, as older docs show, works.

The engines live in :mod:`scalems_call.engines.executors`; ``scalems_call.run_many``
is the documented name.
"""

from scalems_call.engines.executors import run_many

__all__ = ["run_many"]
