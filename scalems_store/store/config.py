"""The store's settings file, ``<root>/config``: one place that people read and edit.

Written as git writes ``.git/config`` (INI, read and written with :mod:`configparser`)::

    [core]
    jobs = 4
    default-remote = cluster

    [remote "cluster"]
    url = ssh://login.example.org/scratch/me/store

A section is ``name`` or ``name "subname"``; keys are lowercase. Every change is
read, changed and replaced atomically under a lock (:func:`.refs.locked`),
so two writers at once lose neither change. A file that cannot be parsed is one
:class:`BadSetting` line naming it. The file is optional: a store without one has
no settings.
"""

from __future__ import annotations

import configparser
import io
import os
import re
from collections.abc import Iterator

from scalems_store.core import fsutil, layout
from scalems_store.core.errors import BadSetting
from scalems_store.core.layout import TMP
from scalems_store.store import refs

CONFIG = layout.CONFIG
_NAME = re.compile(r"^[a-z][a-z0-9-]*$")


def section_name(name: str, sub: str | None = None) -> str:
    """The header of a section: ``core`` or ``remote "origin"``.

    Raises:
        BadSetting: *name* or *sub* cannot be written as a section header.
    """
    header = name if sub is None else f'{name} "{sub}"'
    if _split(header) is None:
        raise BadSetting(f"not a settings section: {header!r}")
    return header


def _split(header: str) -> tuple[str, str | None] | None:
    """``(name, sub)`` of a section header, or None if it is not one we write."""
    name, space, rest = header.partition(" ")
    if not _NAME.match(name):
        return None
    if not space:
        return name, None
    sub = rest[1:-1]
    quoted = len(rest) > 2 and rest[0] == rest[-1] == '"'
    # printable, no quote inside, no white space at either end: what reads back as written
    if not quoted or '"' in sub or sub != sub.strip() or not sub.isprintable():
        return None
    return name, sub


class Config:
    """The settings of one store, as read from its ``config`` file."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.path = os.path.join(root, CONFIG)
        self._parser = _parse(self.path)

    def get(self, section: str, key: str, default: str | None = None) -> str | None:
        """The value of *key* in *section* (a full header, see :func:`section_name`)."""
        if not self._parser.has_section(section):
            return default
        return self._parser.get(section, key, fallback=default)

    def sections(self, name: str) -> Iterator[tuple[str, dict[str, str]]]:
        """Each ``name "sub"`` section, in file order: its *sub* and its keys."""
        for header in self._parser.sections():
            split = _split(header)
            if split is not None and split[0] == name and split[1] is not None:
                yield split[1], dict(self._parser.items(header))

    def update(self, section: str, values: dict[str, str | None]) -> None:
        """Set (or, for ``None``, remove) *values* in *section*, and write the file.

        The file is read again under the lock first, so that a change made by
        someone else meanwhile is kept. Raises :class:`BadSetting` for a bad key.
        """
        for key in values:
            if not _NAME.match(key):
                raise BadSetting(f"not a settings key: {key!r}")
        with refs.locked(os.path.join(self.root, TMP), CONFIG):
            parser = _parse(self.path)
            if not parser.has_section(section):
                parser.add_section(section)
            for key, value in values.items():
                if value is None:
                    parser.remove_option(section, key)
                else:
                    parser.set(section, key, value)
            if not parser.items(section):
                parser.remove_section(section)
            _write(self.root, self.path, parser)
            self._parser = parser

    def remove_section(self, section: str) -> bool:
        """Remove *section*; return whether it was there."""
        with refs.locked(os.path.join(self.root, TMP), CONFIG):
            parser = _parse(self.path)
            removed = parser.remove_section(section)
            if removed:
                _write(self.root, self.path, parser)
            self._parser = parser
            return removed


def _parse(path: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, default_section="\0none")
    try:
        data = _read(path)
    except FileNotFoundError:
        return parser
    try:
        parser.read_string(data.decode(), source=path)
    except (configparser.Error, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0]
        raise BadSetting(f"cannot read the settings file {path}: {first}") from exc
    for header in parser.sections():
        if _split(header) is None:
            raise BadSetting(f"cannot read the settings file {path}: bad section [{header}]")
    return parser


def _read(path: str) -> bytes:
    """The bytes of *path*, opened without blocking on a FIFO; a non-file is an error."""
    try:
        return fsutil.read_regular(path, follow=True)
    except fsutil.NotRegularFile:
        raise BadSetting(f"the settings file {path} is not a regular file") from None


def _write(root: str, path: str, parser: configparser.ConfigParser) -> None:
    out = io.StringIO()
    parser.write(out)
    fsutil.replace_atomic(path, out.getvalue().encode(), os.path.join(root, TMP), durable=True)
