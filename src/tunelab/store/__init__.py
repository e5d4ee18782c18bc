"""The store: the only code that talks to the database."""

from tunelab.store.store import Store, open_store

__all__ = ["Store", "open_store"]
