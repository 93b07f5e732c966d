"""Many calls: graphs, schedules and the engines that run them.

The graph below a call (:mod:`.graph`), planning and submitting ready calls
(:mod:`.schedule`), the local process pool (:mod:`.pool`), Dask and Parsl
(:mod:`.executors`), the
Python API (:mod:`.runner`, :mod:`.results`, :mod:`.task`), progress
(:mod:`.progress`), deep reruns (:mod:`.deep`) and pictures (:mod:`.graphview`, laid
out by :mod:`.picture`).

Imports: :mod:`scalems_call.execution`, :mod:`scalems_call.identity`,
:mod:`scalems_store`. Imported by :mod:`scalems_call.cmdline` and the package's
public names.
"""
