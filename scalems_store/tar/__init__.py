"""The tree-archive codec: deterministic tar archives of directories, and back.

Writes headers by the rules of the format (:mod:`.tarformat`), streams archives
(:mod:`.tarstream`), parses them (:mod:`.treeread`), archives a directory and
extracts one safely (:mod:`.archive`, :mod:`.extraction`, :mod:`.unpack`), and
the thin form a store keeps of an archive holding large files (:mod:`.thintar`).
No store is involved: bytes in, bytes or files out.

Imports: :mod:`scalems_store.core` (and the C speed-up). Imported by
:mod:`scalems_store.objects` and everything above it.
"""
