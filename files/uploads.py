"""Uploads: size and type checks, the storage quota, text extraction, and storing the checked file
on the model that keeps it (a chat attachment, a workspace file)."""

from __future__ import annotations

import contextlib
import io
import json
import mimetypes
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Sum
from pypdf import PdfReader
from pypdf.errors import PdfReadError

from core.errors import DomainError, UnsupportedMediaTypeError
from files.models import StoredFile
from orgs.models import Organization

ALLOWED_TYPES = {
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".csv": "text/csv",
    ".json": "application/json",
    ".pdf": "application/pdf",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
}
TEXT_LIMIT = 200_000


class FileTooLargeError(DomainError):
    status = 413
    code = "file_too_large"

    def __init__(self, size: int) -> None:
        super().__init__(f"The file is {size} bytes; the limit is {settings.UPLOAD_MAX_BYTES} bytes.")


class StorageQuotaExceededError(DomainError):
    status = 413
    code = "storage_quota_exceeded"
    default_detail = "The organization's storage quota is used up."


class UnsupportedFileTypeError(UnsupportedMediaTypeError):
    def __init__(self, name: str) -> None:
        allowed = ", ".join(sorted(ALLOWED_TYPES))
        super().__init__(f"{name} is not an allowed file type. Allowed: {allowed}.")


def content_type_of(upload: UploadedFile[bytes]) -> str:
    """By the file name's extension, else by the declared type; anything else is a 415."""
    suffix = PurePath(upload.name or "").suffix.lower()
    if suffix in ALLOWED_TYPES:
        return ALLOWED_TYPES[suffix]
    declared = (upload.content_type or "").split(";")[0].strip().lower()
    if declared in set(ALLOWED_TYPES.values()):
        return declared
    raise UnsupportedFileTypeError(upload.name or "This file")


def extract_text(data: bytes, content_type: str) -> str:
    """Text for the model: text formats as they are (JSON pretty-printed), PDF through pypdf."""
    if content_type == "application/pdf":
        try:
            reader = PdfReader(io.BytesIO(data))
            text = "\n\n".join((page.extract_text() or "") for page in reader.pages)
        except (PdfReadError, ValueError, KeyError):
            return ""
        return text[:TEXT_LIMIT]
    if content_type.startswith("image/"):
        return ""
    text = data.decode("utf-8", errors="replace")
    if content_type == "application/json":
        with contextlib.suppress(json.JSONDecodeError):
            text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    return text[:TEXT_LIMIT]


def storage_used(org: Organization) -> int:
    """Bytes the org stores, over every model marked ``StoredFile``."""
    total = 0
    for model in apps.get_models():
        if issubclass(model, StoredFile):
            manager: Any = model._default_manager  # an OrgScopedQuerySet's manager
            used = manager.for_org(org).aggregate(total=Sum("size"))["total"]
            total += used or 0
    return total


@dataclass(frozen=True)
class CheckedUpload:
    filename: str
    content_type: str
    size: int
    text: str


def check_upload(*, org: Organization, upload: UploadedFile[bytes]) -> CheckedUpload:
    """Size, type and the org's quota (call inside a transaction), then the extracted text."""
    size = upload.size or 0
    if size > settings.UPLOAD_MAX_BYTES:
        raise FileTooLargeError(size)
    content_type = content_type_of(upload)
    Organization.objects.select_for_update().filter(pk=org.pk).first()  # one quota decision at a time
    if storage_used(org) + size > settings.STORAGE_QUOTA_BYTES:
        raise StorageQuotaExceededError
    data = upload.read()
    upload.seek(0)
    filename = PurePath(upload.name or "upload").name[:255]
    return CheckedUpload(
        filename=filename,
        content_type=content_type or mimetypes.guess_type(filename)[0] or "application/octet-stream",
        size=size,
        text=extract_text(data, content_type),
    )


@transaction.atomic
def store_upload[S: StoredFile](*, org: Organization, upload: UploadedFile[bytes], stored: S) -> S:
    """Checks the upload against the org's quota and saves it on ``stored`` (an unsaved
    ``StoredFile`` model carrying everything but the file): its name, type, size and text are
    filled in here, in one transaction with the quota decision."""
    checked = check_upload(org=org, upload=upload)
    stored.filename = checked.filename
    stored.content_type = checked.content_type
    stored.size = checked.size
    stored.text = checked.text
    stored.file.save(checked.filename, upload, save=False)
    stored.save()
    return stored
