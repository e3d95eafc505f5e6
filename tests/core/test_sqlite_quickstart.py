"""The quick start's database: SQLite, through a real server. The turn's hot path reads by hand
(``core.db``) and must read the same rows, decimals and times on SQLite as the ORM would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal

import httpx

from tests.servers import ROOT, Daphne


def _events(text: str) -> list[tuple[str, dict]]:
    found = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        found.append((fields["event"], json.loads(fields["data"])))
    return found


def test_demo_data_and_chat_turns_on_sqlite(tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("REDIS_URL", "DB_POOL_SIZE") and not key.startswith("PYTEST")
    }
    env.update(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "DEBUG": "false",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "MEDIA_ROOT": str(tmp_path / "media"),
        }
    )
    for command in (["migrate", "--noinput"], ["seed_demo", "--i-know"]):  # DEBUG off: the known password asked for
        done = subprocess.run(
            [sys.executable, "manage.py", *command], cwd=ROOT, env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
    server = Daphne(env)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            login = client.post("/auth/login", json={"email": "demo@leancore.local", "password": "demo-Passw0rd!"})
            assert login.status_code == 200, login.text
            client.headers["authorization"] = f"Bearer {login.json()['accessToken']}"
            before = Decimal(client.get("/billing/credits/balance").json()["balance"])
            specialist = client.get("/specialists").json()["results"][0]
            stream = {"accept": "text/event-stream"}
            body = {"specialistId": specialist["id"], "message": "Plan our Q3 budget"}
            charged = Decimal(0)
            session_id = None
            for _ in range(2):  # a new session, then a follow-up that reads its history
                if session_id:
                    body["sessionId"] = session_id
                response = client.post("/api/chat/stream", json=body, headers=stream)
                assert response.status_code == 200, response.text
                events = _events(response.text)
                names = [name for name, _ in events]
                assert names[0] == "session", names
                assert names[-2:] == ["usage", "done"], names
                session_id = events[0][1]["sessionId"]
                usage = events[-2][1]
                assert Decimal(usage["credits"]) > 0
                charged += Decimal(usage["credits"])
                assert Decimal(usage["balance"]) == before - charged
            after = client.get("/billing/credits/balance").json()
            assert Decimal(after["balance"]) == before - charged
            assert Decimal(after["reserved"]) == 0
            usage = client.get("/billing/credits/usage").json()["results"]
            assert sum(-Decimal(entry["amount"]) for entry in usage[:2]) == charged
            messages = client.get(f"/api/chat/sessions/{session_id}").json()["messages"]
            assert [m["role"] for m in messages] == ["user", "assistant"] * 2
            assert all(m["status"] == "completed" for m in messages)
            assert sum(Decimal(m["usage"]["credits"]) for m in messages if m["usage"]) == charged
            # page-wide reads of many ids at once (``core.lookups.AnyOf``: ``IN`` on SQLite)
            members = client.get("/users").json()["results"]
            me = next(m for m in members if m["email"] == "demo@leancore.local")
            assert Decimal(me["spentThisPeriod"]) >= charged
            assert [org["role"] for org in client.get("/orgs").json()["results"]] == ["owner"]
            # not a member of another org: refused before anything is held
            response = client.post("/api/chat/stream", json=body, headers={**stream, "x-org-id": str(session_id)})
            assert response.status_code == 403, response.text
    finally:
        server.stop()
