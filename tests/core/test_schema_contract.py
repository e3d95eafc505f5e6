"""The OpenAPI schema is the contract: every status an operation answers is in it, derived from the
errors each view declares and the one error-code registry."""

from __future__ import annotations

import re

import pytest

from core import errors
from core.errors import ERROR_CODES, DomainError

pytestmark = pytest.mark.django_db

OPERATIONS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    from django.test import Client

    with django_db_blocker.unblock():
        response = Client().get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    return response.json()


def _statuses(schema: dict, path: str, method: str) -> set[str]:
    return set(schema["paths"][path][method]["responses"])


def test_statuses_the_first_release_left_out_are_documented(schema):
    assert "401" in _statuses(schema, "/auth/login", "post")
    assert "401" in _statuses(schema, "/auth/refresh", "post")
    assert "502" in _statuses(schema, "/orgs/{orgId}/mcps/{id}/sync", "post")
    assert "502" in _statuses(schema, "/specialists/wizard", "post")
    assert {"402", "406", "409", "429", "502"} <= _statuses(schema, "/api/chat/stream", "post")
    assert {"413", "415", "429"} <= _statuses(schema, "/api/chat/upload", "post")
    assert {"402", "409"} <= _statuses(schema, "/tasks/{id}/run", "post")
    assert "409" in _statuses(schema, "/users/{id}/role", "patch")
    assert "409" not in _statuses(schema, "/workspaces", "post")  # nothing there conflicts


def test_every_operation_documents_the_shared_machinery(schema):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if method not in OPERATIONS:
                continue
            statuses = set(operation["responses"])
            assert {"400", "413", "503"} <= statuses, (method, path)
            secured = any(requirement for requirement in operation.get("security", []))
            if secured:
                assert "401" in statuses, (method, path)
            if "{" in path:
                assert "404" in statuses, (method, path)
            if method in ("post", "put", "patch") and operation.get("requestBody"):
                assert "415" in statuses, (method, path)
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    assert "application/problem+json" in response["content"], (method, path, status)
            assert "503" in operation["responses"]
            assert "Retry-After" in operation["responses"]["503"]["headers"]


def test_documented_codes_all_come_from_the_registry(schema):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if method not in OPERATIONS:
                continue
            for status, response in operation["responses"].items():
                if int(status) < 400:
                    continue
                codes = re.findall(r"`([a-z_]+)`", response["description"])
                assert codes, (method, path, status)
                for code in codes:
                    assert ERROR_CODES[code].status == int(status), (method, path, code)


def test_path_parameters_are_camel_case(schema):
    for path, operations in schema["paths"].items():
        assert "_" not in "".join(re.findall(r"\{[^}]+\}", path)), path
        for method, operation in operations.items():
            if method in OPERATIONS:
                for parameter in operation.get("parameters", []):
                    if parameter["in"] == "path":
                        assert "_" not in parameter["name"], (path, parameter)
    assert "/orgs/{orgId}/mcps/{id}/tools/{toolId}" in schema["paths"]


def test_the_stream_documents_its_media_types(schema):
    content = schema["paths"]["/api/chat/stream"]["post"]["responses"]["200"]["content"]
    assert {"text/event-stream", "application/json"} <= set(content)


def test_the_registry_holds_one_status_per_code():
    assert ERROR_CODES["request_too_large"].status == 413
    assert ERROR_CODES["service_unavailable"].status == 503
    assert ERROR_CODES["not_found"].status == 404
    with pytest.raises(TypeError):

        class Conflicting(DomainError):  # the same code with another status is a programming error
            status = 418
            code = "not_found"

    with pytest.raises(TypeError, match="already defined"):

        class Again(DomainError):  # a more specific error subclasses the one that owns the code
            status = 404
            code = "not_found"

    assert ERROR_CODES["not_found"].status == 404
    assert errors.ValidationFailed.of({"a": ["b"]}).extra == {"errors": {"a": ["b"]}}


