"""Small crash-safe filesystem helpers shared by the store's writers."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import os
import stat
from typing import Any, TypeVar

from scalems_store.core.errors import InvalidPath, StoreNotWritable

T = TypeVar("T")


def fsync_dir(path: str) -> None:
    """Make a rename or link inside directory *path* durable."""
    fsync_path(path, os.O_DIRECTORY)


def fsync_path(path: str, flags: int = 0) -> None:
    """fsync the file (or directory) at *path*."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def new_temp(
    directory: str, prefix: str, mode: int = 0o644, *, lock: bool = True
) -> tuple[int, str]:
    """Create a unique empty file in *directory* (with *mode*), open for writing; return
    ``(fd, path)``.

    The file carries a shared ``flock`` while *fd* is open, so that gc knows a
    live writer holds it (see :func:`remove_unless_held`); not with *lock* False,
    for a file in a directory that is locked itself (a batch's).
    """
    while True:
        path = f"{directory}/{prefix}{_unique()}"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        except FileExistsError:
            continue
        except OSError as exc:
            raise not_writable(directory, exc) from exc
        if mode & _UMASK:  # the mode asked for, whatever the umask (of a shared store's
            os.fchmod(fd, mode)  # members: the group must read every object)
        if not lock or _locked(fd):
            return fd, path
        os.close(fd)  # gc removed it between its creation and our lock: make another


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()
"""The umask when this module was imported (read once: reading it means setting it)."""


def make_dirs(path: str) -> None:
    """Make the directory *path* and the missing ones above it, each with its parent's
    permission bits (a shared store's setgid, sticky and group-writable directories make
    more of their kind, whatever the umask); an existing one is left as it is."""
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for new in reversed(missing):
        try:
            os.mkdir(new)
        except FileExistsError:
            continue
        mode = stat.S_IMODE(os.stat(os.path.dirname(new)).st_mode)
        if mode != stat.S_IMODE(os.stat(new).st_mode):
            with contextlib.suppress(OSError):
                os.chmod(new, mode)


def _unique() -> str:
    """A name no other process on any host makes: a random part drawn once per process
    (again after a fork), and a counter."""
    return f"{_salt[0]}-{next(_salt[1])}"


def _new_salt() -> None:
    _salt[:] = [os.urandom(8).hex(), itertools.count()]


_salt: list[Any] = []
_new_salt()
os.register_at_fork(after_in_child=_new_salt)


class Temp:
    """A new file in ``tmp/`` (or a staging directory there), held under a shared
    ``flock`` while it is open, so that gc leaves it alone until it is published."""

    def __init__(self, directory: str, *, lock: bool = True) -> None:
        # read-only from the start (an object's mode); the descriptor may still write
        self.fd, self.path = new_temp(directory, "put-", 0o444, lock=lock)
        self.locked = lock
        """It holds a lock of its own (else its directory is locked)."""
        self.synced = False
        """Its bytes are known to be on disk."""
        self.moved = False
        """Renamed to where it belongs: its temporary name is gone already."""

    def sync(self) -> None:
        """fsync the file, through its descriptor or, once closed, its name."""
        if self.fd >= 0:
            os.fsync(self.fd)
        else:
            fsync_path(self.path)
        self.synced = True

    def unlock(self) -> None:
        """Close the file, keeping it (a locked staging directory protects it)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def discard(self) -> None:
        """Close the file and remove its name (once published, the object keeps its bytes)."""
        self.unlock()
        if not self.moved:
            unlink_quietly(self.path)


def new_locked_dir(directory: str, prefix: str) -> tuple[int, str]:
    """Create a unique directory in *directory*, held under a shared ``flock`` while the
    returned descriptor is open (gc leaves it and what it holds alone); return
    ``(fd, path)``."""
    while True:
        path = os.path.join(directory, f"{prefix}{os.urandom(8).hex()}")
        try:
            os.mkdir(path)
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            continue  # removed by gc before we could open it
        except OSError as exc:
            raise not_writable(directory, exc) from exc
        if _locked(fd):
            return fd, path
        os.close(fd)


def _locked(fd: int) -> bool:
    """Take a shared lock on *fd*; False if the file was removed before we had it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
    except OSError:
        return True  # a filesystem without locks: gc's grace period still protects it
    return os.fstat(fd).st_nlink > 0


