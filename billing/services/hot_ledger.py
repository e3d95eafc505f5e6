"""The ledger's hot path on PostgreSQL: a hold, a settlement and a release, each one statement that
locks the org's account row only for its own arithmetic (a conditional ``UPDATE … RETURNING``, the
reservation and the ledger entry written by the same statement). One org's calls serialize on that
row, so the time it is locked is what bounds one org's calls per second.

Every statement names its org: a hold by the org it is for; a settlement and a release find the
hold by its own id (a UUID only its caller knows) and lock the account of the hold's org. Where two
rows are locked, the hold's comes first, then its account's (as ``metering._locked_hold`` does), so
that no two of them wait on each other. A statement that finds no room (or no hold) writes nothing
and returns None: the caller's read-lock-write path then says why (the contract's 402, in its order)
or does the work (an org without an account yet, a hold settled already, SQLite).

Times: an account's ``updated_at`` only moves forward, one microsecond at least per change, and a
usage entry is stamped with it, so that entries in the order of their time are in the order of the
account's changes (each ``balance_after`` follows from the one before) even when two calls read the
clock in one order and reach the row in the other. A payer's spend is counted in the period of the
settlement's clock, the period its entry is dated in."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache

from billing.models import Circuit, CreditAccount, LedgerEntry, ModelRate, PayerSpend, Reservation
from billing.services.alerts import no_alert_due_sql
from billing.services.spend import committed_sql
from core import db
from orgs.models import Organization

ACCOUNT = CreditAccount._meta.db_table
RESERVATION = Reservation._meta.db_table
LEDGER = LedgerEntry._meta.db_table
SPEND = PayerSpend._meta.db_table
PAYERS = ", ".join(f"('{payer.value}', r.{payer.value})" for payer in PayerSpend.Payer)  # a hold's payers
ACTIVE, SETTLED, RELEASED = (
    Reservation.Status.ACTIVE.value,
    Reservation.Status.SETTLED.value,
    Reservation.Status.RELEASED.value,
)
# The account's next time: now, or a microsecond after its last change if that change is less than a
# minute ahead of this call's clock (two calls that read the clock in one order and reached the row
# in the other: under load a call waits seconds for the row, and a bound of one second dated such a
# call before the change it follows); a clock set further back than that is taken as it is.
NEXT_TICK = (
    "CASE WHEN {alias}.updated_at >= %(now)s AND {alias}.updated_at < %(now)s + interval '1 minute' "
    "THEN {alias}.updated_at + interval '1 microsecond' ELSE %(now)s END"
)
# A settlement's cost at the rates its hold pinned: core.credits.token_cost (products are exact in
# numeric, and ROUND is half up for a positive value). tests/billing/test_hot_ledger checks they agree.
# In a statement that is a transaction of its own (autocommit): its commit does not wait for the disk.
COMMIT_WITHOUT_WAITING = "set_config('synchronous_commit', 'off', true)"
COST = (
    "ROUND((%(input_tokens)s::numeric * r.input_credits_per_million"
    " + %(output_tokens)s::numeric * r.output_credits_per_million) * 0.000001, 6)"
)


@dataclass(frozen=True, slots=True)
class Caps:
    """The monthly caps a hold is checked against after the org's balance and budget (None: none)."""

    specialist_id: uuid.UUID | None = None
    specialist_limit: Decimal | None = None
    user_id: uuid.UUID | None = None
    member_limit: Decimal | None = None
    api_key_id: uuid.UUID | None = None
    key_limit: Decimal | None = None

    def checked(self) -> tuple[bool, bool, bool]:
        """Which of the specialist's, the member's and the key's cap this hold is checked against."""
        return (
            self.specialist_id is not None and self.specialist_limit is not None,
            self.user_id is not None and self.member_limit is not None,
            self.api_key_id is not None and self.key_limit is not None,
        )


@dataclass(frozen=True, slots=True)
class NewHold:
    """The hold to write: its id, its org, its worst case and what its settlement will need."""

    id: uuid.UUID
    org_id: uuid.UUID
    amount: Decimal
    rate: ModelRate
    specialist_name: str
    session_id: uuid.UUID | None
    message_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class Settled:
    """A settlement's outcome, with what the org's alerts are checked against."""

    charge: Decimal
    balance: Decimal
    period_spent: Decimal
    model: str
    org_id: uuid.UUID
    org_name: str
    billing_email: str
    monthly_budget: Decimal | None
    low_balance_threshold: Decimal | None


CAP_COLUMNS = (
    ("specialist_id", "specialist", "specialist_limit"),
    ("user_id", "user", "member_limit"),
    ("api_key_id", "api_key", "key_limit"),
)


