"""A specialist's ``fallbackModels`` (API.md §6): validated like ``model`` on the API and in the
admin, never in the wizard's draft; the wizard's drafting call gets the one retry before output."""

from __future__ import annotations

import json

import pytest

from billing.models import LedgerEntry, ModelRate, Reservation
from specialists.models import Specialist
from tests.admin.test_admin_edits import REASON, errors_of, form_of, submit
from tests.conftest import assert_problem, client_for, make_specialist
from tests.fakes.llm_server import Scenario

pytestmark = pytest.mark.django_db

BODY = {"name": "Ada", "model": "gpt-4o-mini"}


def test_fallback_models_default_to_none_and_keep_their_order(admin_user):
    client = client_for(admin_user)
    created = client.post("/specialists", BODY, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["fallbackModels"] == []
    chain = ["claude-haiku-4-5", "local", "gpt-4.1-mini"]
    updated = client.put(f"/specialists/{created.json()['id']}", {"fallbackModels": chain}, format="json")
    assert updated.status_code == 200, updated.content
    assert updated.json()["fallbackModels"] == chain
    assert client.get(f"/specialists/{created.json()['id']}").json()["fallbackModels"] == chain
    assert Specialist.all_orgs.get(pk=created.json()["id"]).fallback_models == chain


@pytest.mark.parametrize(
    ("fallbacks", "message"),
    [
        (["gpt-99"], "'gpt-99' is not an active model."),
        (["claude-haiku-4-5", "claude-haiku-4-5"], "A fallback model is named twice."),
        (["gpt-4o-mini"], "'gpt-4o-mini' is the specialist's own model, not a fallback."),
        (["local", "gpt-4.1-mini", "gpt-5-nano", "claude-haiku-4-5"], "no more than 3"),
        ("local", "list"),
        ([{"model": "local"}], "string"),
    ],
)
def test_fallback_models_are_validated_like_model(admin_user, fallbacks, message):
    client = client_for(admin_user)
    response = client.post("/specialists", {**BODY, "fallbackModels": fallbacks}, format="json")
    errors = assert_problem(response, 400, "validation_error")["errors"]
    assert set(errors) == {"fallbackModels"}, errors
    assert message in json.dumps(errors), errors
    assert not Specialist.all_orgs.exists()


def test_an_inactive_rate_is_no_fallback(admin_user):
    ModelRate.objects.filter(model="claude-haiku-4-5").update(active=False)
    response = client_for(admin_user).post(
        "/specialists", {**BODY, "fallbackModels": ["claude-haiku-4-5"]}, format="json"
    )
    assert assert_problem(response, 400, "validation_error")["errors"] == {
        "fallbackModels": ["'claude-haiku-4-5' is not an active model."]
    }


def test_a_model_change_is_checked_against_the_fallbacks(admin_user, org):
    specialist = make_specialist(org, model="gpt-4o-mini", fallback_models=["claude-haiku-4-5"])
    client = client_for(admin_user)
    response = client.put(f"/specialists/{specialist.pk}", {"model": "claude-haiku-4-5"}, format="json")
    assert set(assert_problem(response, 400, "validation_error")["errors"]) == {"fallbackModels"}
    both = {"model": "claude-haiku-4-5", "fallbackModels": ["gpt-4o-mini"]}
    assert client.put(f"/specialists/{specialist.pk}", both, format="json").status_code == 200
    specialist.refresh_from_db()
    assert (specialist.model, specialist.fallback_models) == ("claude-haiku-4-5", ["gpt-4o-mini"])


def test_a_member_cannot_set_fallbacks(member, org):
    specialist = make_specialist(org)
    response = client_for(member).put(f"/specialists/{specialist.pk}", {"fallbackModels": ["local"]}, format="json")
    assert response.status_code == 403


def test_the_admin_form_shows_and_checks_them(operator, org):
    specialist = make_specialist(org, model="local", fallback_models=["gpt-4o-mini"])
    url = f"/admin/specialists/specialist/{specialist.pk}/change/"
    assert form_of(operator, url)["fallback_models"] == "gpt-4o-mini"
    response = submit(operator, url, fallback_models="gpt-4o-mini, gpt-4o-mini", **{REASON: "x"})
    assert "named twice" in errors_of(response)
    assert "fallback_models" in response.context["adminform"].form.errors
    response = submit(operator, url, fallback_models="claude-haiku-4-5, gpt-4o-mini", **{REASON: "Failover"})
    assert response.status_code == 302
    specialist.refresh_from_db()
    assert specialist.fallback_models == ["claude-haiku-4-5", "gpt-4o-mini"]


def test_the_wizards_draft_has_no_fallbacks_and_its_call_is_retried_once_before_output(admin_user, org, fake_llm):
    draft = {
        "name": "Bo",
        "title": "Bookkeeper",
        "description": "Books.",
        "instructions": "Keep the books.",
        "model": "gpt-4o-mini",
        "temperature": 0.3,
        "maxOutputTokens": 800,
        "toolIds": [],
    }
    fake_llm.script(Scenario(status=503), Scenario(chunks=[json.dumps(draft)], usage=(300, 90)))
    client = client_for(admin_user)
    response = client.post("/specialists/wizard", {"brief": "books", "model": "gpt-4o-mini"}, format="json")
    assert response.status_code == 200, response.content
    assert "fallbackModels" not in response.json()["draft"]
    assert [r["model"] for r in fake_llm.requests] == ["gpt-4o-mini", "gpt-4o-mini"]
    (entry,) = LedgerEntry.all_orgs.filter(organization=org, kind="usage")
    assert (entry.model, entry.input_tokens, entry.output_tokens) == ("gpt-4o-mini", 300, 90)
    holds = Reservation.all_orgs.filter(organization=org).order_by("created_at").values_list("status", flat=True)
    assert list(holds) == ["released", "settled"]  # the failed attempt cost nothing

    fake_llm.script(Scenario(status=503), Scenario(chunks=[json.dumps(draft)]))
    created = client.post("/specialists/wizard", {"brief": "books", "create": True}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["fallbackModels"] == []


def test_the_wizard_gives_up_after_one_retry(admin_user, org, fake_llm):
    fake_llm.script(Scenario(status=503), Scenario(status=503), Scenario(chunks=["never"]))
    response = client_for(admin_user).post("/specialists/wizard", {"brief": "x", "model": "gpt-4o-mini"}, format="json")
    body = assert_problem(response, 502, "llm_unavailable")
    assert "gpt-4o-mini (http_503, http_503)" in body["detail"]
    assert len(fake_llm.requests) == 2
    assert not LedgerEntry.all_orgs.filter(organization=org, kind="usage").exists()
