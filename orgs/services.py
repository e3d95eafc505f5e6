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
from core.credits import quantize_credits
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
    """A new account (or the unclaimed one that invitations to this address made: its pending
    invitations wait for it to accept them) and its organization."""
    email = email.strip().lower()
    existing = User.objects.select_for_update().filter(email__iexact=email).first()
    if existing is not None and not is_unclaimed(existing):
        raise ValidationFailed("email", "An account with this email already exists.")
    check_password_strength(password=password, user=existing or User(email=email, name=name))
    if existing is None:
        user = User.objects.create_user(email=email, password=password, name=name)
    else:
        user = existing
        user.set_password(password)
        user.name = name
        user.is_active = True
        user.save(update_fields=["password", "name", "is_active"])
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
            f"as {membership.role}. The invitation expires in 7 days. If you already have a LeanCore "
            "account, sign in and accept it with the token below; otherwise choose a password with it."
        ),
        token=issued.raw,
        path="accept-invite",
    )
    subject = f"You are invited to {membership.organization.name} on LeanCore"
    send_on_commit(subject, body, [membership.invited_email or membership.user.email])


def is_unclaimed(user: User) -> bool:
    """An account made only to hold invitations to an address nobody has signed up with: never
    active, no password, never signed in, a member of nothing. An account an operator deactivated
    is not one (an invitation never re-activates it)."""
    return (
        not user.is_active
        and not user.has_usable_password()
        and user.last_login is None
        and not Membership.objects.across_orgs("whether the user belongs to any org")
        .filter(user=user, status=Membership.Status.ACTIVE)
        .exists()
    )


@transaction.atomic
def invite_member(
    *, context: OrgContext, inviter: User, email: str, role: str, name: str = ""
) -> tuple[Membership, bool]:
    """Returns (membership, created): a pending membership and an email with a one-time token, the
    same whether the address has an account or not (the answer shows the invitation's own email and
    name). An existing account is never changed, and joins only when its user accepts while signed
    in; a new address gets an unclaimed account that accepting (or signing up) claims."""
    if role == Role.OWNER and not context.has_role(Role.OWNER):
        raise PermissionDeniedError("Only an owner may invite an owner.")
    org = context.org
    email = email.strip().lower()
    user = User.objects.filter(email__iexact=email).first()
    if user is None:
        user = User.objects.create_user(email=email, password=None, is_active=False)
    membership = Membership.objects.for_org(org).select_related("organization", "user").filter(user=user).first()
    if membership is not None and membership.status == Membership.Status.ACTIVE:
        raise AlreadyMemberError
    created = membership is None
    if membership is None:
        membership = Membership.objects.create(
            organization=org,
            user=user,
            role=role,
            status=Membership.Status.INVITED,
            invited_by=inviter,
            invited_email=email,
            invited_name=name,
        )
    else:  # already invited: re-send with a new token (the old one stops working)
        membership.role = role
        membership.invited_by = inviter
        membership.invited_email = email
        membership.invited_name = name or membership.invited_name
        membership.save(update_fields=["role", "invited_by", "invited_email", "invited_name"])
    _send_invitation(membership=membership, inviter=inviter)
    return membership, created


def _take_invitation(token: str) -> Membership:
    """The pending membership a valid invitation token opens, the token marked used (undone with
    the transaction when the caller refuses it); anything else → 400 invalid_token."""
    record = consume_one_time_token(token=token, purpose=OneTimeToken.Purpose.INVITE)
    invitation = (
        Invitation.objects.across_orgs("an invitation token names its record")
        .select_related("membership__organization", "membership__user")
        .filter(token=record)
        .first()
    )
    membership = invitation.membership if invitation is not None else None
    if membership is None or membership.status != Membership.Status.INVITED or membership.user_id != record.user_id:
        raise InvalidTokenError
    return membership


def _join(membership: Membership) -> Membership:
    membership.status = Membership.Status.ACTIVE
    membership.joined_at = timezone.now()
    membership.save(update_fields=["status", "joined_at"])
    return membership


@transaction.atomic
def accept_invitation(*, token: str, password: str, name: str) -> User:
    """Accepting as a newcomer: the unclaimed account of the invited address gets its password and
    name and joins. For an address that has an account (active, or deactivated by an operator) →
    400 invalid_token, and the token stays unused: its user accepts while signed in
    (``join_by_invitation``)."""
    membership = _take_invitation(token)
    user = User.objects.select_for_update().get(pk=membership.user_id)
    if not is_unclaimed(user):
        raise InvalidTokenError
    check_password_strength(password=password, user=user)
    user.set_password(password)
    user.name = name or membership.invited_name
    user.is_active = True
    user.save(update_fields=["password", "name", "is_active"])
    _join(membership)
    return user


@transaction.atomic
def join_by_invitation(*, token: str, user: User) -> Membership:
    """Accepting while signed in: the invitation must be to the caller's own account (else 400
    invalid_token, the token unused); nothing of the account changes."""
    membership = _take_invitation(token)
    if membership.user_id != user.pk or not user.is_active:
        raise InvalidTokenError
    return _join(membership)


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
    """A member's name; for a pending invitation, the invitation's own name (never the account's)."""
    membership = _member(context.org, user_id)
    if membership.user_id != actor.pk and not context.has_role(Role.ADMIN):
        raise PermissionDeniedError("Only an admin may change another member's profile.")
    if membership.status == Membership.Status.INVITED:
        membership.invited_name = name
        membership.save(update_fields=["invited_name"])
        return membership
    membership.user.name = name
    membership.user.save(update_fields=["name"])
    return membership


def set_member_quota(
    *, context: OrgContext, actor: User, user_id: uuid.UUID, monthly_credit_limit: Decimal | None
) -> Membership:
    """A member's monthly credit cap (None removes it), checked before each of their calls. An admin
    sets other members' and admins' caps, never their own; only an owner sets an owner's (their own
    included)."""
    membership = _member(context.org, user_id)
    is_owner = context.has_role(Role.OWNER)
    if not context.has_role(Role.ADMIN):
        raise PermissionDeniedError("Only an admin may set a member's quota.")
    if membership.user_id == actor.pk and not is_owner:
        raise PermissionDeniedError("An admin may not set their own quota; an owner may.")
    if membership.role == Role.OWNER and not is_owner:
        raise PermissionDeniedError("Only an owner may set an owner's quota.")
    membership.monthly_credit_limit = None if monthly_credit_limit is None else quantize_credits(monthly_credit_limit)
    membership.save(update_fields=["monthly_credit_limit"])
    return membership
