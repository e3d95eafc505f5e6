"""Chat API behaviour that does not need a live server: refusals before the stream, sessions,
uploads and attachments."""

from __future__ import annotations

import io
import uuid
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from billing import services as billing
from billing.models import CreditAccount
from chat.models import Attachment, ChatSession, Message
from files.uploads import extract_text
from tests.conftest import add_member, assert_problem, client_for, make_org, make_specialist, owner_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def specialist(org):
    return make_specialist(org)


def send(client, path="/api/chat/stream", **body):
    return client.post(path, body, format="json")


@pytest.mark.parametrize("path", ["/api/chat/stream", "/api/chat/async"])
def test_refusals_before_the_stream_are_problems_and_change_nothing(path, owner, org, other_org, specialist, member):
    client = client_for(owner)
    assert_problem(client_for().post(path, {}, format="json"), 401, "not_authenticated")
    body = assert_problem(send(client, path), 400, "validation_error")
    assert {"specialistId", "message"} <= set(body["errors"])
    assert (
        "specialistId"
        in assert_problem(send(client, path, specialistId=str(uuid.uuid4()), message="x"), 400, "validation_error")[
            "errors"
        ]
    )
    foreign = make_specialist(other_org)
    assert (
        "specialistId"
        in assert_problem(send(client, path, specialistId=str(foreign.pk), message="x"), 400, "validation_error")[
            "errors"
        ]
    )
    assert (
        "sessionId"
        in assert_problem(
            send(client, path, specialistId=str(specialist.pk), message="x", sessionId=str(uuid.uuid4())),
            400,
            "validation_error",
        )["errors"]
    )
    assert (
        "attachmentIds"
        in assert_problem(
            send(client, path, specialistId=str(specialist.pk), message="x", attachmentIds=[str(uuid.uuid4())]),
            400,
            "validation_error",
        )["errors"]
    )
    assert_problem(
        client_for(owner, other_org).post(path, {"specialistId": str(specialist.pk), "message": "x"}, format="json"),
        403,
        "not_a_member",
    )
    specialist.status = "paused"
    specialist.save()
    assert_problem(send(client, path, specialistId=str(specialist.pk), message="x"), 409, "specialist_inactive")
    assert ChatSession.all_orgs.count() == 0
    assert Message.all_orgs.count() == 0


@pytest.mark.parametrize("path", ["/api/chat/stream", "/api/chat/async"])
def test_402_bodies(path, owner, org, specialist):
    client = client_for(owner)
    specialist.max_output_tokens = 4000
    specialist.save()
    billing.adjust_credits(org=org, amount=Decimal("-99.995"), kind="adjustment", reason="test")
    body = assert_problem(send(client, path, specialistId=str(specialist.pk), message="x"), 402, "insufficient_credits")
    assert body["scope"] == "org_balance"
    assert body["available"] == "0.005000"
    assert Decimal(body["required"]) > Decimal("0.005")
    billing.grant_credits(org=org, amount=Decimal(10), reason="more")
    org.monthly_budget = Decimal(0)
    org.save()
    body = assert_problem(send(client, path, specialistId=str(specialist.pk), message="x"), 402, "budget_exhausted")
    assert (body["scope"], body["limit"], body["spent"]) == ("org_budget", "0.000000", "0.000000")
    assert body["resetAt"].endswith("T00:00:00Z")
    org.monthly_budget = None
    org.save()
    specialist.monthly_credit_limit = Decimal(0)
    specialist.save()
    body = assert_problem(send(client, path, specialistId=str(specialist.pk), message="x"), 402, "budget_exhausted")
    assert body["scope"] == "specialist_budget"
    billing.set_circuit(org=org, actor=None, state="open", reason="Audit")
    body = assert_problem(send(client, path, specialistId=str(specialist.pk), message="x"), 402, "circuit_open")
    assert (body["scope"], body["reason"]) == ("circuit", "Audit")
    assert Message.all_orgs.count() == 0
    assert CreditAccount.all_orgs.get(organization=org).reserved == 0


def test_chat_is_throttled(owner, specialist, settings):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "chat": "2/min"}
    client = client_for(owner)
    for _ in range(2):
        send(client, "/api/chat/async", specialistId=str(specialist.pk), message="x")
    response = send(client, "/api/chat/async", specialistId=str(specialist.pk), message="x")
    assert_problem(response, 429, "rate_limited")
    assert "Retry-After" in response


