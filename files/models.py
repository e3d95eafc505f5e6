"""No tables of its own: the marker that makes a model's rows count against the storage quota."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from django.db.models.fields.files import FieldFile


class StoredFile:
    """Mixed into a model that stores an organization's files, with ``organization`` and ``size``
    (bytes) fields: ``files.uploads.storage_used`` sums every such model."""

    if TYPE_CHECKING:  # what the model's fields give it, for the type checker
        filename: str
        content_type: str
        size: int
        text: str
        file: FieldFile

        def save(self, *args: object, **kwargs: object) -> None: ...

    @property
    def text_extracted(self) -> bool:
        """Whether the file's text is available to specialists (none for an image, or for a file whose
        text could not be extracted within UPLOAD_EXTRACT_SECONDS and UPLOAD_EXTRACT_MAX_CHARS)."""
        return bool(self.text)
