"""Demo content for ``seed_demo``: specialists on the offline model, a chat, credits."""

from __future__ import annotations

from accounts.models import User
from billing.selectors import balance
from leancore.credits import credit_str
from orgs.models import Organization
from specialists.models import Specialist

DEMO_SPECIALISTS = [
    {
        "name": "Ada",
        "title": "Financial Analyst",
        "description": "Builds budgets, reads reports and explains the numbers.",
        "instructions": "You are a careful financial analyst. Show your working and state assumptions.",
    },
    {
        "name": "Grace",
        "title": "Support Lead",
        "description": "Answers customers kindly and escalates what she cannot solve.",
        "instructions": "Answer support questions briefly and kindly. Ask for details when needed.",
    },
    {
        "name": "Alan",
        "title": "Research Assistant",
        "description": "Finds, reads and summarizes documents you attach.",
        "instructions": "Summarize the attached documents faithfully and cite the file names.",
    },
]


def seed_demo_content(*, org: Organization, owner: User) -> list[str]:
    names = []
    for spec in DEMO_SPECIALISTS:
        specialist, _ = Specialist.objects.alive().get_or_create(
            organization=org,
            name=spec["name"],
            defaults={**spec, "model": "local", "max_output_tokens": 512, "created_by": owner},
        )
        names.append(f"{specialist.name} ({specialist.title}, id {specialist.pk})")
    return [
        f"credits:      {credit_str(balance(org=org).balance)}",
        "specialists:  " + "; ".join(names),
        "model:        local (offline, deterministic; set OPENAI_API_KEY or ANTHROPIC_API_KEY for real models)",
    ]
