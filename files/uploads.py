"""Uploads: size and type checks, the storage quota, text extraction, and storing the checked file
on the model that keeps it (a chat attachment, a workspace file)."""

from __future__ import annotations

import mimetypes
from pathlib import PurePath
from typing import cast

from django.apps import apps
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Model, Sum

from core import errors
from core.db import release_connections
from core.errors import DomainError, UnsupportedMediaTypeError
from files.extract import extract_text as bounded_text
from files.models import StoredFile
from orgs.models import AllOrgsManager, Organization

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


class FileTooLargeError(errors.FileTooLargeError):
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
    """The upload's text within ``UPLOAD_EXTRACT_SECONDS`` and ``UPLOAD_EXTRACT_MAX_CHARS``, at most
    ``UPLOAD_EXTRACT_CONCURRENCY`` PDFs at once ("" when there is none, or it could not be extracted
    within them)."""
    text = bounded_text(
        data,
        content_type,
        seconds=settings.UPLOAD_EXTRACT_SECONDS,
        max_chars=settings.UPLOAD_EXTRACT_MAX_CHARS,
        concurrency=settings.UPLOAD_EXTRACT_CONCURRENCY,
    )
    return text or ""


def storage_used(org: Organization) -> int:
    """Bytes the org stores, over every model marked ``StoredFile``."""
    total = 0
    for model in apps.get_models():
        if issubclass(model, StoredFile):
            manager = cast(AllOrgsManager[Model], model._default_manager)  # an org-owned model's all_orgs
            used = manager.get_queryset().for_org(org).aggregate(total=Sum("size"))["total"]
            total += used or 0
    return total


def _check_quota(org: Organization, size: int) -> None:
    if storage_used(org) + size > settings.STORAGE_QUOTA_BYTES:
        raise StorageQuotaExceededError


def store_upload[S: StoredFile](*, org: Organization, upload: UploadedFile[bytes], stored: S) -> S:
    """Checks the upload (size, type, the org's quota) and saves it on ``stored`` (an unsaved
    ``StoredFile`` model carrying everything but the file): its name, type, size and text are filled
    in here. The text is extracted first, bounded, with no lock held and this thread's database
    connection given back meanwhile; only the quota decision and the save run under the org's lock."""
    size = upload.size or 0
    if size > settings.UPLOAD_MAX_BYTES:
        raise FileTooLargeError(size)
    content_type = content_type_of(upload)
    _check_quota(org, size)  # an org over its quota costs no extraction
    release_connections()
    data = upload.read()
    upload.seek(0)
    text = extract_text(data, content_type)
    filename = PurePath(upload.name or "upload").name[:255]
    stored.filename = filename
    stored.content_type = content_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
    stored.size = size
    stored.text = text
    with transaction.atomic():
        Organization.objects.select_for_update().filter(pk=org.pk).first()  # one quota decision at a time
        _check_quota(org, size)
        stored.file.save(filename, upload, save=False)
        stored.save()
    return stored
