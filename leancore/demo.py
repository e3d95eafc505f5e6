"""Demo content for ``seed_demo``: specialists on the offline model, a workspace, a project and tasks."""

from __future__ import annotations

from accounts.models import User
from billing.selectors import balance
from core.credits import credit_str
from orgs.models import Organization
from specialists.models import Specialist
from tasks.models import Project, Task
from workspaces.models import Workspace

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
    specialists = []
    for spec in DEMO_SPECIALISTS:
        specialist, _ = Specialist.objects.alive().get_or_create(
            organization=org,
            name=spec["name"],
            defaults={**spec, "model": "local", "max_output_tokens": 512, "created_by": owner},
        )
        specialists.append(specialist)
    workspace, _ = Workspace.objects.get_or_create(
        organization=org,
        name="Q3 planning",
        defaults={"description": "Budget and launch plans for the quarter.", "created_by": owner},
    )
    project, _ = Project.objects.get_or_create(
        organization=org, name="Q3 launch", defaults={"workspace": workspace, "created_by": owner}
    )
    for title, assignee in (
        ("Draft the Q3 budget summary", specialists[0]),
        ("Answer the top five support questions", specialists[1]),
        ("Review the launch checklist", None),
    ):
        Task.objects.get_or_create(
            organization=org,
            project=project,
            title=title,
            defaults={
                "assignee_specialist": assignee,
                "assignee_user": None if assignee else owner,
                "created_by": owner,
            },
        )
    names = "; ".join(f"{s.name} ({s.title}, id {s.pk})" for s in specialists)
    return [
        f"credits:      {credit_str(balance(org=org).balance)}",
        f"specialists:  {names}",
        f"workspace:    {workspace.name} (id {workspace.pk}); project {project.name} with 3 tasks",
        "model:        local (offline, deterministic; set OPENAI_API_KEY or ANTHROPIC_API_KEY for real models)",
    ]