def test_chat_is_throttled_per_org_as_well_as_per_user(org, owner, specialist, settings):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "chat": "100/min", "chat_org": "3/min"}
    colleague = add_member(org)
    for client in (client_for(owner), client_for(owner), client_for(colleague)):
        assert send(client, "/api/chat/async", specialistId=str(specialist.pk), message="x").status_code == 202
    response = send(client_for(colleague), "/api/chat/async", specialistId=str(specialist.pk), message="x")
    assert response.status_code == 429, response.content
    assert response.json()["code"] == "rate_limited"
    assert int(response["Retry-After"]) >= 1
    other = make_org(name="Elsewhere")  # another org's members are not slowed down
    other_specialist = make_specialist(other)
    response = send(client_for(owner_of(other)), "/api/chat/async", specialistId=str(other_specialist.pk), message="x")
    assert response.status_code == 202, response.content


def _session(org, specialist, user, title="s"):
    return ChatSession.all_orgs.create(organization=org, specialist=specialist, created_by=user, title=title)


def test_sessions_members_see_their_own_admins_all(
    owner, admin_user, member, org, specialist, other_org, django_assert_max_num_queries
):
    mine = _session(org, specialist, member, "mine")
    theirs = _session(org, specialist, owner, "theirs")
    _session(other_org, make_specialist(other_org), owner, "foreign")
    member_client = client_for(member)
    assert [s["title"] for s in member_client.get("/api/chat/sessions").json()["results"]] == ["mine"]
    assert_problem(member_client.get(f"/api/chat/sessions/{theirs.pk}"), 404, "not_found")
    assert_problem(member_client.delete(f"/api/chat/sessions/{theirs.pk}"), 404, "not_found")
    with django_assert_max_num_queries(6):
        titles = [s["title"] for s in client_for(admin_user).get("/api/chat/sessions").json()["results"]]
    assert titles == ["theirs", "mine"]
    assert client_for(admin_user).get(f"/api/chat/sessions?specialistId={specialist.pk}").json()["count"] == 2
    assert client_for(admin_user).get(f"/api/chat/sessions?specialistId={uuid.uuid4()}").json()["count"] == 0
    detail = member_client.get(f"/api/chat/sessions/{mine.pk}").json()
    assert set(detail) == {
        "id",
        "title",
        "specialistId",
        "workspaceId",
        "createdBy",
        "apiKeyId",
        "createdAt",
        "updatedAt",
        "lastMessageAt",
        "messageCount",
        "messages",
    }
    assert member_client.delete(f"/api/chat/sessions/{mine.pk}").status_code == 204
    assert client_for(admin_user).delete(f"/api/chat/sessions/{theirs.pk}").status_code == 204
    assert ChatSession.all_orgs.filter(organization=org).count() == 0


def test_session_detail_shows_messages_in_order(owner, org, specialist):
    client = client_for(owner)
    send(client, "/api/chat/async", specialistId=str(specialist.pk), message="first")
    session = ChatSession.all_orgs.get()
    detail = client.get(f"/api/chat/sessions/{session.pk}").json()
    assert [(m["role"], m["status"]) for m in detail["messages"]] == [("user", "completed"), ("assistant", "queued")]
    assert detail["messages"][1]["usage"] == {"inputTokens": 0, "outputTokens": 0, "credits": "0.000000"}
    assert detail["messages"][1]["toolCalls"] == []
    assert detail["messages"][1]["error"] is None
    assert detail["title"] == "first"


def _upload(client, name, content, content_type="application/octet-stream", **extra):
    return client.post(
        "/api/chat/upload", {"file": SimpleUploadedFile(name, content, content_type), **extra}, format="multipart"
    )


