"""Looking into a store without changing it: what an object is, holds and came from.

Object information (:mod:`.info`), lineage (:mod:`.lineage`), the files inside trees
(:mod:`.treefiles`) and differences between objects (:mod:`.diff`). Paths inside trees
are the store's (:mod:`scalems_store.store.treeview`).

Imports: :mod:`scalems_store.store` and the folders below it. Imported by the
command line and :mod:`scalems_call`; :mod:`scalems_store.maint` stands beside it.
"""
