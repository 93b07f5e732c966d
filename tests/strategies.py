"""Hypothesis strategies shared by the tests."""

from __future__ import annotations

import io
import tarfile

from hypothesis import strategies as st

from scalems_store.tar import archive
from tests import tarcraft

# names that are valid on POSIX filesystems and exercise ustar limits and UTF-8
_name_chars = st.characters(
    codec="utf-8", exclude_characters="/\x00", exclude_categories=("Cs", "Cc")
)
names = st.text(_name_chars, min_size=1, max_size=40).filter(lambda n: n not in (".", ".."))
long_names = st.text(st.sampled_from("abcdefgh"), min_size=90, max_size=160)


@st.composite
def trees(draw: st.DrawFn, max_depth: int = 3) -> dict[str, object]:
    """A directory tree as nested dicts: name -> bytes (file), ('x', bytes) (executable) or dict."""

    def level(depth: int) -> st.SearchStrategy[dict[str, object]]:
        leaf = st.one_of(st.binary(max_size=600), st.tuples(st.just("x"), st.binary(max_size=64)))
        child = (
            leaf if depth >= max_depth else st.one_of(leaf, st.deferred(lambda: level(depth + 1)))
        )
        return st.dictionaries(st.one_of(names, long_names), child, max_size=5)

    return draw(level(0))


# -- tar archives, well-formed and hostile (the parsers' fuzz tests) -------------------

HOSTILE_DECIMALS = [
    b"-1536", b"-1", b"0", b"99999999999999999999", b"9" * 40, b"abc", b"", b" 12", b"+12",
    b"1_0", "\u0661\u0662".encode(), b"0x10", b"1e3", b"12\0", b"512", b"1024",
]  # fmt: skip
"""Values of a pax ``size`` record (or a record length) that a parser must survive."""

HOSTILE_FIELDS = [
    b"-0003000\0", b"\xff" * 12, b"\xff" * 11 + b"\xfa", b"\x80" + b"\xff" * 11,
    b"\x80" + (512).to_bytes(11, "big"), b"\x80" + bytes(11), b"77777777777\0", bytes(12),
    b" " * 11 + b"\0", b"00000001000\0", b"1x\0", b"0o17\0", b"+1000\0", b"1_000\0", b"9" * 12,
]  # fmt: skip
"""Raw values of a numeric ustar field (size, mode, checksum) that a parser must survive."""

PAX_KEYS = [
    b"path", b"linkpath", b"size", b"mtime", b"uid", b"uname", b"hdrcharset",
    b"GNU.sparse.major", b"GNU.sparse.map", b"GNU.sparse.realsize", b"SCHILY.xattr.x", b"",
]  # fmt: skip
PAX_VALUES = [
    *HOSTILE_DECIMALS, b"a\0b", b"/etc/passwd", b"../../x", b"a/../../b", b"\xff\xfe", b"d/",
    b"x" * 200, b".", b"a//b/./c", b"=", b"\n",
]  # fmt: skip
HEADER_FIELDS = {
    "name": (0, 100), "mode": (100, 108), "size": (124, 136), "checksum": (148, 156),
    "type": (156, 157), "link": (157, 257), "magic": (257, 263), "prefix": (345, 500),
}  # fmt: skip
TYPEFLAGS = [b"0", b"\0", b"1", b"2", b"3", b"5", b"6", b"7", b"g", b"x", b"K", b"L", b"S", b"V"]

_link_targets = st.sampled_from(["a", "b/c", "../a", "../../a", "/etc", "a/../b", "x" * 150, ""])
_tar_paths = st.lists(st.one_of(st.sampled_from("abc"), names, long_names), min_size=1, max_size=3)


@st.composite
def tree_archives(draw: st.DrawFn) -> bytes:
    """A tree archive as the store writes it (entries not always sensible: a parser refuses
    what is unsafe), of files, directories and symlinks."""
    blocks = []
    for parts in draw(st.lists(_tar_paths, min_size=1, max_size=6)):
        path = "/".join(parts)
        kind = draw(st.sampled_from(["file", "file", "exec", "dir", "link"]))
        if kind == "dir":
            blocks.append(archive.entry_header(path + "/", 0o755, 0, archive.DIR))
        elif kind == "link":
            target = draw(_link_targets)
            blocks.append(archive.entry_header(path, 0o644, 0, archive.SYMLINK, target))
        else:
            data = draw(st.binary(max_size=1200))
            mode = 0o755 if kind == "exec" else 0o644
            blocks.append(archive.entry_header(path, mode, len(data), archive.FILE))
            blocks.append(tarcraft.padded(data))
    return tarcraft.finish(b"".join(blocks))


