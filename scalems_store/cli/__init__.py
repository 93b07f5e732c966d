"""``scalems-store`` on the command line: thin front ends over the library.

The entry point and its quick paths that start without click (:mod:`.console`,
:mod:`.commandline`), the click commands (:mod:`.app`, :mod:`.objects`,
:mod:`.trees`, :mod:`.maint`), what they share (:mod:`.shared`,
:mod:`.completion`) and how ``add`` reads its paths (:mod:`.adding`).

Imports: any folder of :mod:`scalems_store`. Imported by ``scalems_store.__main__``
and by :mod:`scalems_call.cmdline`, which shares its option handling.
"""
