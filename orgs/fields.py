"""Serializer fields for ids in request bodies, looked up in the request's organization only."""

from __future__ import annotations

from typing import Any, Protocol, cast

from django.db.models import Model, QuerySet
from rest_framework import serializers

from accounts.models import User
from orgs.models import Membership, Organization


class _OrgScopedManager(Protocol):
    def all(self) -> QuerySet[Model]: ...

    def for_org(self, org: Organization) -> QuerySet[Model]: ...


class OrgRelatedField(serializers.PrimaryKeyRelatedField[Model]):
    """A foreign key from a request body, looked up inside the request's org only. Unknown and
    other-org ids get the same 400 naming the field."""

    default_error_messages = {
        "does_not_exist": "Not found in this organization.",
        "incorrect_type": "Must be an id (UUID).",
    }

    def __init__(self, *, model: type[Model], **kwargs: Any) -> None:  # DRF's field options, handed on
        self.model = model
        self.manager = cast(_OrgScopedManager, model._default_manager)  # an OrgScopedQuerySet's manager
        kwargs.setdefault("queryset", self.manager.all())
        super().__init__(**kwargs)

    def get_queryset(self) -> QuerySet[Model]:
        request = self.context["request"]
        queryset = self.manager.for_org(request.org_context.org)
        if hasattr(queryset, "alive"):  # deleted specialists are gone
            alive: QuerySet[Model] = queryset.alive()
            return alive
        return queryset

    def to_internal_value(self, data: object) -> Model:
        try:
            return super().to_internal_value(data)  # type: ignore[arg-type]  # a raw id (the stubs say a model)
        except serializers.ValidationError:
            raise
        except Exception:  # a malformed id
            self.fail("does_not_exist", pk_value=data)


class OrgMemberField(OrgRelatedField):
    """A user id that must name an active member of the request's org."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(model=User, **kwargs)

    def get_queryset(self) -> QuerySet[Model]:
        org = self.context["request"].org_context.org
        return self.model._default_manager.filter(
            memberships__organization=org, memberships__status=Membership.Status.ACTIVE
        )