@st.composite
def bundles(draw: st.DrawFn) -> bytes:
    """A bundle-like tar stream as tarfile writes it (``w|``, PAX_FORMAT, mode 0o444)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for parts in draw(st.lists(_tar_paths, min_size=1, max_size=5)):
            data = draw(st.binary(max_size=1200))
            info = tarfile.TarInfo("/".join(parts))
            info.size, info.mode = len(data), 0o444
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


_MAGIC = b"ustar\0"


def _with_checksum(block: bytes) -> bytes:
    """*block* (a header) with its checksum field recomputed."""
    total = sum(block[:148]) + 8 * 0x20 + sum(block[156:512])
    return block[:148] + b"%06o\0 " % total + block[156:]


@st.composite
def pax_headers(draw: st.DrawFn) -> bytes:
    """A pax ``x`` header (sometimes a ``g``) with records of hostile keys and values, and
    sometimes a hostile record length."""
    records = []
    for _ in range(draw(st.integers(1, 3))):
        key, value = draw(st.sampled_from(PAX_KEYS)), draw(st.sampled_from(PAX_VALUES))
        good = tarcraft.record(key, value)
        length = draw(st.one_of(st.none(), st.sampled_from(HOSTILE_DECIMALS)))
        records.append(good if length is None else length + good[good.index(b" ") :])
    payload = b"".join(records)
    declared = draw(st.one_of(st.none(), st.sampled_from(HOSTILE_FIELDS)))
    typeflag = draw(st.sampled_from([b"x", b"x", b"x", b"g"]))
    return tarcraft.pax(payload, size=declared, typeflag=typeflag)


@st.composite
def mutated(draw: st.DrawFn, archives: st.SearchStrategy[bytes]) -> bytes:
    """An archive drawn from *archives*, then changed a few times: a byte flipped, a header
    field overwritten with a hostile value, a hostile pax header inserted before a block,
    or the end cut off; a changed header's checksum is often recomputed, so that the
    parser reads on."""
    buf = bytearray(draw(archives))
    for _ in range(draw(st.integers(1, 3))):
        headers = [
            at
            for at in range(0, len(buf) - 511, 512)
            if buf[at + 257 : at + 263] == _MAGIC and buf[at + 156] not in b"xg"
        ]
        on_header: bool = draw(st.booleans())
        if on_header and headers:
            at = draw(st.sampled_from(headers))  # a header: the parser reads it
        else:
            at = 512 * draw(st.integers(0, max(1, len(buf) // 512) - 1))
        change = draw(st.sampled_from(["flip", "field", "field", "pax", "pax", "pax", "cut"]))
        if change == "cut":
            del buf[draw(st.integers(0, len(buf))) :]
            continue
        if change == "pax":
            buf[at:at] = draw(pax_headers())
            continue
        if len(buf) < at + 512:
            continue
        if change == "flip":
            buf[at + draw(st.integers(0, 511))] ^= draw(st.integers(1, 255))
        else:
            start, end = HEADER_FIELDS[draw(st.sampled_from(sorted(HEADER_FIELDS)))]
            value = draw(
                st.one_of(
                    st.sampled_from(HOSTILE_FIELDS),
                    st.sampled_from(TYPEFLAGS),
                    st.binary(min_size=1, max_size=end - start),
                )
            )
            buf[start + at : end + at] = value[: end - start].ljust(end - start, b"\0")
        if draw(st.integers(0, 3)):
            buf[at : at + 512] = _with_checksum(bytes(buf[at : at + 512]))
    return bytes(buf)


@st.composite
def header_soup(draw: st.DrawFn) -> bytes:
    """Blocks that look like tar: headers of random fields with right checksums and POSIX
    magic, hostile pax headers, random data and zero blocks, in any order."""
    parts = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["header", "header", "pax", "data", "zero"]))
        if kind == "pax":
            parts.append(draw(pax_headers()))
        elif kind == "data":
            parts.append(tarcraft.padded(draw(st.binary(max_size=1100))))
        elif kind == "zero":
            parts.append(bytes(512))
        else:
            size = draw(st.one_of(st.integers(0, 1100), st.sampled_from(HOSTILE_FIELDS)))
            parts.append(
                tarcraft.header(
                    draw(st.binary(max_size=100)),
                    size=size,
                    typeflag=draw(st.sampled_from(TYPEFLAGS)),
                    mode=draw(st.sampled_from([b"0000644\0", b"0000755\0", *HOSTILE_FIELDS])),
                    link=draw(st.one_of(st.just(b""), st.binary(max_size=100))),
                    prefix=draw(st.one_of(st.just(b""), st.binary(max_size=155))),
                )
            )
    return b"".join(parts)