def remove_unless_held(path: str, *, dry_run: bool = False) -> bool:
    """Remove the file or directory at *path* unless a live process holds a lock on it
    (see :func:`new_temp`); return True if it was removed (or, with *dry_run*, would be).

    The removal happens under an exclusive lock, so a writer that takes its lock
    meanwhile finds the file removed and makes another.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        fd = -1  # a symlink, a special file: nobody locks those
    try:
        if fd >= 0:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            except OSError:
                pass  # no locks on this filesystem
        if not dry_run:
            remove_tree(path)
    finally:
        if fd >= 0:
            os.close(fd)
    return True


class NotRegularFile(OSError):
    """A file of the store that is not a regular file: a FIFO, a device, a socket, a
    directory. Reading it could block for ever (a FIFO waits for a writer), so it is
    never read: callers treat it as missing or damaged, and verify reports it."""


_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC


def open_regular(path: str, *, dir_fd: int | None = None, follow: bool = False) -> int:
    """Open the file at *path* for reading without ever blocking, and check that it is a
    regular file: the one way every small file of the store (refs, labels, ``meta/``,
    ``store.json``, the settings, leases) is opened. The descriptor it returns is in
    blocking mode again (reads of a regular file never wait for a writer anyway).

    Args:
        follow: Follow a symlink at *path* (else one is refused, ``ELOOP``).

    Raises:
        NotRegularFile: it is a FIFO, a device, a socket or a directory.
        OSError: it cannot be opened (``FileNotFoundError`` when it is not there).
    """
    flags = _READ_FLAGS if follow else _READ_FLAGS | os.O_NOFOLLOW
    fd = os.open(path, flags, dir_fd=dir_fd)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(errno.EINVAL, f"not a regular file ({_file_type(mode)})", path)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: str, limit: int = -1, *, follow: bool = False) -> bytes:
    """The bytes of the regular file at *path* (at most *limit* when not -1), opened as
    :func:`open_regular` opens it.

    Raises:
        NotRegularFile, OSError: see :func:`open_regular`.
    """
    with os.fdopen(open_regular(path, follow=follow), "rb") as stream:
        return stream.read(limit)


def is_odd(path: str) -> bool:
    """Whether something that is neither a regular file nor missing is at *path* (a FIFO,
    a socket, a device, a directory, a symlink): what no store file may be."""
    try:
        return not stat.S_ISREG(os.lstat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False


def _file_type(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "a special file"


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write every byte of *data* to *fd*."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def replace_atomic(path: str, data: bytes, temp_dir: str, *, durable: bool) -> None:
    """Replace the file at *path* with *data* so readers see the old or the new, never half."""
    fd, temp = new_temp(temp_dir, "ref-")
    try:
        write_all(fd, data)
        if durable:
            os.fsync(fd)
        make_dirs(os.path.dirname(path))
        os.replace(temp, path)  # while still open (and locked: gc leaves it alone)
        if durable:
            fsync_dir(os.path.dirname(path))
    except OSError as exc:
        raise not_writable(path, exc) from exc
    finally:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


def not_writable(path: str, exc: OSError) -> StoreNotWritable:
    """Translate an ``OSError`` met while writing *path* into the store's error."""
    reason = {errno.ENOSPC: "no space left on device", errno.EROFS: "read-only file system"}.get(
        exc.errno or 0, exc.strerror or str(exc)
    )
    return StoreNotWritable(f"cannot write {path!r}: {reason}")