@cache
def _locked_caps_sql(checked: tuple[bool, bool, bool]) -> str:
    since = "GREATEST(a.period_start, %(start)s)"
    committed = ", ".join(
        committed_sql(column, org="%(org)s", payer=f"%({payer})s", since=since, counted=True)
        for on, (column, payer, _) in zip(checked, CAP_COLUMNS, strict=True)
        if on
    )
    # whether the account is as this statement's snapshot saw it: no hold or settlement of the org
    # committed between the snapshot and the lock (each changes the account row), so the figures
    # read with it are exact
    return (
        f"SELECT a.xmin = (SELECT s.xmin FROM {ACCOUNT} s WHERE s.id = a.id), {committed} "  # noqa: S608
        f"FROM {ACCOUNT} a WHERE a.organization_id = %(org)s FOR NO KEY UPDATE"
    )


def _lock_and_check_caps(params: dict[str, db.SqlValue], caps: Caps, checked: tuple[bool, bool, bool]) -> bool | None:
    """Locks the org's account (as an update would) and reads what each checked cap's payer has
    committed: whether every one has room (None when the figures may predate the lock, or the org has
    no account: the hold's statement reads them again, after the lock)."""
    found = db.fetch(_locked_caps_sql(checked), params, scope=db.InOrg(db.as_uuid(params["org"])))
    if not found or found[0][0] is not True:
        return None
    limits = [
        limit
        for on, limit in zip(checked, (caps.specialist_limit, caps.member_limit, caps.key_limit), strict=True)
        if on
    ]
    return all(
        db.as_decimal(committed) < db.as_decimal(limit) for committed, limit in zip(found[0][1:], limits, strict=True)
    )


@cache
def _lock_sql() -> str:
    """The org's account locked as an update would, in a transaction of its own that does not wait for
    the disk."""
    return (
        f"SELECT a.id, {COMMIT_WITHOUT_WAITING} FROM {ACCOUNT} a "  # noqa: S608
        "WHERE a.organization_id = %(org)s FOR NO KEY UPDATE"
    )


@cache
def _hold_sql(specialist: bool, member: bool, key: bool, alone: bool) -> str:
    spent = "CASE WHEN a.period_start < %(start)s THEN 0 ELSE a.period_spent END"  # rolled into this period
    since = "GREATEST(a.period_start, %(start)s)"
    caps = "".join(
        f" AND {committed_sql(column, org='%(org)s', payer=f'%({payer})s', since=since, counted=True)} < %({limit})s"
        for on, (column, payer, limit) in zip((specialist, member, key), CAP_COLUMNS, strict=True)
        if on
    )
    values = {
        "id": "%(id)s::uuid",
        "organization_id": "%(org)s::uuid",
        "account_id": "a.id",
        "amount": "%(hold)s::numeric",
        "model": "%(model)s::varchar",
        "input_credits_per_million": "%(input_rate)s::numeric",
        "output_credits_per_million": "%(output_rate)s::numeric",
        "specialist_id": "%(specialist)s::uuid",
        "specialist_name": "%(specialist_name)s::varchar",
        "session_id": "%(session)s::uuid",
        "message_id": "%(message)s::uuid",
        "user_id": "%(user)s::uuid",
        "api_key_id": "%(api_key)s::uuid",
        "status": f"'{ACTIVE}'",
        "charged": "NULL",
        "ledger_entry_id": "NULL",
        "created_at": "%(now)s::timestamptz",
        "closed_at": "NULL",
    }
    columns, expressions = _in_model_order(Reservation, values)
    return (
        f"WITH a AS (UPDATE {ACCOUNT} AS a SET reserved = a.reserved + %(hold)s, period_spent = {spent}, "  # noqa: S608
        f"period_start = {since}, updated_at = {NEXT_TICK.format(alias='a')} "
        f"FROM {Organization._meta.db_table} AS o "
        "WHERE a.organization_id = %(org)s AND o.id = a.organization_id "
        f"AND NOT EXISTS (SELECT 1 FROM {Circuit._meta.db_table} c WHERE c.organization_id = %(org)s "
        f"AND c.state = '{Circuit.State.OPEN.value}') "
        "AND %(hold)s <= a.balance - a.reserved "
        f"AND (o.monthly_budget IS NULL OR {spent} + a.reserved < o.monthly_budget){caps} "
        f"RETURNING a.id{', ' + COMMIT_WITHOUT_WAITING if alone else ''}) "
        f"INSERT INTO {RESERVATION} ({columns}) SELECT {expressions} FROM a RETURNING id"
    )


