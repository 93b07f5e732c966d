"""Labels and refs: the small files under ``refs/`` that name objects, gc's roots.

``refs/labels/<name>`` holds one fingerprint; ``refs/<namespace>/ab/<key>``
holds fingerprints one a line (the results recorded for a call, newest first).
Both are replaced atomically. Readers never follow a symlink and never trust a
line that is not a full fingerprint: what cannot be read is reported as a
:class:`Damage`, which verify lists and which stops gc (a root it cannot read
might have kept something alive).

In a store a group shares (:mod:`scalems_store.store.sharing`), no member may
replace another's file, so each member writes refs of its own,
``refs/<namespace>/ab/<key>~<uid>``; a reader takes every ``<key>`` and
``<key>~...`` file of the key, its own first (then the others', newest first),
each as the member's who owns it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

from scalems_store.core import layout
from scalems_store.core.errors import InvalidLabel, ObjectNotFound, StoreError
from scalems_store.core.fsutil import NotRegularFile, read_regular, replace_atomic
from scalems_store.store.sharing import is_shared

LABELS = "labels"
LOCKS = "locks"
"""Under ``tmp/``: the lock files of ref updates (see :meth:`RefDir.update`)."""
_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
_NAMESPACE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz_")
_MAX_REF_FILE = 1 << 20


class Damage(NamedTuple):
    """A file under ``refs/`` that cannot be read as a label or ref."""

    path: str
    what: str


class Ref(NamedTuple):
    """One ref file: ``refs/<namespace>/.../<key>`` and the fingerprints it holds."""

    namespace: str
    key: str
    values: list[str]


def check_label(name: str) -> str:
    """Return *name* if it is a valid label name.

    Raises:
        InvalidLabel: empty, too long, not made of ``A-Za-z0-9._-``, or starting with '.'.
    """
    if not valid_label(name):
        raise InvalidLabel(
            f"invalid label {name!r}: use 1-200 characters from A-Z a-z 0-9 . _ - "
            "(not starting with '.', and not a full fingerprint)"
        )
    return name


def valid_namespace(name: str) -> bool:
    """Whether *name* may be a ref namespace: ``a-z`` and ``_``, not ``labels``."""
    return bool(name) and _NAMESPACE_CHARS.issuperset(name) and name != LABELS


def valid_label(name: str) -> bool:
    """Whether *name* may be a label (not a full fingerprint, which names an object)."""
    return (
        0 < len(name) <= 200
        and _LABEL_CHARS.issuperset(name)
        and not name.startswith(".")
        and not layout.is_fingerprint(name)
    )


class RefDir:
    """The ``refs/`` directory of a store."""

    def __init__(self, root: str, tmp: str, *, durable: bool) -> None:
        self.top = os.path.join(root, layout.REFS)
        self.labels_dir = os.path.join(self.top, LABELS)
        self._tmp = tmp
        self._durable = durable
        self.shared = is_shared(root)
        """Each member writes refs of its own (see the module's docstring)."""

    # -- labels ------------------------------------------------------------

    def scan_labels(self) -> tuple[dict[str, str], list[Damage]]:
        """Every readable label and the fingerprint it names, and what could not be read."""
        found: dict[str, str] = {}
        damage: list[Damage] = []
        for entry in _entries(self.labels_dir, damage):
            # a label named as a fingerprint is no longer made (it could not be named
            # apart from the object): one made before still keeps what it names
            if not valid_label(entry.name) and not layout.is_fingerprint(entry.name):
                damage.append(Damage(entry.path, "not a valid label name"))
                continue
            values = _read_values(entry, damage)
            if values is not None and len(values) != 1:
                damage.append(Damage(entry.path, "a label must hold exactly one fingerprint"))
            elif values is not None:
                found[entry.name] = values[0]
        return dict(sorted(found.items())), damage

    def labels(self) -> dict[str, str]:
        """Every readable label and the fingerprint it names (damage is left to verify)."""
        return self.scan_labels()[0]

    def label(self, name: str) -> str:
        """The fingerprint label *name* names.

        Raises:
            ObjectNotFound: there is no such label (or it cannot be read).
        """
        check_label(name)
        path = os.path.join(self.labels_dir, name)
        damage: list[Damage] = []
        try:
            entry = next(e for e in _entries(self.labels_dir, damage) if e.name == name)
        except StopIteration:
            raise ObjectNotFound(f"no label {name!r}") from None
        values = _read_values(entry, damage)
        if values is None or len(values) != 1:
            raise ObjectNotFound(f"label {name!r} is damaged ({path}): run 'scalems-store verify'")
        return values[0]

    def set_label(self, name: str, fingerprint: str) -> None:
        """Point label *name* at *fingerprint* (a full fingerprint).

        Raises:
            StoreError: the label is a directory, or another member's (shared store).
        """
        path = os.path.join(self.labels_dir, check_label(name))
        if os.path.isdir(path) and not os.path.islink(path):
            raise StoreError(f"cannot set label {name!r}: {path!r} is a directory")
        self._check_mine(path, f"label {name!r}")
        replace_atomic(path, fingerprint.encode() + b"\n", self._tmp, durable=self._durable)

    def _check_mine(self, path: str, what: str) -> None:
        """Refuse, in one line, to change another member's file in a shared store (the
        kernel would refuse it too, with a bare 'Operation not permitted')."""
        if not self.shared or os.geteuid() == 0:
            return
        try:
            owner = os.lstat(path).st_uid
        except FileNotFoundError:
            return
        if owner != os.geteuid():
            raise StoreError(
                f"{what} belongs to {_who(owner)}, another member of this shared store"
            )

    def remove_label(self, name: str) -> None:
        """Remove label *name*.

        Raises:
            ObjectNotFound: there is no such label.
        """
        path = os.path.join(self.labels_dir, check_label(name))
        self._check_mine(path, f"label {name!r}")
        try:
            os.unlink(path)
        except (FileNotFoundError, IsADirectoryError):
            raise ObjectNotFound(f"no label {name!r}") from None

    # -- refs ----------------------------------------------------------------

    def path(self, namespace: str, key: str) -> str:
        """Where ``refs/<namespace>/<key>`` lives."""
        if not valid_namespace(namespace):
            raise StoreError(f"invalid ref namespace {namespace!r}")
        return os.path.join(self.top, namespace, layout.oid_to_path(key))

    def set(self, namespace: str, key: str, values: Iterable[str]) -> None:
        """Atomically replace the fingerprints recorded under ``refs/<namespace>/<key>``
        (no values: remove the ref; an empty ref file is damage, never written)."""
        data = "".join(value + "\n" for value in values).encode()
        path = self._own(namespace, key) if self.shared else self.path(namespace, key)
        if not data:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return
        replace_atomic(path, data, self._tmp, durable=self._durable)

    def _own(self, namespace: str, key: str) -> str:
        """Where this member's ref of *key* is in a shared store: the file of the key it
        owns, else ``<key>~<uid>`` (or, if another member made that name, a new one)."""
        path = self.path(namespace, key)
        mine = [f for f, info in self._files(path) if info.st_uid == os.geteuid()]
        if mine:
            return mine[0]
        own = f"{path}~{os.geteuid()}"
        return own if not os.path.lexists(own) else f"{own}-{os.urandom(4).hex()}"

    def _files(self, path: str) -> list[tuple[str, os.stat_result]]:
        """The ref files of the key at *path* in a shared store (regular files only), this
        member's first, then the others', the newest first."""
        folder, key = os.path.split(path)
        found = []
        with contextlib.suppress(OSError), os.scandir(folder) as entries:
            for entry in entries:
                if entry.name == key or entry.name.startswith(key + "~"):
                    with contextlib.suppress(OSError):
                        info = entry.stat(follow_symlinks=False)
                        if stat.S_ISREG(info.st_mode):
                            found.append((entry.path, info))
        me = os.geteuid()
        return sorted(found, key=lambda f: (f[1].st_uid != me, -f[1].st_mtime_ns, f[0]))

    def update(
        self, namespace: str, key: str, change: Callable[[list[str]], list[str]]
    ) -> list[str]:
        """Replace the values of ``refs/<namespace>/<key>`` with what *change* makes of
        them, under a lock every updater of that ref takes (two runners or imports
        recording results of one call at once lose neither); return the new values."""
        self.path(namespace, key)  # a bad namespace is refused before any lock file is made
        # one of 256 lock files a namespace
        with locked(self._tmp, f"ref-{namespace}-{key[:2]}"):
            values = change(self.get(namespace, key, mine=True))
            self.set(namespace, key, values)
            return values

    def get(self, namespace: str, key: str, *, mine: bool = False) -> list[str]:
        """The fingerprints recorded under ``refs/<namespace>/<key>`` (empty if none);
        lines that are not fingerprints are left out (verify reports them). In a shared
        store: every member's, this member's first (with *mine*, only this member's)."""
        path = self.path(namespace, key)
        if not self.shared:
            return self._read(path, namespace, key)
        values: list[str] = []
        for file, info in self._files(path):
            if not mine or info.st_uid == os.geteuid():
                seen = set(values)
                values += [v for v in self._read(file, namespace, key) if v not in seen]
        return values

    def _read(self, path: str, namespace: str, key: str) -> list[str]:
        try:
            data = read_regular(path, _MAX_REF_FILE)
        except (FileNotFoundError, NotADirectoryError, NotRegularFile):
            return []  # none, or a FIFO, a symlink...: verify reports what is odd
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return []
            raise StoreError(f"cannot read ref {namespace}/{key}: {exc.strerror}") from exc
        if _canonical(data):  # as written: no need to look at each line
            return data.decode("ascii").split()
        return [value for value in _split(data) if layout.is_fingerprint(value)]

    def scan(self, damage: list[Damage], namespace: str | None = None) -> Iterator[Ref]:
        """Every ref (labels aside), reading nothing through a symlink; what cannot be
        read is appended to *damage*."""
        if namespace is not None:
            spaces = [namespace]
        else:
            spaces = [e.name for e in _entries(self.top, damage, dirs=True) if e.name != LABELS]
        for space in sorted(spaces):
            top = os.path.join(self.top, space)
            for fanout in _entries(top, damage, dirs=True):
                for entry in _entries(fanout.path, damage):
                    key = fanout.name + entry.name.partition("~")[0]
                    if len(fanout.name) != 2 or not layout.is_fingerprint(key):
                        damage.append(Damage(entry.path, "not named by a fingerprint"))
                        continue
                    values = _read_values(entry, damage)
                    if values is not None:
                        yield Ref(space, key, values)


@contextlib.contextmanager
def locked(tmp: str, name: str) -> Iterator[None]:
    """Hold the exclusive lock ``tmp/locks/<name>`` for the ``with`` block: what every
    read-change-replace of a small shared file (a ref, the settings file) runs under.

    Lock files are never removed (gc leaves ``tmp/locks`` alone): one removed and made
    again would let two updaters in at once. Where the file cannot be opened or the
    filesystem has no locks, the block runs unlocked, as before locks existed.
    """
    fd = _lock_file(os.path.join(_locks_dir(tmp), name))
    try:
        if fd >= 0:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        if fd >= 0:
            os.close(fd)


def _locks_dir(tmp: str) -> str:
    """``tmp/locks``, made on first use with ``tmp/``'s permissions: on a shared store,
    every user who may write ``tmp/`` may make (and lock for writing) a lock file."""
    locks = os.path.join(tmp, LOCKS)
    os.makedirs(tmp, exist_ok=True)
    try:
        os.mkdir(locks)
    except FileExistsError:
        return locks
    with contextlib.suppress(OSError):
        os.chmod(locks, stat.S_IMODE(os.stat(tmp).st_mode))
    return locks


def _lock_file(path: str) -> int:
    """Open (making it if need be) a lock file; -1 if it cannot be opened at all. Another
    user's lock file in a shared store opens read-only, which is enough to lock it on a
    local filesystem (over NFS an exclusive lock needs write access: the update then runs
    unlocked, as :func:`_locks_dir` makes rare)."""
    flags = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # a FIFO put there must not block
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | flags, 0o666)
    except PermissionError:
        try:
            fd = os.open(path, os.O_RDONLY | flags)
        except OSError:
            return -1
    except OSError:
        return -1
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return -1
    with contextlib.suppress(OSError):
        os.fchmod(fd, 0o666)  # ours: let the other users of the store lock it too
    return fd


