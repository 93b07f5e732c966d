"""The remotes a store knows: ``[remote "NAME"]`` sections of its settings file.

::

    [core]
    default-remote = cluster

    [remote "cluster"]
    url = ssh://login.example.org/scratch/me/store
    command = /opt/venv/bin/scalems-store

A URL is a path (or ``file://`` URL) to another store, ``ssh://[user@]host[:port]/path``,
``s3://bucket/prefix`` or ``http(s)://...`` (read-only). A relative path is made
absolute when the remote is added.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from typing import NamedTuple

from scalems_store.core.errors import BadSetting
from scalems_store.store.config import Config, section_name

SCHEMES = ("file", "ssh", "s3", "http", "https")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_CORE, _DEFAULT = "core", "default-remote"


class Remote(NamedTuple):
    """A named remote, as its section says."""

    name: str
    url: str
    endpoint_url: str | None = None
    """S3 only: the endpoint of an S3-compatible server (MinIO, Ceph, moto)."""
    command: str | None = None
    """SSH only: how to run ``scalems-store`` on the far side (default: ``scalems-store``)."""

    @property
    def scheme(self) -> str:
        """``file``, ``ssh``, ``s3``, ``http`` or ``https``."""
        return urllib.parse.urlsplit(self.url).scheme or "file"


def check_name(name: str) -> str:
    """Return *name* if it may name a remote.

    Raises:
        BadSetting: it may not (letters, digits, ``._-``, at most 64, not starting with ``.-_``).
    """
    if not _NAME.match(name):
        raise BadSetting(
            f"not a remote name: {name!r} (letters, digits and ._-, starting with a letter "
            "or digit)"
        )
    return name


def normalize_url(url: str) -> str:
    """*url* as it is kept: a path (or ``file://``) becomes an absolute path.

    Raises:
        BadSetting: an unknown scheme, or a URL without its host, bucket or path.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "" or (len(parts.scheme) == 1 and os.name == "nt"):
        if not url:
            raise BadSetting("a remote URL cannot be empty")
        return os.path.abspath(os.path.expanduser(url))
    if parts.scheme not in SCHEMES:
        known = ", ".join(f"{s}://" for s in SCHEMES)
        raise BadSetting(f"unknown remote URL scheme {parts.scheme!r} in {url!r} (known: {known})")
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path:
            raise BadSetting(f"a file:// URL names a local path: {url!r}")
        return os.path.abspath(urllib.parse.unquote(parts.path))
    if not parts.netloc:
        raise BadSetting(f"remote URL {url!r} names no host (or bucket)")
    if parts.scheme == "ssh" and parts.path in ("", "/"):
        raise BadSetting(f"remote URL {url!r} names no path of a store on that host")
    return url


def remotes(root: str) -> list[Remote]:
    """Every remote of the store at *root*, in the order of its settings file."""
    return [
        Remote(name, keys.get("url", ""), keys.get("endpoint-url"), keys.get("command"))
        for name, keys in Config(root).sections("remote")
    ]


def default_name(root: str) -> str | None:
    """The name of the default remote, if one is set."""
    return Config(root).get(_CORE, _DEFAULT)


def add(
    root: str,
    name: str,
    url: str,
    *,
    default: bool = False,
    endpoint_url: str | None = None,
    command: str | None = None,
) -> Remote:
    """Add remote *name* at *url* (the first one added becomes the default).

    Raises:
        BadSetting: a bad name or URL, or a remote of that name exists.
    """
    check_name(name)
    url = normalize_url(url)
    config = Config(root)
    if any(remote.name == name for remote in remotes(root)):
        raise BadSetting(f"remote {name!r} exists already (remove it first)")
    config.update(
        section_name("remote", name),
        {"url": url, "endpoint-url": endpoint_url, "command": command},
    )
    if default or default_name(root) is None:
        config.update(_CORE, {_DEFAULT: name})
    return Remote(name, url, endpoint_url, command)


def remove(root: str, name: str) -> None:
    """Remove remote *name* (and make no remote the default if it was).

    Raises:
        BadSetting: there is no such remote.
    """
    config = Config(root)
    if not config.remove_section(section_name("remote", check_name(name))):
        raise BadSetting(f"no remote named {name!r} (see 'scalems-store remote list')")
    if default_name(root) == name:
        config.update(_CORE, {_DEFAULT: None})


def find(root: str, name: str | None) -> Remote:
    """The remote called *name*, or the default remote when *name* is None.

    Raises:
        BadSetting: there is no such remote, or no default.
    """
    if name is None:
        name = default_name(root)
        if name is None:
            raise BadSetting(
                "no remote given and no default remote (scalems-store remote add NAME URL)"
            )
    for remote in remotes(root):
        if remote.name == name:
            if not remote.url:
                raise BadSetting(f"remote {name!r} has no url in {Config(root).path}")
            return remote
    raise BadSetting(f"no remote named {name!r} (see 'scalems-store remote list')")
