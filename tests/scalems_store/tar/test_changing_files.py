"""A file written while it is being added is refused, on every reader.

The writes are made deterministic with a small ``LD_PRELOAD`` library: every ``read()`` of
a file whose name starts with ``changing`` gives it a new mtime, as a writer working on it
at that moment would. It intercepts the C speed-up's reads and Python's alike.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scalems_store import FileStore, hash_bytes
from scalems_store.tar import archive

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static long moves;

ssize_t read(int fd, void *buf, size_t n)
{
    static ssize_t (*real_read)(int, void *, size_t);
    if (real_read == NULL) {
        real_read = (ssize_t (*)(int, void *, size_t))dlsym(RTLD_NEXT, "read");
    }
    ssize_t got = real_read(fd, buf, n);
    char link[64], target[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t len = readlink(link, target, sizeof target - 1);
    if (got > 0 && len > 0) {
        target[len] = '\0';
        const char *name = strrchr(target, '/');
        if (name != NULL && strncmp(name + 1, "changing", 8) == 0) {
            struct timespec times[2] = {{0, UTIME_OMIT}, {1000000000 + ++moves, 0}};
            futimens(fd, times);
        }
    }
    return got;
}
"""


# scalems-store, with the pure-Python reader when {reader} is "python"
CLI = (
    "import sys\n"
    "from scalems_store.tar import archive\n"
    "if '{reader}' == 'python':\n"
    "    archive._speedups = None\n"
    "from scalems_store.cli.console import main\n"
    "main()\n"
)


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        if os.environ.get("SCALEMS_CI"):
            pytest.fail("no C compiler (cc) to build the LD_PRELOAD library")
        pytest.skip("no C compiler (cc) to build the LD_PRELOAD library")
    build = tmp_path_factory.mktemp("shim")
    (build / "shim.c").write_text(SHIM)
    library = build / "shim.so"
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-O1", "-o", str(library), str(build / "shim.c"), "-ldl"],
        check=True,
    )
    return library


@pytest.mark.skipif(sys.platform != "linux", reason="LD_PRELOAD and /proc/self/fd: Linux")
@pytest.mark.parametrize("reader", ["c", "python"])
def test_a_file_written_while_it_is_added_is_refused(
    shim: Path, tmp_path: Path, reader: str
) -> None:
    """``add --files-from`` of small files: the one written while it is read makes the add
    fail with one line naming it (never a torn copy stored under its own hash); the files
    before it are stored whole."""
    if reader == "c" and archive._speedups is None:
        pytest.skip("the C speed-up was not built")
    src = tmp_path / "src"
    src.mkdir()
    paths = []
    for i in range(6):
        (src / f"f{i}").write_bytes(b"steady %d" % i)
        paths.append(src / f"f{i}")
    (src / "changing-log").write_bytes(b"being written")
    paths.append(src / "changing-log")
    listing = tmp_path / "list"
    listing.write_text("".join(f"{p}\n" for p in paths))
    store = tmp_path / "store"
    command = ["--store", str(store), "add", "--files-from", str(listing)]
    done = subprocess.run(
        [sys.executable, "-c", CLI.format(reader=reader), *command],
        capture_output=True,
        text=True,
        env={**os.environ, "LD_PRELOAD": str(shim)},
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"InvalidPath: {str(src / 'changing-log')!r} changed while being added; try again"
    )
    with FileStore(store) as opened:
        assert sorted(opened.iter_fingerprints()) == sorted(
            hash_bytes(b"steady %d" % i) for i in range(6)
        )


# archive a tree in a fresh process and print its peak memory (KiB): VmHWM, the peak of
# this process's own memory (getrusage's maxrss also counts the parent it was forked from)
PEAK = (
    "import sys\n"
    "from scalems_store.tar import archive\n"
    "for _ in archive.iter_tree(sys.argv[1]):\n"
    "    pass\n"
    "with open('/proc/self/status') as status:\n"
    "    print(next(line.split()[1] for line in status if line.startswith('VmHWM:')))\n"
)


def test_archiving_many_mid_size_files_holds_few_in_memory(tmp_path: Path) -> None:
    """A tree of a hundred 1 MiB frames is read one frame at a time, not a batch of them
    (the C reader took files up to 8 MiB, 256 a batch, two batches ahead: gigabytes for
    a directory of MD frames)."""
    if archive._speedups is None:
        pytest.skip("the C speed-up was not built")
    frames = tmp_path / "frames"
    frames.mkdir()
    block = os.urandom(1 << 20)
    for i in range(100):
        (frames / f"frame{i:03d}.xtc").write_bytes(block[i:] + block[:i])
    done = subprocess.run(
        [sys.executable, "-c", PEAK, str(frames)], capture_output=True, text=True, check=True
    )
    assert int(done.stdout) < 80 * 1024, f"peak {int(done.stdout) // 1024} MiB"
