from __future__ import annotations

import pytest

from tests.servers import Daphne, server_env


@pytest.fixture(scope="session")
def daphne_server(django_db_setup, django_db_blocker, _fake_llm_server):
    """One Daphne process per test session (per xdist worker) on the test database."""
    with django_db_blocker.unblock():
        env = server_env(
            {
                "OPENAI_BASE_URL": f"{_fake_llm_server.url}/v1",
                "OPENAI_API_KEY": "sk-test",
                "ANTHROPIC_BASE_URL": _fake_llm_server.url,
                "ANTHROPIC_API_KEY": "sk-ant-test",
            }
        )
        server = Daphne(env)
    server.env = env
    yield server
    server.stop()
