"""Uploads and request bodies: sizes, the storage quota, text extraction."""

from __future__ import annotations

from leancore.settings.env import env_int, env_str

UPLOAD_MAX_BYTES = env_int("UPLOAD_MAX_BYTES", 10 * 1024 * 1024)
STORAGE_QUOTA_BYTES = env_int("STORAGE_QUOTA_BYTES", 1024 * 1024 * 1024)
# The largest request body of any kind (413 `request_too_large` above it): room for one upload. A
# larger body to an upload endpoint answers `file_too_large`, stating UPLOAD_MAX_BYTES.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("REQUEST_MAX_BYTES", max(UPLOAD_MAX_BYTES * 2, 2_621_440))
# An upload's text extraction (a PDF's in a child process, killed at the time limit): a file whose
# text cannot be extracted within these bounds is stored with no text (`textExtracted: false`).
UPLOAD_EXTRACT_SECONDS = float(env_str("UPLOAD_EXTRACT_SECONDS", "10"))
UPLOAD_EXTRACT_MAX_CHARS = env_int("UPLOAD_EXTRACT_MAX_CHARS", 1_000_000)
# PDF extractions (each a child process of up to UPLOAD_EXTRACT_SECONDS of CPU and 1 GiB) running at
# once per server process; an upload that finds them all busy for a second is stored without text.
UPLOAD_EXTRACT_CONCURRENCY = max(1, env_int("UPLOAD_EXTRACT_CONCURRENCY", 2))
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
