"""References to other calls' outputs: what makes calls a graph.

``output(call)`` stands for that call's return value; ``output(call, "rel/path")``
for a file or directory of its output directory (delivered as a path, a
``str``, to a local copy in the work directory). They may appear anywhere in a
call's arguments, and as values of a skeleton mapping (``{"dest": output(...)}``,
where ``output(call)`` is the whole output directory).

At pack time each reference is resolved to a full call fingerprint (a prefix or
a label is accepted; anything but a call is refused), so the call record names
its upstream calls, and its fingerprint is known before anything runs. A call
can only name calls that exist already, so a graph can have no cycle.

In the record, the arguments' pickles hold each reference as a pickle
*persistent id* ``("scalems-output", fingerprint, path)``, and ``inputs``
lists every reference in JSON: ``{"call": "blake3:<hex>", "path": ..., "to":
null}`` for an argument, ``"to": "dest"`` for a skeleton entry. This module does
not import dill.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scalems_call.identity.errors import InvalidCall
from scalems_store.core import layout

if TYPE_CHECKING:
    from scalems_store import FileStore

PERSISTENT_TAG = "scalems-output"
FILE_TAG = "scalems-file"
"""The persistent id of a file passed by content: ``("scalems-file", blob fp, name)``."""
WHOLE = "."
"""The path of a whole output directory."""
INPUTS_DIR = ".scalems-inputs"
"""Where files of upstream calls taken as arguments are put in a work directory (they are
not part of the call's own output directory)."""


@dataclass(frozen=True)
class Output:
    """A reference to an output of another call (see :func:`output`)."""

    call: str
    """The call: a fingerprint (full once packed), a unique prefix, or a label."""
    path: str | None = None
    """None for the return value, else a path in the call's output directory."""


@dataclass(frozen=True)
class InputFile:
    """A file passed by its content (see :func:`input_file`)."""

    path: str
    """Where it is read at pack time."""
    blob: str | None = None
    """Its content's fingerprint, once stored."""

    @property
    def name(self) -> str:
        """The name the call sees (the file's base name)."""
        return self.path.replace("\\", "/").rstrip("/").rpartition("/")[2] or "file"


def input_file(path: str | os.PathLike[str]) -> InputFile:
    """Pass the file at *path* by its content: its bytes become part of the call's identity,
    are stored with the call, and are delivered into the work directory; the function
    receives the path (a ``str``, relative to its work directory) of that copy.

    Raises:
        InvalidCall: *path* is not a regular file.
    """
    text = os.fspath(path)
    if not os.path.isfile(text):
        raise InvalidCall(f"input_file({text!r}): no such file")
    return InputFile(text)


def output(call: Any, path: str | None = None) -> Output:
    """Stand for an output of *call* in another call's arguments or skeleton.

    Args:
        call: A call fingerprint, a unique prefix, a label, or a task handle.
        path: A file or directory of the call's output directory (relative, with
            ``/``); None for the call's return value (in a skeleton: its whole
            output directory).

    Raises:
        InvalidCall: *path* is absolute or climbs out with ``..``.
    """
    name = getattr(call, "fingerprint", call)
    if not isinstance(name, str):
        raise InvalidCall(f"output() takes a call fingerprint, prefix or label, not {call!r}")
    return Output(name, None if path is None else clean_path(path))


def clean_path(path: str) -> str:
    """*path* as a clean relative path in an output directory (``.`` for the whole).

    Raises:
        InvalidCall: it is absolute, empty, or climbs out with ``..``.
    """
    if not isinstance(path, str) or not path or path.startswith("/") or "\0" in path:
        raise InvalidCall(f"output path {path!r} must be a relative path in the output directory")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise InvalidCall(f"output path {path!r} must not contain '..'")
    return "/".join(parts) or WHOLE


class Resolver:
    """Resolves references against a store at pack time, and collects them.

    Called by the pickler for every :class:`Output` in the arguments; also
    resolves skeleton mounts.
    """

    def __init__(self, store: FileStore) -> None:
        self.store = store
        self.inputs: set[tuple[str, str | None, str | None]] = set()
        """``(call, path, to)`` of every reference."""
        self.files: set[tuple[str, str]] = set()
        """``(blob, name)`` of every file passed by content."""

    def call(self, name: str) -> str:
        """The full fingerprint of the call *name* names.

        Raises:
            InvalidCall: it names an object that is not a call.
        """
        from scalems_store.core.errors import StoreError

        try:
            fp = self.store.resolve(name)
        except StoreError as exc:
            raise InvalidCall(f"output({name!r}) names no call: {exc}") from None
        kind = self.store.kind(fp)
        if kind != "call":
            raise InvalidCall(f"output({name!r}) names a {kind}, not a call")
        return fp

    def argument(self, ref: Output | InputFile) -> tuple[str, str, str | None]:
        """The persistent id of a reference in the arguments, noting it as an input (a
        file passed by content is stored now)."""
        if isinstance(ref, InputFile):
            blob = ref.blob or str(self.store.add_file(ref.path))
            self.files.add((blob, ref.name))
            return (FILE_TAG, blob, ref.name)
        fp = self.call(ref.call)
        self.inputs.add((fp, ref.path, None))
        return (PERSISTENT_TAG, fp, ref.path)

    def mount(self, dest: str, ref: Output) -> None:
        """Note a skeleton entry: *ref* delivered at *dest* in the work directory."""
        where = clean_path(dest)
        if where == WHOLE:
            raise InvalidCall("a skeleton entry needs a destination inside the work directory")
        self.inputs.add((self.call(ref.call), ref.path or WHOLE, where))

    def record_files(self) -> list[dict[str, Any]]:
        """The ``files`` field of the call record, in canonical order."""
        return [{"file": layout.to_uri(blob), "name": name} for blob, name in sorted(self.files)]

    def record(self) -> list[dict[str, Any]]:
        """The ``inputs`` field of the call record, in canonical order."""
        return [
            {"call": layout.to_uri(fp), "path": path, "to": to}
            for fp, path, to in sorted(self.inputs, key=lambda i: (i[0], i[1] or "", i[2] or ""))
        ]


def persistent_id(resolve: Callable[[Any], Any] | None) -> Callable[[Any], Any]:
    """The pickler's ``persistent_id`` hook: references become persistent ids; *resolve*
    (a :meth:`Resolver.argument`) makes them full; without one they stay as given."""

    def pid(obj: Any) -> Any:
        if type(obj) is InputFile:
            if resolve is None:
                return (FILE_TAG, obj.blob, obj.name)
            return resolve(obj)
        if type(obj) is not Output and not hasattr(obj, "__scalems_output__"):
            return None
        ref = obj if type(obj) is Output else obj.__scalems_output__()
        if resolve is None:
            return (PERSISTENT_TAG, ref.call, ref.path)
        return resolve(ref)

    return pid


def persistent_load(deliver: Callable[[str, str | None], Any] | None) -> Callable[[Any], Any]:
    """The unpickler's ``persistent_load`` hook: a reference becomes what *deliver* gives
    for it (the upstream's value or a path), or an :class:`Output` again without one."""

    def load(pid: Any) -> Any:
        if not isinstance(pid, tuple) or len(pid) != 3 or pid[0] not in (PERSISTENT_TAG, FILE_TAG):
            raise InvalidCall(f"unknown persistent id in a call record: {pid!r}")
        tag, call, path = pid
        if tag == FILE_TAG:  # a file passed by content: delivered under its blob's name
            return InputFile(path, call) if deliver is None else deliver(f"file:{call}", path)
        return Output(call, path) if deliver is None else deliver(call, path)

    return load


def from_json(value: Any) -> Any:
    """Turn the references of command-line JSON into :class:`Output`: an object whose only
    keys are ``$output`` (and ``path``) is a reference; ``{"$file": "PATH"}`` is
    :func:`input_file` of PATH; ``{"$literal": x}`` is *x* as it
    is (the way to pass a dict that has such keys)."""
    if isinstance(value, list):
        return [from_json(item) for item in value]
    if not isinstance(value, dict):
        return value
    keys = set(value)
    if keys == {"$literal"}:
        return value["$literal"]
    if "$output" in keys and keys <= {"$output", "path"}:
        return output(value["$output"], value.get("path"))
    if keys == {"$file"} and isinstance(value["$file"], str):
        return input_file(value["$file"])
    return {key: from_json(item) for key, item in value.items()}
