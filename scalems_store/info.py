"""What the store tells of one object (``info``, ``ls``)."""

from __future__ import annotations

from typing import Any, NamedTuple


class ObjectInfo(NamedTuple):
    """What the store knows of one object."""

    fingerprint: str
    kind: str
    size: int
    created: float
    labels: tuple[str, ...] = ()
    refs: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {**self._asdict(), "labels": list(self.labels), "refs": list(self.refs)}
