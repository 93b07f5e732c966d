"""Remotes: other stores that closures travel to and from (a path, SSH, S3, HTTP).

Which remotes a store knows, as its settings file names them (:mod:`.settings`);
what every transport offers (:class:`.peer.Peer`), the packs objects travel in
(:mod:`.packs`), and push, pull and fetch over any of them (:mod:`.sync`). The
transports: another store on disk (:class:`.peer.LocalPeer`), and over SSH the
framed exchange (:mod:`.wire`) with ``scalems-store serve --stdio`` run on the
far side (:mod:`.ssh`, :mod:`.serve`).

Imports: :mod:`scalems_store.maint` (closures, bundles) and the folders below it.
Imported by the command line (:mod:`scalems_store.cli`) and :mod:`scalems_call`.
"""
