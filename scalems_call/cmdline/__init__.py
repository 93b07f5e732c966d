"""``scalems-call`` on the command line: thin front ends over the library.

The entry point with its click-free cache-hit path (:mod:`.console`), the click
group (:mod:`.commands`), its commands (:mod:`.cmd_exec`, :mod:`.cmd_run`,
:mod:`.cmd_show`, :mod:`.cmd_graph`) and text display of results
(:mod:`.display`).

Imports: any folder of :mod:`scalems_call`, and :mod:`scalems_store`
(its command-line helpers included). Imported by ``scalems_call.__main__`` only.
"""