def _entries(directory: str, damage: list[Damage], *, dirs: bool = False) -> list[os.DirEntry[str]]:
    """The files (or with *dirs*, the directories) in *directory*, sorted by name;
    anything else, and a symlinked *directory*, is damage."""
    if os.path.islink(directory):
        damage.append(Damage(directory, "a symlink where a directory of the store should be"))
        return []
    try:
        with os.scandir(directory) as scan:
            entries = sorted(scan, key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        damage.append(Damage(directory, f"cannot be read: {exc.strerror}"))
        return []
    wanted = []
    for entry in entries:
        kind = _kind(entry)
        if kind == ("dir" if dirs else "file"):
            wanted.append(entry)
        else:
            damage.append(
                Damage(entry.path, f"a {kind} where a {'directory' if dirs else 'file'} should be")
            )
    return wanted


def _kind(entry: os.DirEntry[str]) -> str:
    if entry.is_symlink():
        return "symlink"
    if entry.is_dir(follow_symlinks=False):
        return "dir"
    return "file" if entry.is_file(follow_symlinks=False) else "special file"


def _read_values(entry: os.DirEntry[str], damage: list[Damage]) -> list[str] | None:
    """The fingerprints in a ref or label file; None (and damage) if any line is not one."""
    try:
        data = read_regular(entry.path, _MAX_REF_FILE + 1)
    except FileNotFoundError:
        return None  # removed while we looked: it names nothing now
    except OSError as exc:
        damage.append(Damage(entry.path, f"cannot be read: {exc.strerror}"))
        return None
    values = _split(data)
    if len(data) > _MAX_REF_FILE or not (
        _canonical(data) or all(map(layout.is_fingerprint, values))
    ):
        damage.append(Damage(entry.path, "does not hold fingerprints, one a line"))
        return None
    if not values:  # never written so: what it held is lost (a crash, a disk full)
        damage.append(Damage(entry.path, "is empty"))
        return None
    return values


def _who(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


_HEX_LINES = b"0123456789abcdef\n"


def _canonical(data: bytes) -> bool:
    """Whether *data* is lines of 64 lowercase hex digits, each ended by a newline, as refs
    are written: checked in a few passes of C instead of a test a line."""
    lines, rest = divmod(len(data), 65)
    return not rest and data[64::65] == b"\n" * lines and not data.translate(None, _HEX_LINES)


def _split(data: bytes) -> list[str]:
    try:
        return data.decode("ascii").split()
    except UnicodeDecodeError:
        return ["?"]


# -- signatures beside results -------------------------------------------------------
#
# ``sigs/ab/<result-fp>``: text, sorted lines, each once: ``ed25519 <key hex> <signature
# hex>`` or ``imported`` (the result came by import). What a signature signs is
# :func:`message`; which signatures to believe is :mod:`scalems_store.trust`'s question.
# Anyone who can write the file can add a line; nobody can add a signature that checks
# without the private key.

SIGS = layout.SIGS
ED25519 = "ed25519"
IMPORTED = "imported"
DOMAIN = b"scalems-store result signature v1\n"
"""The first line of every signed message: a signature over it means nothing else."""
_MAX_FILE = 1 << 20
_HEX = frozenset("0123456789abcdef")


class Signature(NamedTuple):
    """One signature of a result: the signer's Ed25519 public key and the signature (hex)."""

    key: str
    signature: str

    def line(self) -> str:
        """The signature as a line of a ``sigs/`` file (without the newline)."""
        return f"{ED25519} {self.key} {self.signature}"


def message(result_fp: str, call_fp: str) -> bytes:
    """What is signed for result *result_fp* of call *call_fp* (full fingerprints)::

    scalems-store result signature v1
    result blake3:<result-fp>
    call blake3:<call-fp>
    """
    return DOMAIN + f"result blake3:{result_fp}\ncall blake3:{call_fp}\n".encode()


def is_hex(text: str, length: int) -> bool:
    """Whether *text* is *length* lowercase hex digits."""
    return len(text) == length and _HEX.issuperset(text)


class Parsed(NamedTuple):
    """What a ``sigs/`` file holds."""

    signatures: list[Signature]
    imported: bool
    bad: int
    """Lines that are neither a signature nor ``imported`` (left out; verify reports them)."""


def parse(data: bytes) -> Parsed:
    """The signatures in a ``sigs/`` file's bytes, and whether it says ``imported``."""
    found: list[Signature] = []
    imported = False
    bad = 0
    for raw in data.decode("ascii", "replace").splitlines():
        fields = raw.split()
        if fields == [IMPORTED]:
            imported = True
        elif (
            len(fields) == 3
            and fields[0] == ED25519
            and is_hex(fields[1], 64)
            and is_hex(fields[2], 128)
        ):
            found.append(Signature(fields[1], fields[2]))
        elif fields:
            bad += 1
    return Parsed(found, imported, bad)


class SigDir:
    """The ``sigs/`` directory of a store."""

    def __init__(self, root: str, tmp: str, *, durable: bool) -> None:
        self.top = os.path.join(root, SIGS)
        self._tmp = tmp
        self._durable = durable

    def path(self, result_fp: str) -> str:
        """Where the signatures of *result_fp* live."""
        return os.path.join(self.top, layout.oid_to_path(result_fp))

    def read_bytes(self, result_fp: str) -> bytes | None:
        """The file's bytes, or None when there is none (or it is not a regular file: a
        FIFO put there never blocks a reader)."""
        try:
            fd = os.open(
                self.path(result_fp), os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
            )
        except OSError:
            return None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            return os.read(fd, _MAX_FILE)
        finally:
            os.close(fd)

    def read(self, result_fp: str) -> Parsed:
        """The signatures recorded for *result_fp*, and whether it came by import."""
        data = self.read_bytes(result_fp)
        return Parsed([], False, 0) if data is None else parse(data)

    def add(self, result_fp: str, signatures: Iterable[Signature], *, imported: bool) -> None:
        """Add *signatures* (and, with *imported*, the ``imported`` line) to the file of
        *result_fp*, under the lock of its ref updates, replacing it atomically."""
        new = [s.line() for s in signatures]
        with locked(self._tmp, f"sigs-{result_fp[:2]}"):
            old, was_imported, _ = self.read(result_fp)
            lines = set(new) | {s.line() for s in old}
            if imported or was_imported:
                lines.add(IMPORTED)
            if not lines:
                return
            data = "".join(line + "\n" for line in sorted(lines)).encode()
            if data != self.read_bytes(result_fp):
                replace_atomic(self.path(result_fp), data, self._tmp, durable=self._durable)
