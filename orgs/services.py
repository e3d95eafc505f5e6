"""Organization and membership writes."""

from __future__ import annotations

import secrets
import uuid
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import OneTimeToken, User
from accounts.services import (
    check_password_strength,
    consume_one_time_token,
    create_one_time_token,
    token_email_text,
    unused_tokens,
)
from core.errors import InvalidTokenError, NotFoundError, PermissionDeniedError, ValidationFailed
from core.mail import send_on_commit
from orgs import selectors
from orgs.context import OrgContext
from orgs.errors import AlreadyMemberError, LastOwnerError
from orgs.models import Invitation, Membership, Organization, Role
from orgs.realtime import announce_membership_changed

UNSET = object()


def _unique_slug(name: str) -> str:
    base = slugify(name)[:60] or "org"
    slug = base
    while Organization.objects.filter(slug=slug).exists():
        slug = f"{base}-{secrets.token_hex(3)}"
    return slug


def create_organization(*, name: str, owner: User, billing_email: str = "") -> Organization:
    """Creates the org and its owner membership. Its credit account is billing's: the flow that opens
    an organization for use (``signup.services.open_organization``) composes both."""
    for _ in range(5):
        try:
            with transaction.atomic():
                org = Organization.objects.create(
                    name=name, slug=_unique_slug(name), billing_email=billing_email or owner.email
                )
                Membership.objects.create(
                    organization=org,
                    user=owner,
                    role=Role.OWNER,
                    status=Membership.Status.ACTIVE,
                    joined_at=timezone.now(),
                )
                return org
        except IntegrityError:  # a concurrent sign-up took the slug; pick another
            continue
    raise ValidationFailed("organizationName", "Could not find a free address for this organization name.")


@transaction.atomic
def register(*, organization_name: str, name: str, email: str, password: str) -> tuple[User, Organization]:
    email = email.strip().lower()
    if User.objects.filter(email__iexact=email).exists():
        raise ValidationFailed("email", "An account with this email already exists.")
    check_password_strength(password=password, user=User(email=email, name=name))
    user = User.objects.create_user(email=email, password=password, name=name)
    org = create_organization(name=organization_name, owner=user)
    return user, org


def update_organization(
    *,
    org: Organization,
    name: str,
    monthly_budget: Decimal | object | None = UNSET,
    low_balance_threshold: Decimal | object | None = UNSET,
) -> Organization:
    org.name = name
    fields = ["name", "updated_at"]
    if isinstance(monthly_budget, Decimal | None):
        org.monthly_budget = monthly_budget
        fields.append("monthly_budget")
    if isinstance(low_balance_threshold, Decimal | None):
        org.low_balance_threshold = low_balance_threshold
        fields.append("low_balance_threshold")
    org.save(update_fields=fields)
    return org


def set_billing_email(*, org: Organization, billing_email: str) -> Organization:
    org.billing_email = billing_email
    org.save(update_fields=["billing_email", "updated_at"])
    return org


# --- members --------------------------------------------------------------------------------


def _lock_org(org: Organization) -> None:
    """Serializes owner-count decisions for one org."""
    Organization.objects.select_for_update().filter(pk=org.pk).first()


def _member(org: Organization, user_id: uuid.UUID) -> Membership:
    membership: Membership | None = (
        Membership.objects.for_org(org).select_related("user").filter(user_id=user_id).first()
    )
    if membership is None:
        raise NotFoundError
    return membership


def get_member(*, org: Organization, user_id: uuid.UUID) -> Membership:
    return _member(org, user_id)


def _send_invitation(*, membership: Membership, inviter: User | None) -> None:
    # a new invitation to this org replaces its earlier ones (invitations to other orgs stay valid)
    earlier = unused_tokens(user=membership.user, purpose=OneTimeToken.Purpose.INVITE)
    earlier.filter(invitation__membership=membership).update(revoked_at=timezone.now())
    issued = create_one_time_token(
        user=membership.user, purpose=OneTimeToken.Purpose.INVITE, ttl=settings.INVITATION_TTL, revoke_earlier=False
    )
    Invitation.objects.create(membership=membership, token=issued.record)
    who = (inviter.name or inviter.email) if inviter else "An operator"
    body = token_email_text(
        intro=(
            f"{who} invited you to join {membership.organization.name} on LeanCore "
            f"as {membership.role}. The invitation expires in 7 days."
        ),
        token=issued.raw,
        path="accept-invite",
    )
    recipient = membership.user.email
    subject = f"You are invited to {membership.organization.name} on LeanCore"
    send_on_commit(subject, body, [recipient])