def hold(new: NewHold, caps: Caps, *, now: datetime, period_start: datetime, alone: bool = False) -> bool:
    """Holds ``new.amount`` on the org's account if the circuit is closed, the available balance covers
    it, the org's budget is not used up, nor any cap of ``caps`` (each counting open holds), and
    writes the hold: one statement. With a cap, one more before it: the account locked with the
    caps' spend read (exact unless a call of the org committed while it waited for the lock; the
    hold's statement then reads it again, after the lock). False, with nothing written, otherwise.
    ``alone``: a transaction of its own, committed without waiting for the disk; with a cap, its two
    statements are sent together (one round trip, the lock held for the server's time alone)."""
    params: dict[str, db.SqlValue] = {
        "org": new.org_id,
        "id": new.id,
        "hold": new.amount,
        "model": new.rate.model,
        "input_rate": new.rate.input_credits_per_million,
        "output_rate": new.rate.output_credits_per_million,
        "specialist": caps.specialist_id,
        "specialist_name": new.specialist_name[:200],
        "specialist_limit": caps.specialist_limit,
        "session": new.session_id,
        "message": new.message_id,
        "user": caps.user_id,
        "member_limit": caps.member_limit,
        "api_key": caps.api_key_id,
        "key_limit": caps.key_limit,
        "now": now,
        "start": period_start,
    }
    checked = caps.checked()
    scope = db.InOrg(new.org_id)
    if alone and any(checked):  # one round trip: the account locked, then the hold (its caps read after the lock)
        lock = db.Statement(_lock_sql(), params, scope)
        _, held = db.fetch_together(lock, db.Statement(_hold_sql(*checked, False), params, scope))
        return bool(held)
    if any(checked):
        room = _lock_and_check_caps(params, caps, checked)
        if room is False:
            return False  # a cap is reached: the caller's locked read says which rule refuses first
        if room:
            checked = (False, False, False)  # decided, exactly: the hold's statement need not read them
    return bool(db.fetch(_hold_sql(*checked, alone), params, scope=db.InOrg(db.as_uuid(params["org"]))))


@cache
def _settle_sql(alone: bool) -> str:
    entry = {
        "id": "%(entry)s::uuid",
        "organization_id": "a.organization_id",
        "kind": f"'{LedgerEntry.Kind.USAGE.value}'",
        "amount": "-a.charge",
        "balance_after": "a.balance",
        "model": "r.model",
        "input_tokens": "%(input_tokens)s::integer",
        "output_tokens": "%(output_tokens)s::integer",
        "specialist_id": "r.specialist_id",
        "specialist_name": "r.specialist_name",
        "session_id": "r.session_id",
        "message_id": "r.message_id",
        "user_id": "r.user_id",
        "api_key_id": "r.api_key_id",
        "package_id": "NULL",
        "description": "LEFT(CASE WHEN %(description)s::text <> '' THEN %(description)s::text "
        "ELSE %(described)s::text || r.model END, 500)",
        "created_at": "a.at",
    }
    columns, expressions = _in_model_order(LedgerEntry, entry)
    org = Organization._meta.db_table
    # alone (a transaction of its own, committed at once): only if no alert is due, whose raising
    # must commit with it (the caller's transaction then does both)
    guard = f" AND {no_alert_due_sql(figures='c', period_start='%(start)s')}" if alone else ""
    return (
        # the hold, locked first (settled already: no row)
        f"WITH r AS (SELECT r.*, {COST} AS cost{', ' + COMMIT_WITHOUT_WAITING if alone else ''} FROM {RESERVATION} r "  # noqa: S608
        f"WHERE r.id = %(id)s AND r.status IN ('{ACTIVE}', '{RELEASED}') FOR NO KEY UPDATE), "
        # then its org's account, locked: its figures as they are now
        f"old AS (SELECT a.* FROM {ACCOUNT} a WHERE a.id = (SELECT r.account_id FROM r) "
        "AND a.organization_id = (SELECT r.organization_id FROM r) FOR NO KEY UPDATE), "
        # the arithmetic: the hold given back (if still held), the period rolled, the cost charged
        # out of the available balance as far as it goes
        f"n AS (SELECT old.id, old.organization_id, old.balance, old.reserved - CASE WHEN r.status = '{ACTIVE}' "
        "THEN r.amount ELSE 0 END AS reserved, "
        "CASE WHEN old.period_start < %(start)s THEN 0 ELSE old.period_spent END AS period_spent, "
        f"GREATEST(old.period_start, %(start)s) AS period_start, {NEXT_TICK.format(alias='old')} AS at, r.cost, "
        f"o.monthly_budget, o.low_balance_threshold FROM old, r, {org} o WHERE o.id = old.organization_id), "
        "c AS (SELECT n.*, LEAST(n.cost, GREATEST(n.balance - n.reserved, 0)) AS charge FROM n), "
        f"a AS (UPDATE {ACCOUNT} AS a SET balance = c.balance - c.charge, reserved = c.reserved, "
        "period_spent = c.period_spent + c.charge, period_start = c.period_start, updated_at = c.at "
        f"FROM c WHERE a.id = c.id{guard} RETURNING a.organization_id, a.balance, a.period_spent, "
        "c.charge, c.at), "
        f"e AS (INSERT INTO {LEDGER} ({columns}) SELECT {expressions} FROM a, r), "
        # what each payer named by the hold spent this period, kept with the entry (the caps read it)
        f"p AS (INSERT INTO {SPEND} (id, organization_id, payer, payer_id, period_start, spent) "
        "SELECT gen_random_uuid(), a.organization_id, v.payer, v.payer_id, %(start)s, a.charge FROM a, r, "
        f"LATERAL (VALUES {PAYERS}) v(payer, payer_id) WHERE v.payer_id IS NOT NULL AND a.charge > 0 "
        "ON CONFLICT (organization_id, payer, payer_id, period_start) "
        f"DO UPDATE SET spent = {SPEND}.spent + EXCLUDED.spent) "
        f"UPDATE {RESERVATION} AS s SET status = '{SETTLED}', charged = a.charge, ledger_entry_id = %(entry)s, "
        f"closed_at = a.at FROM a, r, {org} AS o WHERE s.id = r.id AND s.organization_id = a.organization_id "
        "AND o.id = a.organization_id RETURNING a.charge, a.balance, a.period_spent, r.model, a.organization_id, "
        "o.name, o.billing_email, o.monthly_budget, o.low_balance_threshold"
    )


