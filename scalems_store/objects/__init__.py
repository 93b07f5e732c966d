"""Objects: bytes becoming hash-named files, and read back checked.

What an object's bytes say it is (:mod:`.content`), object files on disk
(:mod:`.files`), copying while hashing (:mod:`.transfer`), placing and publishing
crash-safely (:mod:`.placing`, :mod:`.writer`), batches made durable together
(:mod:`.group`), what writers are about to name (:mod:`.pins`, :mod:`.claims`),
reading checked against the fingerprint (:mod:`.reading`), and trees stored thin, each
large file once (:mod:`.thin`).

Imports: :mod:`scalems_store.core` and :mod:`scalems_store.tar`. Imported by
:mod:`scalems_store.store` and everything above it.
"""
