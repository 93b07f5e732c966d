"""Trust: whose results a store serves. Your key pair, the store's trusted keys, checking.

Each user has an Ed25519 key pair, made on first use and kept outside every
store (:mod:`.keys`). A runner signs each result it records; the signature
lies beside the result (:mod:`scalems_store.store.refs`). A store serves
a result (a cache hit, a decoded return value, a graph input) only when a key
it trusts signed it (:mod:`.policy`): your own key and the keys listed in the
store's settings. A signature checked once is remembered in your cache
directory (:mod:`.verified`), so that a cache hit does not load the
cryptography library.

Imports: :mod:`scalems_store.core`, :mod:`scalems_store.objects`,
:mod:`scalems_store.store`. Imported by the maintenance folder, the command line
and :mod:`scalems_call`.
"""