def unlink_quietly(path: str) -> None:
    """Remove *path* if it exists."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def remove_tree(path: str | os.PathLike[str]) -> None:
    """Remove *path* and everything under it, as ``rm -rf`` does, at any depth.

    Nothing recurses: the walk keeps, per level, only the names of the
    subdirectories still to remove, and holds at most two directories open.
    No symlink is followed: a symlink is unlinked, never entered; each
    directory is opened by its name in its parent with ``O_NOFOLLOW``; the way
    back up goes through ``..``, checked to be the directory it came from (if
    it is not, or is gone, the walk starts again from *path*). A directory
    inside the tree that cannot be listed or changed is given ``u+rwx``
    first. Entries that vanish meanwhile are no error, nor is a *path* that
    does not exist.

    Args:
        path: A file, symlink or directory.

    Raises:
        InvalidPath: *path* is ``/``, ``.`` or ``..``.
        OSError: something could not be removed (no permission, or a directory
            that filled up meanwhile).
    """
    parent, name = os.path.split(os.path.normpath(path))
    if name in ("", ".", ".."):
        raise InvalidPath(f"refusing to remove {os.fspath(path)!r}")
    try:
        parent_fd = os.open(parent or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return
    try:
        try:
            info = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(info.st_mode):
            _unlink_in(parent_fd, name)
            return
        while not _remove_walk(parent_fd, name):
            pass  # a directory vanished or moved under the walk: start again from the top
    finally:
        os.close(parent_fd)


def _remove_walk(top_fd: int, top: str) -> bool:
    """Remove the directory *top* in *top_fd* with everything under it; return False if
    the walk lost its way back up (a directory vanished or moved meanwhile)."""
    fd = _open_dir_in(top_fd, top, fix_parent=False)
    if fd is None:
        return True
    # one frame per level down to fd: (its name, its (st_dev, st_ino), subdirectories left)
    frames: list[tuple[str, tuple[int, int], list[str]]] = []
    try:
        frames.append((top, _identity(fd), _clear(fd)))
        while frames:
            name, _, subdirs = frames[-1]
            if subdirs:
                below = subdirs.pop()
                child = _open_dir_in(fd, below, fix_parent=True)
                if child is not None:
                    os.close(fd)
                    fd = child
                    frames.append((below, _identity(fd), _clear(fd)))
                continue
            frames.pop()
            up = _open_parent(fd, frames[-1][1]) if frames else os.dup(top_fd)
            if up is None:
                return False
            os.close(fd)
            fd = up
            _rmdir_in(fd, name, fix_parent=bool(frames))
        return True
    finally:
        os.close(fd)


def _open_parent(fd: int, identity: tuple[int, int]) -> int | None:
    """Open the parent of directory *fd*; None if *fd* is gone or its parent is not *identity*."""
    try:
        up = os.open("..", _OPEN_DIR, dir_fd=fd)
    except FileNotFoundError:
        return None
    if _identity(up) != identity:
        os.close(up)
        return None
    return up


def _identity(fd: int) -> tuple[int, int]:
    info = os.fstat(fd)
    return info.st_dev, info.st_ino


def _clear(fd: int) -> list[str]:
    """Unlink everything in directory *fd* but subdirectories; return their names."""
    with os.scandir(fd) as listing:
        found = [(item.name, item.is_dir(follow_symlinks=False)) for item in listing]
    subdirs = []
    for name, is_dir in found:
        if is_dir or not _unlink_in(fd, name, fix_parent=True):
            subdirs.append(name)
    return subdirs


def _unlink_in(dir_fd: int, name: str, *, fix_parent: bool = False) -> bool:
    """Unlink the non-directory *name* in *dir_fd*; return False if it is a directory."""
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        return False  # it was replaced by a directory meanwhile
    except PermissionError:
        if not (fix_parent and _make_writable(dir_fd)):
            raise
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=dir_fd)
    return True


def _rmdir_in(dir_fd: int, name: str, *, fix_parent: bool) -> None:
    try:
        os.rmdir(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    except PermissionError:
        if not (fix_parent and _make_writable(dir_fd)):
            raise
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(name, dir_fd=dir_fd)


def _open_dir_in(dir_fd: int, name: str, *, fix_parent: bool) -> int | None:
    """Open the directory *name* in *dir_fd* without following a symlink.

    Returns None when it is gone, or is no directory any more (then it is
    unlinked). A directory that cannot be opened for lack of permission is
    given ``u+rwx`` (and so is *dir_fd*, when *fix_parent*) and opened again.
    """
    for attempt in range(2):
        try:
            return os.open(name, _OPEN_DIR, dir_fd=dir_fd)
        except FileNotFoundError:
            return None
        except PermissionError:
            fixed = fix_parent and _make_writable(dir_fd)  # first: *name* may be unreachable
            if attempt or not (_grant(dir_fd, name) or fixed):
                raise
        except OSError as exc:
            if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                raise
            _unlink_in(dir_fd, name, fix_parent=fix_parent)  # now a symlink or a file
            return None
    return None


def _make_writable(fd: int) -> bool:
    """Give the owner rwx on the directory *fd*; return False if it had them already."""
    mode = stat.S_IMODE(os.fstat(fd).st_mode)
    if mode & 0o700 == 0o700:
        return False
    os.fchmod(fd, mode | 0o700)
    return True


def _grant(dir_fd: int, name: str) -> bool:
    """Give the owner rwx on the directory *name* in *dir_fd*, never through a symlink;
    return False if nothing was changed."""
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if not stat.S_ISDIR(info.st_mode) or info.st_mode & 0o700 == 0o700:
            return False
        os.chmod(name, stat.S_IMODE(info.st_mode) | 0o700, dir_fd=dir_fd, follow_symlinks=False)
    except (FileNotFoundError, NotImplementedError, ValueError):
        return False  # gone, or replaced by a symlink (which chmod will not follow)
    return True


def check_parent(dest: str) -> str:
    """Return the directory *dest* would be in, refusing one that does not exist (as
    ``cp`` does; making the missing directories would hide a typo in the path).

    Raises:
        InvalidPath: the directory *dest* would be in does not exist.
    """
    parent = os.path.dirname(os.path.abspath(dest))
    if not os.path.isdir(parent):
        raise InvalidPath(f"cannot write {dest!r}: no directory {parent!r}")
    return parent
