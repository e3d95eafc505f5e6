"""Demo content for ``seed_demo``: specialists on the offline model, a second member, a workspace with a
file, a project with tasks, spend past half the monthly budget (so a budget alert is waiting), and a
connection to the demo MCP server (``leancore.demo_mcp``) whose tools the specialists may use. Every
step is safe to run again."""

from __future__ import annotations

import math
from decimal import Decimal

from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from billing.models import BudgetAlert, CreditAccount
from billing.selectors import balance
from billing.services import active_rate, grant_credits, reserve, settle
from core.credits import credit_str
from core.errors import DomainError
from core.url_guard import UrlNotAllowedError
from mcps.models import Connection
from mcps.services import create_connection, sync_connection
from orgs.context import OrgContext
from orgs.models import Membership, Organization, Role
from specialists.models import Specialist
from specialists.services import set_specialist_tools
from tasks.models import Project, Task
from workspaces.models import Workspace, WorkspaceFile
from workspaces.services import add_file

MEMBER_EMAIL = "member@leancore.local"
MEMBER_NAME = "Sam Member"
MCP_CONNECTION_NAME = "Demo tools"
# the share of the monthly budget already spent: past the 50 % alert, short of the 80 % one
SPENT_SHARE = Decimal("0.55")
BUDGET_FILE = "q3-budget.md"
BUDGET_TEXT = """# Q3 budget (draft)

| Item                 | Monthly (EUR) |
|----------------------|---------------|
| Cloud hosting        | 1,250         |
| Support contractors  | 3,400         |
| Marketing            | 2,100         |

Open questions: the launch event (about 8,000 EUR once) and a second support hire.
Customers to watch: Initech (invoice INV-1002 open), Umbrella (INV-1003 overdue).
"""
EXAMPLE_PROMPTS = (
    'calculate expression="1250 * 12 * 1.08"',
    "lookup_customer name=Initech",
    "lookup_invoice invoice_id=INV-1003",
)

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


def seed_member(*, org: Organization, password: str) -> User:
    """A second, plain member of the demo organization."""
    user = User.objects.filter(email=MEMBER_EMAIL).first()
    if user is None:
        user = User.objects.create_user(email=MEMBER_EMAIL, password=password, name=MEMBER_NAME)
    else:
        user.set_password(password)
        user.save(update_fields=["password"])
    Membership.objects.get_or_create(
        organization=org,
        user=user,
        defaults={"role": Role.MEMBER, "status": Membership.Status.ACTIVE, "joined_at": timezone.now()},
    )
    return user


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
    if not WorkspaceFile.objects.for_org(org).filter(workspace=workspace, filename=BUDGET_FILE).exists():
        upload = SimpleUploadedFile(BUDGET_FILE, BUDGET_TEXT.encode(), content_type="text/markdown")
        membership = Membership.objects.get(organization=org, user=owner)
        add_file(
            context=OrgContext(org=org, membership=membership, is_staff=owner.is_staff),
            workspace=workspace,
            upload=upload,
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
        f"specialists:  {names}",
        f"workspace:    {workspace.name} (id {workspace.pk}) with {BUDGET_FILE}; project {project.name} with 3 tasks",
        "model:        local (offline, deterministic; set OPENAI_API_KEY or ANTHROPIC_API_KEY for real models)",
    ]


def seed_spend(*, org: Organization, owner: User) -> list[str]:
    """Usage this month past half the monthly budget, charged like any call (reserve, then settle), so
    billing raises its 50 % budget alert; the next one comes at 80 %."""
    org.refresh_from_db()
    budget = org.monthly_budget
    lines = []
    if budget is not None and budget > 0:
        account = CreditAccount.objects.get(organization=org)
        target = (budget * SPENT_SHARE).quantize(Decimal("0.000001"))
        missing = target - account.period_spent
        if missing > 0:
            rate = active_rate("local")
            tokens = math.ceil(missing * 1_000_000 / rate.input_credits_per_million)
            available = account.balance - account.reserved
            if available < missing * 2:  # keep as much again for chatting
                grant_credits(org=org, amount=(missing * 2 - available).quantize(Decimal(1)) + 1, reason="Demo credits")
            ada = Specialist.objects.alive().filter(organization=org, name="Ada").first()
            with transaction.atomic():
                hold = reserve(
                    org=org,
                    model=rate.model,
                    input_tokens=tokens,
                    max_output_tokens=0,
                    specialist_id=ada.pk if ada else None,
                    specialist_name=ada.name if ada else "",
                    user_id=owner.pk,
                    rate=rate,
                )
                settle(
                    reservation_id=hold.reservation_id,
                    input_tokens=tokens,
                    output_tokens=0,
                    description="Demo: reading last quarter's reports",
                )
        account.refresh_from_db()
        lines.append(
            f"budget:       {credit_str(account.period_spent)} of {credit_str(budget)} credits spent this month"
        )
    alerts = BudgetAlert.objects.for_org(org).filter(acknowledged_at__isnull=True).order_by("created_at")
    lines.append(f"alerts:       {'; '.join(a.message for a in alerts) or 'none'} (GET /billing/alerts)")
    lines.append(f"credits:      {credit_str(balance(org=org).balance)}")
    return lines


def seed_demo_mcp(*, org: Organization, url: str) -> list[str]:
    """The connection to the demo MCP server, synced, and its tools allowed to every demo specialist.
    A server that is not running (or a URL the SSRF guard refuses) leaves the connection pending or in
    error, with the reason; running ``seed_demo`` (or ``sync_mcp``) again later connects it."""
    connection = Connection.objects.for_org(org).filter(name=MCP_CONNECTION_NAME).first()
    try:
        if connection is None:
            connection = create_connection(
                org=org, data={"name": MCP_CONNECTION_NAME, "url": url, "transport": "streamable_http"}
            )
        elif connection.url != url:
            Connection.objects.for_org(connection.organization_id).filter(pk=connection.pk).update(
                url=url, status=Connection.Status.PENDING
            )
            connection.refresh_from_db()
    except UrlNotAllowedError as exc:
        if connection is None:  # kept, so that allowing the URL and syncing is all that is left
            connection = Connection.objects.create(organization=org, name=MCP_CONNECTION_NAME, url=url)
        Connection.objects.for_org(connection.organization_id).filter(pk=connection.pk).update(
            status=Connection.Status.ERROR, last_error=exc.detail
        )
        return [
            f"MCP tools:    {url}: error ({exc.detail}) Set MCP_ALLOWED_PRIVATE_URLS to its origin "
            "(run.sh does) and run seed_demo again."
        ]
    try:
        result = sync_connection(connection=connection)
    except DomainError as exc:
        connection.refresh_from_db()
        return [
            f"MCP tools:    {url}: {connection.status} ({exc.detail}) Start it with "
            "`python -m leancore.demo_mcp` and run seed_demo (or sync_mcp) again."
        ]
    demo_names = [spec["name"] for spec in DEMO_SPECIALISTS]
    for specialist in Specialist.objects.alive().filter(organization=org, name__in=demo_names):
        kept = [tool for tool in specialist.tools.all() if tool.connection_id != connection.pk]
        set_specialist_tools(specialist=specialist, tools=kept + [t for t in result.tools if t.enabled])
    names = ", ".join(tool.name for tool in result.tools)
    return [
        f"MCP tools:    {url}: connected, tools {names} (allowed to every demo specialist)",
        "try a tool:   chat with a specialist and say, e.g.: " + " | ".join(EXAMPLE_PROMPTS),
    ]
