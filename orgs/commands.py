"""What management commands of every app share about organizations."""

from __future__ import annotations

import uuid

from django.core.management.base import CommandError

from orgs.models import Organization


def find_org(value: str) -> Organization:
    """The organization a command's ``--org`` names, by id or slug; none is a CommandError."""
    try:
        org = Organization.objects.filter(pk=uuid.UUID(value)).first()
    except ValueError:
        org = Organization.objects.filter(slug=value).first()
    if org is None:
        raise CommandError(f"No organization with id or slug {value!r}.")
    return org