def _pdf_with_text(text: str) -> bytes:
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    page = writer.add_blank_page(width=300, height=300)
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    page[NameObject("/Resources")] = DictionaryObject(
        {NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})}
    )
    stream = DecodedStreamObject()
    stream.set_data(f"BT /F1 12 Tf 20 200 Td ({text}) Tj ET".encode())
    page[NameObject("/Contents")] = writer._add_object(stream)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_upload_and_extraction(owner, org):
    client = client_for(owner)
    response = _upload(client, "notes.md", b"# Plan\nShip it.")
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"id", "filename", "contentType", "size", "createdAt", "textExtracted"}
    assert (body["filename"], body["contentType"], body["size"]) == ("notes.md", "text/markdown", 15)
    assert Attachment.all_orgs.get(pk=body["id"]).text == "# Plan\nShip it."
    assert (
        "Quarterly numbers"
        in Attachment.all_orgs.get(pk=_upload(client, "r.pdf", _pdf_with_text("Quarterly numbers")).json()["id"]).text
    )
    assert '"a": 1' in Attachment.all_orgs.get(pk=_upload(client, "d.json", b'{"a":1}').json()["id"]).text
    assert "x,y" in Attachment.all_orgs.get(pk=_upload(client, "t.csv", b"x,y\n1,2").json()["id"]).text
    by_type = _upload(client, "README", b"plain words", "text/plain").json()
    assert (by_type["contentType"], Attachment.all_orgs.get(pk=by_type["id"]).text) == ("text/plain", "plain words")


def test_upload_limits(owner, org, settings):
    client = client_for(owner)
    settings.UPLOAD_MAX_BYTES = 10
    assert_problem(_upload(client, "big.txt", b"x" * 11), 413, "file_too_large")
    settings.UPLOAD_MAX_BYTES = 1000
    assert_problem(_upload(client, "run.exe", b"MZ"), 415, "unsupported_media_type")
    settings.STORAGE_QUOTA_BYTES = 15
    assert _upload(client, "a.txt", b"x" * 10).status_code == 201
    assert_problem(_upload(client, "b.txt", b"x" * 10), 413, "storage_quota_exceeded")
    assert_problem(client.post("/api/chat/upload", {}, format="multipart"), 400, "validation_error")
    assert Attachment.all_orgs.count() == 1


def test_attachment_text_reaches_the_model(owner, org, specialist):
    from chat.turns import start_turn
    from orgs.context import OrgContext
    from orgs.models import Membership

    client = client_for(owner)
    attachment = _upload(client, "brief.txt", b"The launch is on Friday.").json()
    context = OrgContext(org=org, membership=Membership.all_orgs.get(user=owner), is_staff=False)
    turn = start_turn(
        context=context,
        specialist_id=specialist.pk,
        message="When?",
        attachment_ids=[uuid.UUID(attachment["id"])],
    )
    assert "The launch is on Friday." in turn.request.messages[-1].content
    assert '<document name="brief.txt">' in turn.request.messages[-1].content  # fenced as data
    detail = client.get(f"/api/chat/sessions/{turn.session_id}").json()
    assert [a["filename"] for a in detail["messages"][0]["attachments"]] == ["brief.txt"]


def test_a_member_cannot_attach_to_someone_elses_session(owner, member, org, specialist):
    session = _session(org, specialist, owner)
    assert (
        "sessionId"
        in assert_problem(
            _upload(client_for(member), "a.txt", b"x", sessionId=str(session.pk)), 400, "validation_error"
        )["errors"]
    )


def test_history_is_trimmed_to_the_context_window(owner, org, specialist):
    from billing.models import ModelRate
    from chat.turns import start_turn
    from orgs.context import OrgContext
    from orgs.models import Membership

    ModelRate.objects.filter(model="local").update(context_window=1200)
    specialist.max_output_tokens = 100
    specialist.save()
    session = _session(org, specialist, owner)
    for i in range(10):
        Message.all_orgs.create(session=session, role="user", content=f"old question {i} " + "x" * 400)
        Message.all_orgs.create(session=session, role="assistant", content=f"old answer {i} " + "y" * 400)
    context = OrgContext(org=org, membership=Membership.all_orgs.get(user=owner), is_staff=False)
    turn = start_turn(context=context, specialist_id=specialist.pk, message="newest", session_id=session.pk)
    contents = [m.content for m in turn.request.messages]
    assert contents[-1] == "newest"
    assert 1 < len(contents) < 21
    assert contents[-2].startswith("old answer 9")


def test_extract_text_survives_bad_pdf():
    assert extract_text(b"not a pdf", "application/pdf") == ""


def test_member_added_later_has_no_access_to_old_sessions(owner, org, specialist):
    _session(org, specialist, owner)
    newcomer = add_member(org)
    assert client_for(newcomer).get("/api/chat/sessions").json()["count"] == 0
