"""The store: :class:`~scalems_store.store.filestore.FileStore` and what names its objects.

Creating and finding a store (:mod:`.creation`), refs and labels (:mod:`.refs`),
resolving names and prefixes (:mod:`.naming`), leases on running calls
(:mod:`.lease`), the rebuildable sqlite index (:mod:`.index`, :mod:`.indexmarks`),
paths inside trees (:mod:`.treeview` reads a tree in place and resolves ``FP:path``
for a tree, result or call), the :class:`FileStore` face over all of them
(:mod:`.filestore`), SCALE-MS's file references to its objects (:mod:`.reference`) and
``FileStoreManager`` (:mod:`.manager`).

Imports: :mod:`scalems_store.core`, :mod:`scalems_store.tar`,
:mod:`scalems_store.objects`. Imported by the query and maintenance folders, the
command line and :mod:`scalems_call`.
"""
