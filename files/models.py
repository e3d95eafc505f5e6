"""No tables of its own: the marker that makes a model's rows count against the storage quota."""

from __future__ import annotations


class StoredFile:
    """Mixed into a model that stores an organization's files, with ``organization`` and ``size``
    (bytes) fields: ``files.uploads.storage_used`` sums every such model."""