@pytest.mark.parametrize("path", ["/api/redoc/", "/api/docs/"])
def test_the_docs_pages_load_nothing_from_other_hosts(client, path):
    response = client.get(path)
    assert response.status_code == 200
    html = response.content.decode()
    assert not re.findall(r"""(?:src|href)=["']?(?:https?:)?//""", html), html
    csp = response["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "img-src 'self' data:" in csp
    assert "http" not in csp


# The contract's error codes and their statuses (the API reference's list), and the few the product
# adds for what the contract leaves to HTTP itself.
CONTRACT_CODES = {
    "not_authenticated": 401,
    "token_not_valid": 401,
    "invalid_credentials": 401,
    "permission_denied": 403,
    "not_a_member": 403,
    "org_required": 400,
    "invalid_org_id": 400,
    "invalid_token": 400,
    "validation_error": 400,
    "url_not_allowed": 400,
    "not_found": 404,
    "events_expired": 410,
    "already_member": 409,
    "last_owner": 409,
    "specialist_inactive": 409,
    "invalid_state": 409,
    "idempotency_key_reused": 409,
    "insufficient_credits": 402,
    "budget_exhausted": 402,
    "circuit_open": 402,
    "file_too_large": 413,
    "storage_quota_exceeded": 413,
    "request_too_large": 413,
    "unsupported_media_type": 415,
    "rate_limited": 429,
    "llm_unavailable": 502,
    "llm_bad_output": 502,
    "mcp_unreachable": 502,
    "service_unavailable": 503,
    "client_disconnected": 499,  # a message's error code: its client went away, no answer is sent
}
PRODUCT_CODES = {
    "method_not_allowed": 405,
    "not_acceptable": 406,
    "server_error": 500,
    "worker_lost": 503,
    "queue_timeout": 503,
}


def test_the_registry_holds_each_code_of_the_contract_once_with_its_status_and_title(schema):
    registered = {code: entry.status for code, entry in ERROR_CODES.items()}
    assert registered == CONTRACT_CODES | PRODUCT_CODES
    for entry in ERROR_CODES.values():
        assert entry.title == errors.title_of(entry.status)
    assert errors.title_of(413) == "Content Too Large"
    # a bare answer with only a status gets the code registered for it
    assert [errors.generic_code(s) for s in (400, 401, 403, 404, 413, 429, 503)] == [
        "validation_error",
        "not_authenticated",
        "permission_denied",
        "not_found",
        "request_too_large",
        "rate_limited",
        "service_unavailable",
    ]


# Words of the code, not of the API: a description that holds one is a maintainer's note.
INTERNAL = re.compile(
    r"``|org_context|required_roles|queryset|viewset|serializer|swagger_fake_view|\bself\.|docstring", re.IGNORECASE
)
ACCESS = "**Access:**"


def _operations(schema: dict):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if method in OPERATIONS:
                yield path, method, operation


def test_every_operation_has_a_summary_and_a_description_for_api_users(schema):
    """The API docs speak to API users: a summary and a description on every operation (what it does,
    not only its access in words), and none of the notes views keep for their maintainers."""
    for path, method, operation in _operations(schema):
        summary, description = operation.get("summary", ""), operation.get("description", "")
        assert summary.strip(), (method, path)
        assert ACCESS in description, (method, path)
        own = description.split(ACCESS, 1)[0].strip()
        assert own, f"{method.upper()} {path} has only its access line; add it to its app's api_descriptions"
        for text in (summary, description):
            assert not INTERNAL.search(text), (method, path, text)


def test_the_descriptions_tables_name_only_operations_that_use_them(schema):
    """Every entry of an app's ``api_descriptions`` is a real operation of the schema, of a view of that
    app, and the one it describes: no stale entry, none in another app's table, and none hidden behind a
    description of the operation's own."""
    from leancore.schema.descriptions import described_operations

    operations = {(path, method): operation for path, method, operation in _operations(schema)}
    described = described_operations()
    assert len(described) > 50
    for key, (app, text) in described.items():
        assert key in operations, f"{key} (in {app}.api_descriptions) is not an operation of the schema"
        assert text.strip(), key
        assert not INTERNAL.search(text), (key, text)
        assert operations[key]["description"].startswith(text), f"{key}: not {app}'s, or it has its own"


def test_an_operation_without_a_description_would_fail_the_contract(monkeypatch):
    """The app's table is what fills an operation's description: without its entry only the access line
    is left, and an entry in another app's table is not used."""
    from drf_spectacular.generators import SchemaGenerator

    from tasks import api_descriptions as tasks_descriptions
    from workspaces import api_descriptions as workspaces_descriptions

    text = tasks_descriptions.DESCRIPTIONS[("/tasks/{id}", "delete")]
    monkeypatch.delitem(tasks_descriptions.DESCRIPTIONS, ("/tasks/{id}", "delete"))
    monkeypatch.setitem(workspaces_descriptions.DESCRIPTIONS, ("/tasks/{id}", "delete"), text)
    generated = SchemaGenerator().get_schema(request=None, public=True)
    description = generated["paths"]["/tasks/{id}"]["delete"]["description"]
    assert description.startswith(ACCESS)
    assert generated["paths"]["/tasks/{id}"]["get"]["description"].split(ACCESS, 1)[0].strip()


# An error status (4xx, 5xx) or a code in backticks, as prose would write them.
STATUS = re.compile(r"(?<![\w.])([45]\d\d)(?![\w.]| (?:days|hours|characters|tools|bytes))")
CODE = re.compile(r"`([a-z_]+)`")
STATUS_AND_CODE = re.compile(r"(?<![\w.])([45]\d\d) `([a-z_]+)`")


def repeated_refusals(description: str, responses: dict) -> list[str]:
    """The statuses and codes a description's own text (before its access line) names that the
    operation's responses already list from the registry: prose that repeats them and can drift."""
    own = description.split(ACCESS, 1)[0]
    listed = {status for status in responses if int(status) >= 400}
    codes = {code for status in listed for code in CODE.findall(responses[status]["description"])}
    return [s for s in STATUS.findall(own) if s in listed] + [c for c in CODE.findall(own) if c in codes]


def test_descriptions_leave_statuses_and_codes_to_the_registry(schema):
    """A description says what happens; which status and code answer is the responses' part, derived
    from the registry. Where a description names another operation's refusal, the status is the code's."""
    for path, method, operation in _operations(schema):
        description = operation["description"]
        assert not repeated_refusals(description, operation["responses"]), (method, path, description)
        for status, code in STATUS_AND_CODE.findall(description):
            assert code in ERROR_CODES, (method, path, code)
            assert ERROR_CODES[code].status == int(status), (method, path, status, code)


def test_a_description_that_repeats_a_refusal_is_caught(schema):
    responses = schema["paths"]["/users/{id}/role"]["patch"]["responses"]
    assert repeated_refusals("Demoting the last owner is 409 `last_owner`.", responses) == ["409", "last_owner"]
    assert repeated_refusals("The last owner cannot be demoted.", responses) == []
    assert repeated_refusals(f"Fine. {ACCESS} elsewhere 403 `permission_denied`.", responses) == []


AREAS = {
    "Authentication",
    "Registration",
    "Organizations",
    "Users",
    "Specialists",
    "Chat",
    "MCP integration",
    "Billing",
    "Workspaces",
    "Tasks & projects",
    "Operations",
}


def test_operations_are_grouped_by_the_contracts_areas_and_every_body_has_a_valid_example(schema):
    schemas = schema["components"]["schemas"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if method not in OPERATIONS:
                continue
            assert len(operation["tags"]) == 1, (method, path)
            assert operation["tags"][0] in AREAS, (method, path, operation["tags"])
            if "requestBody" not in operation:
                continue
            for media, content in operation["requestBody"]["content"].items():
                example = content["examples"]["example"]["value"]
                body = content["schema"]
                body = schemas[body["$ref"].rsplit("/", 1)[-1]] if "$ref" in body else body
                # a body of several shapes (oneOf): the example is one of them
                shapes = [schemas[s["$ref"].rsplit("/", 1)[-1]] if "$ref" in s else s for s in body.get("oneOf", [])]
                fitting = [
                    shape
                    for shape in shapes or [body]
                    if set(example) <= set(shape.get("properties", {}))
                    and set(shape.get("required", [])) <= set(example)
                ]
                assert fitting, (method, path, media, example)
    assert {op["tags"][0] for ops in schema["paths"].values() for op in ops.values() if "tags" in op} == AREAS
