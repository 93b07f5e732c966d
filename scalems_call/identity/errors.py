"""Errors raised by :mod:`scalems_call`.

Every error the runner raises on purpose derives from :class:`CallError`::

    CallError
    ├── InvalidCall          (ValueError)    a malformed call or result record, or the wrong kind
    ├── SerializationError   (ValueError)    a value that cannot be serialized deterministically
    ├── ImportFailed         (ImportError)   a MODULE:FUNC that cannot be imported
    ├── NoResult             (LookupError)   a call that has no recorded result
    ├── LaunchError          (RuntimeError)  the call could not be started (e.g. no MPI launcher)
    ├── CallFailed           (RuntimeError)  a task's call (or one below it) did not succeed
    └── Stopped              (RuntimeError)  the run the call belongs to was stopped (Ctrl-C)

Errors from the store (:class:`scalems_store.StoreError`) pass through unchanged.
"""

from __future__ import annotations

__all__ = [
    "CallError",
    "CallFailed",
    "ImportFailed",
    "InvalidCall",
    "LaunchError",
    "NoResult",
    "SerializationError",
    "Stopped",
]


class CallError(Exception):
    """Root of every error raised on purpose by scalems_call."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class InvalidCall(CallError, ValueError):
    """A call or result record is malformed, or an object is not of the expected kind."""


class SerializationError(CallError, ValueError):
    """A function or value cannot be serialized, or not deterministically."""


class ImportFailed(CallError, ImportError):
    """A function reference cannot be imported."""


class NoResult(CallError, LookupError):
    """The call has no recorded result."""


class LaunchError(CallError, RuntimeError):
    """The call could not be started where it was to run."""


class CallFailed(CallError, RuntimeError):
    """A task's call, or one it takes from, did not succeed (``Handle.result``)."""


class Stopped(CallError, RuntimeError):
    """The run a call belongs to was stopped (Ctrl-C or SIGTERM to its coordinator): the
    call was stopped, or never started. Nothing of it was recorded.

    Args:
        message: What happened.
        started: Whether the call had started (and was stopped) or was refused at its start.
    """

    def __init__(self, message: str, started: bool = True) -> None:
        super().__init__(message, started)

    @property
    def started(self) -> bool:
        """Whether the call had started before it was stopped."""
        return bool(self.args[1]) if len(self.args) > 1 else True
