"""The SQL of the turns beside the plain one (``test_turn_statements``), statement by statement: a
turn started with an org API key costs what a token's turn costs (its key and org in one read
instead of the user's membership; its cap, when it has one, one read more), and a turn with a tool
round and a turn with an attachment are pinned too."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.test import AsyncClient

from accounts.services import issue_tokens
from chat.models import Attachment
from orgs.models import Role
from tests.chat.test_turn_statements import FOLLOW_UP, _turn
from tests.conftest import add_member, make_org, make_specialist
from tests.fakes.llm_server import Scenario
from tests.orgs.test_api_key_auth import new_key

pytestmark = pytest.mark.django_db(transaction=True)

KEYED = ["SELECT orgs_apikey" if label == "SELECT orgs_membership" else label for label in FOLLOW_UP]
# the key's cap: the account locked, with the key's usage this period and its open holds
CAPPED = [
    *KEYED[: KEYED.index("INSERT billing_reservation")],
    "SELECT billing_creditaccount",
    *KEYED[KEYED.index("INSERT billing_reservation") :],
]


@pytest.mark.parametrize("capped", [False, True])
async def test_a_keys_turn_costs_what_a_tokens_turn_costs(bundled_data, recorded, capped):
    def setup():
        org = make_org(name="Keyed count")
        secret = new_key(org, role=Role.MEMBER, monthly_credit_limit="50" if capped else None)
        return make_specialist(org), secret

    specialist, secret = await database_sync_to_async(setup)()
    client = AsyncClient()
    _first, session_id = await _turn(client, secret, specialist, recorded)  # lastUsedAt written here, once a minute
    follow_up, _ = await _turn(client, secret, specialist, recorded, session_id)
    assert follow_up == (CAPPED if capped else KEYED), "\n".join(follow_up)
    assert len(follow_up) <= len(FOLLOW_UP) + (1 if capped else 0)


async def _member_turn(setup_extra, recorded, model: str = "local"):
    """A member's follow-up turn (the session exists) with what ``setup_extra`` adds; its statements."""

    def setup():
        org = make_org(name="Counted more")
        member = add_member(org)
        specialist = make_specialist(org, model=model)
        return org, member, specialist, issue_tokens(user=member).access

    org, member, specialist, token = await database_sync_to_async(setup)()
    client = AsyncClient()
    _first, session_id = await _turn(client, token, specialist, recorded)
    extra = await database_sync_to_async(setup_extra)(org, member, specialist)
    body = {"specialistId": str(specialist.pk), "message": "Plan our Q3 budget", "sessionId": session_id, **extra}
    recorded.clear()
    response = await client.post(
        "/api/chat/stream",
        body,
        content_type="application/json",
        headers={"accept": "text/event-stream", "authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.content
    text = b"".join([chunk async for chunk in response.streaming_content]).decode()
    assert "event: done" in text, text
    return recorded.snapshot(), text


SETTLE = FOLLOW_UP[FOLLOW_UP.index("UPDATE billing_reservation") : FOLLOW_UP.index("UPDATE chat_message")]
HOLD = FOLLOW_UP[FOLLOW_UP.index("INSERT billing_reservation") : FOLLOW_UP.index("UPDATE billing_reservation")]
TOOL_ROUND = [
    *FOLLOW_UP[: FOLLOW_UP.index("INSERT chat_message")],
    "SELECT mcps_tool",  # the specialist's tools, offered to the model (with their connections)
    *FOLLOW_UP[FOLLOW_UP.index("INSERT chat_message") : FOLLOW_UP.index("UPDATE billing_reservation")],
    "SELECT mcps_tool",  # the called tool and its connection, read when it runs (no connection held meanwhile)
    *SETTLE,  # the first call settled …
    *HOLD,  # … and the next one held, its input with the tool's result
    *FOLLOW_UP[FOLLOW_UP.index("UPDATE billing_reservation") :],
]


async def test_a_turn_with_a_tool_round_costs_these_statements(bundled_data, recorded, fake_llm, mcp_server):
    def with_tool(org, member, specialist):
        from mcps.models import Connection
        from mcps.services import sync_connection

        connection = Connection.all_orgs.create(
            organization=org, name="Calc", url=mcp_server.url("streamable_http"), transport="streamable_http"
        )
        sync_connection(connection=connection)
        specialist.tools.set(connection.tools.filter(name="add"))
        call = {"id": "call_1", "name": "add", "arguments": {"a": 2, "b": 40}}
        fake_llm.script(Scenario(chunks=[], tool_calls=[call], usage=(100, 20)), Scenario(chunks=["42"]))
        return {}

    statements, text = await _member_turn(with_tool, recorded, model="gpt-4o-mini")
    assert "event: tool_result" in text
    assert statements == TOOL_ROUND, "\n".join(statements)


ATTACHED = [
    *FOLLOW_UP[: FOLLOW_UP.index("SELECT billing_modelrate")],
    "SELECT chat_attachment",  # the attachments named, in the org
    *FOLLOW_UP[FOLLOW_UP.index("SELECT billing_modelrate") : FOLLOW_UP.index("INSERT chat_message") + 1],
    "SELECT chat_attachment",  # the user's message gets them (set() reads what it has) …
    "INSERT chat_message_attachments",
    "UPDATE chat_attachment",  # … and the session keeps them
    *FOLLOW_UP[FOLLOW_UP.index("UPDATE chat_chatsession") : FOLLOW_UP.index("INSERT billing_reservation")],
    "SELECT chat_attachment",  # the history's attachments, with their text
    *FOLLOW_UP[FOLLOW_UP.index("INSERT billing_reservation") :],
]


async def test_a_turn_with_an_attachment_costs_these_statements(bundled_data, recorded):
    def with_attachment(org, member, specialist):
        from django.core.files.uploadedfile import SimpleUploadedFile

        from chat.services import attach_upload
        from orgs.context import OrgContext
        from orgs.models import Membership

        context = OrgContext(org=org, membership=Membership.all_orgs.get(user=member), is_staff=False)
        upload = SimpleUploadedFile("brief.txt", b"The launch is on Friday.", content_type="text/plain")
        attachment: Attachment = attach_upload(context=context, upload=upload, session=None)
        return {"attachmentIds": [str(attachment.pk)]}

    statements, _ = await _member_turn(with_attachment, recorded)
    assert statements == ATTACHED, "\n".join(statements)