@transaction.atomic
def invite_member(
    *, context: OrgContext, inviter: User, email: str, role: str, name: str = ""
) -> tuple[Membership, bool]:
    """Returns (membership, created). An active account is added directly; a new email gets an invitation."""
    if role == Role.OWNER and not context.has_role(Role.OWNER):
        raise PermissionDeniedError("Only an owner may invite an owner.")
    org = context.org
    email = email.strip().lower()
    user = User.objects.filter(email__iexact=email).first()
    if user is None:
        user = User.objects.create_user(email=email, password=None, name=name, is_active=False)
    membership = Membership.objects.for_org(org).filter(user=user).first()
    if membership is not None and membership.status == Membership.Status.ACTIVE:
        raise AlreadyMemberError
    if membership is not None:  # already invited: re-send with a new token (the old one stops working)
        membership.role = role
        membership.invited_by = inviter
        membership.save(update_fields=["role", "invited_by"])
        _send_invitation(membership=membership, inviter=inviter)
        return membership, False
    if user.is_active:
        membership = Membership.objects.create(
            organization=org,
            user=user,
            role=role,
            status=Membership.Status.ACTIVE,
            invited_by=inviter,
            joined_at=timezone.now(),
        )
        return membership, True
    membership = Membership.objects.create(
        organization=org, user=user, role=role, status=Membership.Status.INVITED, invited_by=inviter
    )
    _send_invitation(membership=membership, inviter=inviter)
    return membership, True


@transaction.atomic
def accept_invitation(*, token: str, password: str, name: str) -> User:
    record = consume_one_time_token(token=token, purpose=OneTimeToken.Purpose.INVITE)
    invitation = Invitation.objects.select_related("membership__organization").filter(token=record).first()
    membership = invitation.membership if invitation is not None else None
    if membership is None or membership.status != Membership.Status.INVITED:
        raise InvalidTokenError
    user = record.user
    check_password_strength(password=password, user=user)
    user.set_password(password)
    if name:
        user.name = name
    user.is_active = True
    user.save(update_fields=["password", "name", "is_active"])
    membership.status = Membership.Status.ACTIVE
    membership.joined_at = timezone.now()
    membership.save(update_fields=["status", "joined_at"])
    return user


@transaction.atomic
def change_role(*, context: OrgContext, user_id: uuid.UUID, role: str) -> Membership:
    _lock_org(context.org)
    membership = _member(context.org, user_id)
    touches_owner = Role.OWNER in (role, membership.role)
    if touches_owner and not context.has_role(Role.OWNER):
        raise PermissionDeniedError("Only an owner may grant or revoke the owner role.")
    if role != Role.OWNER and selectors.is_last_active_owner(membership):
        raise LastOwnerError
    membership.role = role
    membership.save(update_fields=["role"])
    org_id, member_id = context.org.pk, membership.user_id  # open sockets read their access again
    transaction.on_commit(lambda: announce_membership_changed(org_id=org_id, user_id=member_id))
    return membership


@transaction.atomic
def remove_member(*, context: OrgContext, actor: User, user_id: uuid.UUID) -> None:
    _lock_org(context.org)
    membership = _member(context.org, user_id)
    is_self = membership.user_id == actor.pk
    if not is_self:
        if not context.has_role(Role.ADMIN):
            raise PermissionDeniedError("Only an admin may remove other members.")
        if membership.role == Role.OWNER and not context.has_role(Role.OWNER):
            raise PermissionDeniedError("Only an owner may remove an owner.")
    if selectors.is_last_active_owner(membership):
        raise LastOwnerError
    membership.delete()  # its invitation tokens go with it
    org_id, user_id = context.org.pk, membership.user_id
    transaction.on_commit(lambda: announce_membership_changed(org_id=org_id, user_id=user_id))


def update_member_profile(*, context: OrgContext, actor: User, user_id: uuid.UUID, name: str) -> Membership:
    membership = _member(context.org, user_id)
    if membership.user_id != actor.pk and not context.has_role(Role.ADMIN):
        raise PermissionDeniedError("Only an admin may change another member's profile.")
    membership.user.name = name
    membership.user.save(update_fields=["name"])
    return membership
