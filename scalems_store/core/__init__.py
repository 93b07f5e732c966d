"""The pure core: names, places and errors, with no decision about a store.

Holds the BLAKE3 fingerprint (:mod:`.fingerprint`), where things live in a store
(:mod:`.layout`), the error classes (:mod:`.errors`), careful file-system calls
(:mod:`.fsutil`), worker threads (:mod:`.threads`) and how numbers and paths are
shown to people (:mod:`.humane`).

Imports: the standard library, ``blake3`` and ``scalems_store._speedups``; nothing
else of the project. Imported by every other folder.
"""
