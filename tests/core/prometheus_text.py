"""Reading a scrape as Prometheus reads it (prometheus-client's own parser) against the contract's
table (API.md §7, "Prometheus metrics")."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

TOKEN = "metrics-test-token-0123456789abcdefghijklmnop"

# API.md §7, "Prometheus metrics": name as exposed → (type, labels)
CONTRACT = {
    "leancore_http_requests_total": ("counter", {"method", "route", "status"}),
    "leancore_http_request_duration_seconds": ("histogram", {"method", "route"}),
    "leancore_turns_total": ("counter", {"provider", "model", "outcome"}),
    "leancore_turn_first_token_seconds": ("histogram", {"provider", "model"}),
    "leancore_turn_duration_seconds": ("histogram", {"provider", "model"}),
    "leancore_llm_tokens_total": ("counter", {"provider", "model", "direction"}),
    "leancore_credits_spent_total": ("counter", {"model"}),
    "leancore_refusals_total": ("counter", {"scope"}),
    "leancore_llm_fallbacks_total": ("counter", {"from_model", "to_model"}),
    "leancore_mcp_tool_calls_total": ("counter", {"outcome"}),
    "leancore_db_pool_wait_seconds": ("histogram", set()),
    "leancore_jobs_waiting": ("gauge", {"queue"}),
    "leancore_websocket_connections": ("gauge", set()),
}
UUID_TEXT = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", re.IGNORECASE)


def parse(text: str) -> dict[str, object]:
    """The scrape by family name as exposed (a counter's with its ``_total``), parsed by
    prometheus-client's own parser."""
    families = {}
    for family in text_string_to_metric_families(text):
        families[family.name + "_total" if family.type == "counter" else family.name] = family
    return families


def labels_of(family) -> set[frozenset[str]]:
    return {frozenset(set(sample.labels) - {"le"}) for sample in family.samples}


def value(families: dict, name: str, sample: str | None = None, **labels: str) -> float:
    """The sample's value (0 when absent): ``sample`` names a histogram's ``_count`` or ``_sum``."""
    family = families.get(name)
    wanted = sample or name
    for found in family.samples if family is not None else []:
        if found.name == wanted and found.labels == labels:
            return found.value
    return 0.0


def assert_contract(families: dict, *, every_family_recorded: bool) -> None:
    """Exactly the contract's families with its types; each sample has exactly its family's labels
    (all of them recorded, with ``every_family_recorded``); no label value is an id."""
    assert {name: family.type for name, family in families.items()} == {n: t for n, (t, _) in CONTRACT.items()}
    for name, family in families.items():
        seen = labels_of(family)
        assert seen <= {frozenset(CONTRACT[name][1])}, (name, seen)
        if every_family_recorded:
            assert seen, name
        for sample in family.samples:
            for label, text in sample.labels.items():
                assert not UUID_TEXT.search(text), (name, label, text)
