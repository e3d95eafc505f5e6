"""An upload says what was too large, also when its body is over the server's request limit: a real
Daphne receives 32 MiB (over UPLOAD_MAX_BYTES, 10 MiB, and the request limit, 20 MiB)."""

from __future__ import annotations

import httpx
import pytest

from accounts.services import issue_tokens
from tests.conftest import make_org, owner_of
from workspaces.models import Workspace

pytestmark = pytest.mark.django_db(transaction=True)

UPLOAD_MAX_BYTES = 10 * 1024 * 1024
REQUEST_MAX_BYTES = 20 * 1024 * 1024
HUGE = b"a" * (32 * 1024 * 1024)


def _post(url: str, token: str, headers: dict[str, str] | None = None, **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", **(headers or {})}
    return httpx.post(url, headers=headers, timeout=120, **kwargs)


def _assert_file_too_large(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "file_too_large"
    assert str(UPLOAD_MAX_BYTES) in body["detail"]
    assert str(REQUEST_MAX_BYTES) not in body["detail"]


def test_a_32_mib_upload_is_a_file_too_large_stating_the_upload_limit(daphne_server):
    org = make_org(name="Big files")
    owner = owner_of(org)
    token = issue_tokens(user=owner).access
    workspace = Workspace.all_orgs.create(organization=org, name="W", created_by=owner)
    files = {"file": ("big.txt", HUGE, "text/plain")}
    _assert_file_too_large(_post(f"{daphne_server.url}/api/chat/upload", token, files=files))
    _assert_file_too_large(_post(f"{daphne_server.url}/workspaces/{workspace.pk}/files", token, files=files))
    # between the two limits, the upload check itself answers the same
    files = {"file": ("big.txt", HUGE[: 12 * 1024 * 1024], "text/plain")}
    _assert_file_too_large(_post(f"{daphne_server.url}/api/chat/upload", token, files=files))


def test_a_body_over_the_request_limit_elsewhere_is_still_request_too_large(daphne_server):
    org = make_org(name="Big bodies")
    token = issue_tokens(user=owner_of(org)).access
    response = _post(
        f"{daphne_server.url}/workspaces",
        token,
        content=b'{"name": "' + HUGE + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413, response.text
    body = response.json()
    assert body["code"] == "request_too_large"
    assert str(REQUEST_MAX_BYTES) in body["detail"]
    # a multipart body to an endpoint that takes no files is no upload either
    files = {"file": ("big.txt", HUGE, "text/plain")}
    response = _post(f"{daphne_server.url}/workspaces", token, files=files)
    assert response.json()["code"] == "request_too_large"
