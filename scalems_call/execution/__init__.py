"""Running one call: from a record to a recorded result.

What counts as a cache hit (:mod:`.cache`), comparing results (:mod:`.check`),
delivering upstream outputs (:mod:`.inputs`), the child process and the fork
server it is forked from (:mod:`.child`, :mod:`.forkserver`), launching, with
MPI or not (:mod:`.launch`), a call's recorded code in the store and on a
worker (:mod:`.code`), and the whole run of one call (:mod:`.execute`).

Imports: :mod:`scalems_call.identity` and :mod:`scalems_store`. Imported by
:mod:`scalems_call.engines` and :mod:`scalems_call.cmdline`.
"""
