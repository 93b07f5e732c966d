"""Maintenance that works on a whole store: verify, gc, bundles.

What the store's roots reach (:mod:`.reach`), checking and mending
(:mod:`.audit`), garbage collection (:mod:`.collect`) and export/import of
bundles (:mod:`.bundle`).

Imports: :mod:`scalems_store.store` and the folders below it. Imported by the
command line, the package's public names and :mod:`scalems_call`.
"""
