"""Text extraction is bounded in time and size, and holds no lock that other uploads of the org need:
a small crafted PDF (one page, a compressed content stream of a few hundred thousand text
operations: minutes of pypdf CPU from a few kilobytes) is stored at once with no text."""

from __future__ import annotations

import io
import threading
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from pypdf import PdfWriter
from pypdf.generic import DictionaryObject, NameObject, StreamObject

from chat.models import Attachment
from files.extract import bounded_pdf_text, pdf_text
from tests.conftest import client_for
from workspaces.models import WorkspaceFile


def pdf(*pages: bytes) -> bytes:
    """A PDF whose pages have these content streams (compressed), in Helvetica."""
    writer = PdfWriter()
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    font_ref = writer._add_object(font)
    for content in pages:
        page = writer.add_blank_page(width=300, height=300)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font_ref})}
        )
        stream = StreamObject()
        stream.set_data(content)
        page[NameObject("/Contents")] = writer._add_object(stream.flate_encode())
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def slow_pdf(operations: int = 400_000) -> bytes:
    """One page of ``operations`` one-letter text operations: about 6 s of pypdf per 100,000 here."""
    return pdf(b"BT /F1 12 Tf " + b"1 0 Td (a) Tj " * operations + b"ET")


def text_pdf(text: str) -> bytes:
    return pdf(f"BT /F1 12 Tf 20 200 Td ({text}) Tj ET".encode())


def chat_upload(client, name: str, content: bytes):
    file = SimpleUploadedFile(name, content, "application/octet-stream")
    return client.post("/api/chat/upload", {"file": file}, format="multipart")


def workspace_upload(client, workspace_id: str, name: str, content: bytes):
    file = SimpleUploadedFile(name, content, "application/octet-stream")
    return client.post(f"/workspaces/{workspace_id}/files", {"file": file}, format="multipart")


def test_the_crafted_pdf_is_small_and_slow():
    """The attack file: a few kilobytes whose extraction outlasts the bound many times over."""
    data = slow_pdf()
    assert len(data) < 30_000
    assert bounded_pdf_text(data, seconds=1, max_chars=1_000_000) is None
    started = time.monotonic()
    assert len(pdf_text(slow_pdf(10_000), max_chars=1_000_000)) == 10_000
    assert time.monotonic() - started > 0.1  # 40 times that is far beyond one second


@pytest.mark.django_db
def test_a_pdf_that_takes_too_long_is_stored_without_text(member, org, settings):
    settings.UPLOAD_EXTRACT_SECONDS = 1
    client = client_for(member)
    started = time.monotonic()
    response = chat_upload(client, "bomb.pdf", slow_pdf())
    assert time.monotonic() - started < 5
    assert response.status_code == 201, response.content
    assert response.json()["textExtracted"] is False
    assert Attachment.all_orgs.get(pk=response.json()["id"]).text == ""

    workspace = client.post("/workspaces", {"name": "W"}, format="json").json()
    started = time.monotonic()
    response = workspace_upload(client, workspace["id"], "bomb.pdf", slow_pdf())
    assert time.monotonic() - started < 5
    assert response.status_code == 201, response.content
    assert response.json()["textExtracted"] is False
    assert WorkspaceFile.all_orgs.get(pk=response.json()["id"]).text == ""


@pytest.mark.django_db
def test_text_extracted_says_whether_the_specialist_gets_text(member, org):
    client = client_for(member)
    readable = chat_upload(client, "report.pdf", text_pdf("Quarterly numbers")).json()
    assert readable["textExtracted"] is True
    assert "Quarterly numbers" in Attachment.all_orgs.get(pk=readable["id"]).text
    assert chat_upload(client, "notes.txt", b"plain words").json()["textExtracted"] is True
    assert chat_upload(client, "photo.png", b"\x89PNG\r\n\x1a\n").json()["textExtracted"] is False
    assert chat_upload(client, "broken.pdf", b"%PDF-1.4 not really").json()["textExtracted"] is False
    workspace = client.post("/workspaces", {"name": "W"}, format="json").json()
    assert workspace_upload(client, workspace["id"], "a.md", b"# A").json()["textExtracted"] is True
    listed = client.get(f"/workspaces/{workspace['id']}/files").json()["results"]
    assert [item["textExtracted"] for item in listed] == [True]


@pytest.mark.django_db
def test_text_stops_at_the_size_bound(member, org, settings):
    settings.UPLOAD_EXTRACT_MAX_CHARS = 100
    client = client_for(member)
    body = chat_upload(client, "long.txt", b"x" * 5000).json()
    assert body["textExtracted"] is True
    assert Attachment.all_orgs.get(pk=body["id"]).text == "x" * 100
    pages = pdf(*[f"BT /F1 12 Tf 20 200 Td (page {n} {'y' * 60}) Tj ET".encode() for n in range(200)])
    body = chat_upload(client, "pages.pdf", pages).json()
    text = Attachment.all_orgs.get(pk=body["id"]).text
    assert text.startswith("page 0")
    assert len(text) == 100
    assert len(pdf_text(pages, max_chars=100)) == 100  # the pages after the bound are never read


@pytest.mark.django_db(transaction=True)
def test_an_extraction_holds_no_lock_other_uploads_of_the_org_need(member, org, settings):
    """While one member's slow PDF is being read, another upload of the same org is stored at once
    (the org's row lock is taken only around the quota decision and the save)."""
    settings.UPLOAD_EXTRACT_SECONDS = 4
    results: dict[str, tuple[int, float]] = {}

    def upload(key: str, name: str, content: bytes, delay: float) -> None:
        time.sleep(delay)
        started = time.monotonic()
        response = chat_upload(client_for(member), name, content)
        results[key] = (response.status_code, time.monotonic() - started)

    threads = [
        threading.Thread(target=upload, args=("slow", "bomb.pdf", slow_pdf(), 0)),
        threading.Thread(target=upload, args=("quick", "note.txt", b"hello", 1.0)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results["slow"][0] == 201
    assert results["quick"][0] == 201
    assert results["quick"][1] < 2.0, results  # not behind the slow one's 4 s
    assert results["slow"][1] >= 4.0, results
