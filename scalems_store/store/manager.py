"""SCALE-MS's ``FileStoreManager``: one open :class:`FileStore` held for a workflow."""

from __future__ import annotations

import os

from scalems_store.store.filestore import FileStore


class FileStoreManager:
    """Hold one :class:`FileStore` open until :meth:`close`, as SCALE-MS workflow managers do.

    It can be passed as the *manager* of ``scalems_call.function_call_to_subprocess``.
    Unlike SCALE-MS, which allowed one owning process per store directory, any
    number of managers (and processes) may hold the same store at once.

    Args:
        directory: The store's root; ``$SCALEMS_STORE`` or ``./.scalems`` when None
            (created on first use, as :class:`FileStore` does).

    Example::

        with FileStoreManager(".scalems") as manager:
            store = manager.filestore()
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self._store: FileStore | None = FileStore(directory)

    def filestore(self) -> FileStore | None:
        """The managed store: the same :class:`FileStore` each time while open; None after
        :meth:`close` (as in SCALE-MS)."""
        return self._store

    def datastore(self) -> FileStore | None:
        """The managed store (the name SCALE-MS workflow managers give it)."""
        return self._store

    def close(self) -> bool:
        """Close the store; return True the first time, False when it was closed already."""
        if self._store is None:
            return False
        self._store.close()
        self._store = None
        return True

    def __enter__(self) -> FileStoreManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._store is None else repr(self._store.root)
        return f"<FileStoreManager {state}>"
