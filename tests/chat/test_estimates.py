"""Two token estimates, one for each use: a hold assumes the most tokens a request can be (UTF-8
bytes bound a byte-level BPE tokenizer's count, whatever the script); trimming the history and
billing a call cut off before its usage was reported use the likely count. A CJK-heavy turn at a
nearly exhausted balance is held enough to be billed in full."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from django.db.models import Sum

from accounts.services import issue_tokens
from billing import services as billing
from billing.models import CreditAccount, LedgerEntry, ModelRate
from chat.context import build_request
from chat.models import Message
from chat.providers.base import (
    ChatMessage,
    ProviderRequest,
    ToolSpec,
    request_tokens_estimate,
    request_tokens_upper_bound,
    tokens_estimate,
    tokens_upper_bound,
)
from core.credits import token_cost
from specialists.models import Specialist
from tests.conftest import make_org, make_specialist, owner_of
from tests.fakes.llm_server import Scenario

SAMPLES = {
    "english": "The quarterly report shows revenue up four percent on the year.",
    "accented": "Le café était déjà fermé à l'heure où nous sommes arrivés.",
    "cyrillic": "Квартальный отчёт показывает рост выручки на четыре процента.",
    "cjk": "四半期報告書によると、売上高は前年比で四パーセント増加しました。" * 3,
    "emoji": "🚀📈🎉 launch day 🎯✅",
    "code": 'def f(x):\n    return {"a": [1, 2, 3], "b": x ** 2}\n',
}


@pytest.mark.parametrize("name", SAMPLES)
def test_the_likely_count_never_exceeds_the_upper_bound(name):
    text = SAMPLES[name]
    assert 0 < tokens_estimate(text) <= tokens_upper_bound(text)
    assert tokens_upper_bound(text) == len(text.encode("utf-8"))  # a BPE token is at least one byte


def test_cjk_and_emoji_are_counted_as_what_tokenizers_make_of_them():
    cjk = "売上高は前年比で増加しました" * 100  # 1,400 characters ≈ 1,400 tokens for GPT-4o / Claude
    assert tokens_estimate(cjk) == len(cjk)  # not the 350 of characters ÷ 4
    assert tokens_upper_bound(cjk) == 3 * len(cjk)
    assert tokens_estimate("🚀" * 10) == 20
    english = "word " * 400
    assert tokens_estimate(english) == 500  # English stays at about 4 characters a token
    assert tokens_estimate("") == tokens_upper_bound("") == 0


def test_a_requests_bound_counts_everything_sent_and_stays_above_its_estimate():
    request = ProviderRequest(
        model="m",
        system="You are Ada.",
        messages=[
            ChatMessage(role="user", content=SAMPLES["cjk"]),
            ChatMessage(role="assistant", content=SAMPLES["emoji"]),
        ],
        max_output_tokens=10,
        tools=[ToolSpec(name="lookup", description="検索します", input_schema={"type": "object"})],
        response_schema={"type": "object"},
    )
    bound, estimate = request_tokens_upper_bound(request), request_tokens_estimate(request)
    content_bytes = sum(len(text.encode()) for text in ("You are Ada.", SAMPLES["cjk"], SAMPLES["emoji"]))
    assert bound > content_bytes  # the text, plus the tools, schema and per-message framing
    assert estimate < bound
    assert estimate > len(SAMPLES["cjk"])  # the CJK message alone is about a token a character


def test_history_is_trimmed_by_the_likely_count_not_the_upper_bound():
    """A conversation that fits the context window by its likely count is kept whole, although
    its bytes would not fit: the hold's conservative bound never trims what the model sees."""
    specialist = Specialist(name="Ada", title="", instructions="", max_output_tokens=100)
    rate = ModelRate(model="m", context_window=2_000)
    older = [
        Message(role=Message.Role.USER if i % 2 == 0 else Message.Role.ASSISTANT, content="見積もり" * 100)
        for i in range(3)
    ]  # 400 characters each: ~400 tokens likely, 1,200 bytes
    newest = Message(role=Message.Role.USER, content="続けてください")
    for message in [*older, newest]:
        message.has_attachments = False
    request = build_request(
        specialist=specialist,
        rate=rate,
        session=None,
        user_message=newest,
        tools=[],
        documents=[],
        history=[*older, newest],
    )
    assert len(request.messages) == 4  # all kept: 3 × ~408 likely tokens fit in ~1,800
    longer = [*older, *older, newest]  # 6 × ~408 no longer fits: the oldest go
    request = build_request(
        specialist=specialist, rate=rate, session=None, user_message=newest, tools=[], documents=[], history=longer
    )
    assert 1 < len(request.messages) < 7
    kept = len(request.messages)
    assert [m.content for m in request.messages] == [m.content for m in longer[-kept:]]  # the newest


@pytest.mark.django_db(transaction=True)
def test_a_cjk_turn_at_a_nearly_exhausted_balance_is_billed_in_full(daphne_server, fake_llm, bundled_data):
    """The attack: a message of CJK text (about one token a character) on a balance just above what
    its hold asks. Held at characters ÷ 4, the call's real cost would exceed what was held and
    available, and the ledger would record less than the provider bills. Held at its upper bound,
    the whole cost is charged and the balance never goes below zero."""
    org = make_org(name="CJK Co")
    specialist = make_specialist(org, model="gpt-4o-mini", max_output_tokens=500)
    token = issue_tokens(user=owner_of(org)).access
    cjk = "四半期の売上高と利益率の推移を詳しく分析してください。" * 700  # 18,900 characters
    body = {"specialistId": str(specialist.pk), "message": cjk}
    with httpx.Client(base_url=daphne_server.url, headers={"authorization": f"Bearer {token}"}, timeout=60) as client:
        account = CreditAccount.all_orgs.get(organization=org)
        billing.adjust_credits(org=org, amount=Decimal("0.000001") - account.balance, kind="adjustment", reason="t")
        refused = client.post("/api/chat/stream", json=body)
        assert refused.status_code == 402, refused.text
        required = Decimal(refused.json()["required"])
        billing.adjust_credits(org=org, amount=required, kind="adjustment", reason="just enough")
        real_input = len(cjk) + 60  # the provider's count: a token a character, plus the instructions
        fake_llm.script(Scenario(chunks=["分析", "結果"], usage=(real_input, 500)))
        response = client.post("/api/chat/stream", json=body)
    assert response.status_code == 200, response.text
    assert "event: done" in response.text
    cost = token_cost(
        input_tokens=real_input,
        output_tokens=500,
        input_per_million=Decimal(15),
        output_per_million=Decimal(60),
    )
    account = CreditAccount.all_orgs.get(organization=org)
    entry = LedgerEntry.all_orgs.get(organization=org, kind="usage")
    assert entry.amount == -cost  # charged in full, not cut to what was available
    assert (entry.input_tokens, entry.output_tokens) == (real_input, 500)
    assert account.balance >= 0
    assert account.reserved == 0
    assert LedgerEntry.all_orgs.filter(organization=org).aggregate(total=Sum("amount"))["total"] == account.balance
    assert Message.all_orgs.get(role="assistant", session__organization=org).credits == cost