def settle(
    *,
    reservation_id: uuid.UUID,
    entry_id: uuid.UUID,
    input_tokens: int,
    output_tokens: int,
    description: str,
    now: datetime,
    period_start: datetime,
    alone: bool = False,
) -> Settled | None:
    """Settles an open (or released) hold in one statement: charges its cost at its pinned rates out of
    the available balance as far as it goes (the hold given back first), writes the usage entry
    ``entry_id`` and closes the hold. None, with nothing written, for a hold settled already or none.
    ``alone``: the statement is a transaction of its own, committed without waiting for the disk; it
    writes nothing either (None) when an alert is due, whose raising must commit with it."""
    params: dict[str, db.SqlValue] = {
        "id": reservation_id,
        "entry": entry_id,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "description": description,
        "described": f"{input_tokens} in + {output_tokens} out tokens on ",
        "now": now,
        "start": period_start,
    }
    found = db.fetch(_settle_sql(alone), params, scope=db.AcrossOrgs("a hold by its own id, with its account"))
    if not found:
        return None
    charge, balance, spent, model, org_id, name, email, budget, low = found[0]
    return Settled(
        charge=db.as_decimal(charge),
        balance=db.as_decimal(balance),
        period_spent=db.as_decimal(spent),
        model=db.as_str(model),
        org_id=db.as_uuid(org_id),
        org_name=db.as_str(name),
        billing_email=db.as_str(email),
        monthly_budget=db.as_optional_decimal(budget),
        low_balance_threshold=db.as_optional_decimal(low),
    )


@cache
def _release_sql() -> str:
    return (
        f"WITH r AS (SELECT r.id, r.account_id, r.organization_id, r.amount FROM {RESERVATION} r "  # noqa: S608
        f"WHERE r.id = %(id)s AND r.status = '{ACTIVE}' FOR NO KEY UPDATE), "
        f"a AS (UPDATE {ACCOUNT} AS a SET reserved = a.reserved - r.amount, updated_at = {NEXT_TICK.format(alias='a')} "
        "FROM r WHERE a.id = r.account_id AND a.organization_id = r.organization_id RETURNING a.organization_id) "
        f"UPDATE {RESERVATION} AS s SET status = '{RELEASED}', charged = 0, closed_at = %(now)s "
        "FROM r, a WHERE s.id = r.id AND s.organization_id = a.organization_id RETURNING s.id"
    )


def release(*, reservation_id: uuid.UUID, now: datetime) -> bool:
    """Gives an open hold back to its org's available balance, in one statement; False if it was not open."""
    release_sql = _release_sql()
    params: dict[str, db.SqlValue] = {"id": reservation_id, "now": now}
    return bool(db.fetch(release_sql, params, scope=db.AcrossOrgs("a hold by its own id, with its account")))


def _in_model_order(model: type[Reservation] | type[LedgerEntry], values: dict[str, str]) -> tuple[str, str]:
    """The column list and the value list of an INSERT … SELECT of every concrete field of ``model``."""
    columns = [str(field.column) for field in model._meta.concrete_fields]
    missing = set(columns) ^ set(values)
    if missing:
        raise LookupError(f"{model.__name__}: no value for {sorted(missing)}")
    return ", ".join(columns), ", ".join(values[column] for column in columns)
