"""PDF extraction is bounded in concurrency: however many PDFs are uploaded at once, at most
``UPLOAD_EXTRACT_CONCURRENCY`` child processes read them in one server process; an upload that finds
every slot busy is stored at once without text instead of starting another child."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from chat.models import Attachment
from files import extract
from files.uploads import extract_text
from tests.conftest import client_for
from tests.files.test_extract_bounds import chat_upload, slow_pdf, text_pdf


def _extract_children() -> int:
    """This process's children running files/extract.py right now."""
    me, count = str(os.getpid()), 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        parent = stat.rpartition(")")[2].split()[1]
        if parent == me and str(extract.WORKER).encode() in cmdline:
            count += 1
    return count


@pytest.mark.django_db
def test_concurrent_pdf_uploads_start_at_most_the_bound_of_children(member, org, settings):
    settings.UPLOAD_EXTRACT_CONCURRENCY = 2
    settings.UPLOAD_EXTRACT_SECONDS = 8
    bomb = slow_pdf()
    most = 0
    with ThreadPoolExecutor(8) as pool:
        started = time.monotonic()
        slow = [pool.submit(extract_text, bomb, "application/pdf") for _ in range(8)]
        while not all(future.done() for future in slow):
            most = max(most, _extract_children())
            if time.monotonic() - started > 0.5 and most == 2:
                # every slot is held by a slow PDF: a readable PDF uploaded now is stored at once,
                # without text, and starts no third child
                response = chat_upload(client_for(member), "report.pdf", text_pdf("Quarterly numbers"))
                assert not all(future.done() for future in slow)  # it did not wait for a slot to come free
                assert response.status_code == 201, response.content
                assert response.json()["textExtracted"] is False
                assert Attachment.all_orgs.get(pk=response.json()["id"]).text == ""
                break
            time.sleep(0.02)
        else:
            pytest.fail("the slow extractions never held both slots")
        while not all(future.done() for future in slow):
            most = max(most, _extract_children())
            time.sleep(0.02)
    assert most == 2  # never a third child, with eight uploads at once
    assert [future.result() for future in slow] == [""] * 8  # the bombs: no text (timed out or no slot)
    again = chat_upload(client_for(member), "report.pdf", text_pdf("Quarterly numbers"))
    assert again.json()["textExtracted"] is True  # the slots came back


def test_the_bound_is_at_least_one_and_one_per_size():
    assert extract.extraction_slots(0) is extract.extraction_slots(1)
    assert extract.extraction_slots(3) is extract.extraction_slots(3)
