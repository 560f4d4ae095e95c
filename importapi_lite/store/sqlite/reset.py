"""Resetting the store without a restart: everything, one client, or one table. Tokens survive.

Each goes through ``Store.remove``, which closes the files' connections before deleting them.
"""

from __future__ import annotations

from . import Store
from .paths import NameTooLong, table_path
from .reading import client_dirs


async def reset_everything(store: Store) -> int:
    """Delete every client's data; the number of clients that had some."""
    removed = 0
    for _, folder in client_dirs(store.data_dir):
        removed += await store.remove(folder)
    return removed


async def reset_client(store: Store, client_id: int) -> bool:
    """Delete one client's data, every integration; False if it had none."""
    return await store.remove(store.data_dir / str(int(client_id)))


async def reset_table(store: Store, client_id: int, integration: str, table: str) -> bool:
    """Delete a top-level table, its subtables and its rejected records; False if it had none.

    A table whose every record was rejected (its name too long, say) has no file, only those.
    """
    try:
        removed = await store.remove(table_path(store.data_dir, client_id, integration, table))
    except NameTooLong:
        removed = False
    forgotten = await store.forget_rejections(client_id, integration, table)
    return removed or forgotten
