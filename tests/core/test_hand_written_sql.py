"""Hand-written SQL (``core.db``) is org-aware: every statement says its scope, either one
organization's rows (``InOrg``: the statement must filter on ``organization_id`` and bind that org's
id, checked before it runs) or why it spans organizations (``AcrossOrgs(reason)``). The deliberate
``AcrossOrgs`` uses of the app code are listed here; a new one fails until it is listed."""

from __future__ import annotations

import ast
import uuid
from pathlib import Path

import pytest

from core import db
from tests.core.test_reads_need_an_org import ROOT, _modules

STATEMENTS = {"rows", "execute", "fetch", "update_rows"}

ACROSS_ORGS = {
    ("orgs/context.py", "member_context"),  # the caller's own membership, by their token's user
    ("chat/turns.py", "beat"),  # a running turn's own message, by its id
    ("chat/records.py", "_write_message_and_session"),  # the turn's own message, by its id
    ("chat/context.py", "history_messages"),  # the history of a session read in its org
    ("billing/services/metering.py", "active_rate"),  # model rates are the platform's
    ("billing/services/settlement.py", "locked_hold"),  # a hold by its own id, with its account
    ("billing/services/hot_ledger.py", "settle"),  # a hold by its own id, with its account
    ("billing/services/hot_ledger.py", "release"),  # a hold by its own id, with its account
    ("core/db.py", "update"),  # a row by its own id (a model with no org)
}


def _statement_calls(path: Path) -> list[tuple[str, ast.Call]]:
    tree = ast.parse(path.read_text())
    found = []
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(func):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in STATEMENTS
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "db"
            ):
                found.append((func.name, node))
    return found


def _across(path: Path) -> set[tuple[str, str]]:
    tree = ast.parse(path.read_text())
    where = str(path.relative_to(ROOT))
    found = set()
    for func in ast.walk(tree):
        if isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(func):
                if (
                    isinstance(node, ast.Call)
                    and getattr(node.func, "attr", getattr(node.func, "id", "")) == "AcrossOrgs"
                ):
                    reason = node.args[0] if node.args else None
                    assert isinstance(reason, ast.Constant), (where, func.name)  # a reason in words, where it stands
                    assert len(str(reason.value)) >= 8, (where, func.name)
                    found.add((where, func.name))
    return found


def test_every_hand_written_statement_says_its_scope():
    unscoped = [
        (str(path.relative_to(ROOT)), name)
        for path in _modules()
        for name, call in _statement_calls(path)
        if not any(keyword.arg == "scope" for keyword in call.keywords)
    ]
    assert unscoped == [], unscoped


def test_every_statement_across_orgs_is_listed():
    found = set().union(*(_across(path) for path in _modules()))
    assert found == ACROSS_ORGS, (sorted(found - ACROSS_ORGS), sorted(ACROSS_ORGS - found))


@pytest.mark.django_db
def test_a_statement_said_to_be_one_orgs_must_bind_that_org():
    org_id = uuid.uuid4()
    sql = "SELECT id FROM orgs_apikey WHERE organization_id = %s AND id = %s"
    assert db.rows(sql, [org_id, uuid.uuid4()], scope=db.InOrg(org_id)) == []
    with pytest.raises(db.UnscopedSQLError):  # another org's id bound
        db.rows(sql, [uuid.uuid4(), uuid.uuid4()], scope=db.InOrg(org_id))
    with pytest.raises(db.UnscopedSQLError):  # no org condition at all
        db.rows("SELECT id FROM orgs_apikey WHERE id = %s", [org_id], scope=db.InOrg(org_id))
    with pytest.raises(db.UnscopedSQLError):
        db.execute("DELETE FROM orgs_apikey WHERE id = %s", [org_id], scope=db.InOrg(org_id))
    assert db.rows("SELECT id FROM orgs_apikey WHERE id = %s", [org_id], scope=db.AcrossOrgs("this test")) == []


def test_any_of_is_one_array_on_postgresql():
    import uuid as uuid_

    from django.db import connection as connection_

    from core import db as db_

    ids = [uuid_.uuid4(), uuid_.uuid4()]
    sql, params = db_.any_of("t.id", ids)
    if connection_.vendor == "postgresql":
        assert (sql, params) == ("t.id = ANY(%s)", [ids])
    else:
        assert (sql, params) == ("t.id IN (%s, %s)", ids)
