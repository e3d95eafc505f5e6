"""One example body per write operation, in the contract's camelCase shapes."""

from __future__ import annotations

from leancore.schema.document import Document

_ID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"

# One example body per write operation, in the contract's camelCase shapes.
REQUEST_EXAMPLES: dict[tuple[str, str], dict[str, object]] = {
    ("/auth/login", "post"): {"email": "ada@example.com", "password": "correct horse battery staple"},
    ("/auth/refresh", "post"): {"refreshToken": "eyJhbGciOi…"},
    ("/auth/logout", "post"): {"refreshToken": "eyJhbGciOi…"},
    ("/auth/accept-invite", "post"): {
        "token": "the token from the email",
        "password": "a long new password",
        "name": "Bo",
    },
    ("/auth/password-reset", "post"): {"email": "ada@example.com"},
    ("/auth/password-reset/confirm", "post"): {"token": "the token from the email", "password": "a long new password"},
    ("/users/me/password", "post"): {"currentPassword": "the old one", "newPassword": "a long new password"},
    ("/register", "post"): {
        "organizationName": "Acme",
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "password": "correct horse battery staple",
    },
    ("/orgs/{id}", "put"): {"name": "Acme Ltd", "monthlyBudget": "500.000000", "lowBalanceThreshold": "25.000000"},
    ("/orgs/{id}/billing-email", "patch"): {"billingEmail": "billing@example.com"},
    ("/orgs/{orgId}/api-keys", "post"): {
        "name": "CI server",
        "role": "member",
        "monthlyCreditLimit": "50.000000",
        "expiresAt": "2027-01-01T00:00:00Z",
    },
    ("/users/invite", "post"): {"email": "bo@example.com", "role": "member", "name": "Bo"},
    ("/users/{id}", "put"): {"name": "Bo Builder"},
    ("/users/{id}/role", "patch"): {"role": "admin"},
    ("/users/{id}/quota", "patch"): {"monthlyCreditLimit": "50.000000"},
    ("/specialists", "post"): {
        "name": "Ada",
        "title": "Bookkeeper",
        "instructions": "Reconcile invoices against payments; be precise.",
        "model": "gpt-4o-mini",
        "temperature": 0.2,
        "maxOutputTokens": 1000,
        "toolIds": [_ID],
        "monthlyCreditLimit": "50.000000",
    },
    ("/specialists/{id}", "put"): {
        "name": "Ada",
        "model": "gpt-4o-mini",
        "title": "Lead Bookkeeper",
        "status": "paused",
    },
    ("/specialists/wizard", "post"): {"brief": "A bookkeeper who reconciles invoices every month", "create": False},
    ("/api/chat/stream", "post"): {"specialistId": _ID, "message": "What changed in Q3?"},
    ("/api/chat/async", "post"): {"specialistId": _ID, "message": "Draft the monthly report", "attachmentIds": [_ID]},
    ("/api/chat/upload", "post"): {"file": "(the file's bytes)", "sessionId": _ID},
    ("/orgs/{orgId}/mcps", "post"): {
        "name": "CRM",
        "url": "https://mcp.example.com/mcp",
        "transport": "streamable_http",
        "authType": "bearer",
        "token": "the server's API token",
    },
    ("/orgs/{orgId}/mcps/{id}", "put"): {"name": "CRM (prod)", "enabled": True},
    ("/orgs/{orgId}/mcps/{id}/tools/{toolId}", "patch"): {"enabled": False},
    ("/orgs/{orgId}/webhooks", "post"): {"url": "https://hooks.example.com/leancore", "events": ["alert.raised"]},
    ("/orgs/{orgId}/webhooks/{id}", "put"): {"events": ["alert.raised", "turn.failed"], "enabled": True},
    ("/billing/credits/grant", "post"): {"amount": "100.000000", "reason": "Pilot credits"},
    ("/billing/alerts/acknowledge", "post"): {"alertIds": [_ID]},
    ("/billing/circuit/toggle", "post"): {"state": "open", "reason": "Unexpected spend; investigating"},
    ("/workspaces", "post"): {"name": "Q3 close", "description": "Everything for the quarter's books"},
    ("/workspaces/{id}", "put"): {"name": "Q3 close", "description": "Books for Q3, due 10 October"},
    ("/workspaces/{id}/files", "post"): {"file": "(the file's bytes)"},
    ("/projects", "post"): {"name": "Q3 close", "description": "", "status": "active", "workspaceId": _ID},
    ("/projects/{id}", "put"): {"name": "Q3 close", "status": "archived"},
    ("/tasks", "post"): {
        "title": "Reconcile September invoices",
        "priority": "high",
        "projectId": _ID,
        "assigneeSpecialistId": _ID,
        "dueDate": "2026-10-05",
    },
    ("/tasks/{id}", "put"): {"title": "Reconcile September invoices", "status": "todo", "assigneeUserId": _ID},
}


def add_request_examples(result: Document) -> None:
    for (path, method), body in REQUEST_EXAMPLES.items():
        operation = result.get("paths", {}).get(path, {}).get(method)
        if operation is None or "requestBody" not in operation:
            continue
        for content in operation["requestBody"]["content"].values():
            content.setdefault("examples", {"example": {"summary": "A typical request", "value": body}})
