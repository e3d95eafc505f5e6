"""``manage.py rotate_field_key``: re-encrypt every stored secret with the first FIELD_ENCRYPTION_KEY.

Every model field named ``*_encrypted`` (today an MCP connection's credentials) is read with any
configured key (and, with ``--from-secret-key``, the key earlier releases derived from SECRET_KEY)
and written again with the first key. Run it after putting a new key first in FIELD_ENCRYPTION_KEY,
then drop the old keys. A value no key can read is left as it is and reported (exit status 1)."""

from __future__ import annotations

from cryptography.fernet import InvalidToken
from django.apps import apps
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import models, transaction

from core.crypto import configured_keys, invalid_keys, rotation_fernet

SUFFIX = "_encrypted"


def encrypted_fields() -> list[tuple[type[models.Model], str]]:
    """Every (model, field name) that holds a Fernet token (named ``…_encrypted``)."""
    found = []
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if field.name.endswith(SUFFIX):
                found.append((model, field.name))
    return found


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret (MCP credentials) with the first key of FIELD_ENCRYPTION_KEY, reading "
        "it with any configured key (and with --from-secret-key, the key derived from SECRET_KEY)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--from-secret-key",
            action="store_true",
            help="Also read values written with the key derived from SECRET_KEY (installs without a key so far).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Count what would be re-encrypted; write nothing.")

    def handle(self, *args: object, **options: object) -> None:
        if not configured_keys():
            raise CommandError(
                "Set FIELD_ENCRYPTION_KEY first (the new key first, old ones after it, comma-separated)."
            )
        if invalid_keys():
            raise CommandError(f"FIELD_ENCRYPTION_KEY: key(s) {invalid_keys()} are no Fernet key.")
        keys = rotation_fernet(from_secret_key=bool(options.get("from_secret_key")))
        dry_run = bool(options.get("dry_run"))
        done = unreadable = 0
        for model, name in encrypted_fields():
            label = f"{model._meta.label}.{name}"
            pks = list(model._base_manager.exclude(**{name: ""}).values_list("pk", flat=True))  # every org's
            for pk in pks:
                with transaction.atomic():
                    row = model._base_manager.select_for_update().filter(pk=pk).values_list(name, flat=True).first()
                    if not row:
                        continue
                    try:
                        token = keys.rotate(row.encode()).decode()
                    except InvalidToken:
                        unreadable += 1
                        self.stderr.write(f"{label} {pk}: no configured key reads it; left as it is.")
                        continue
                    if not dry_run:
                        model._base_manager.filter(pk=pk).update(**{name: token})
                    done += 1
            self.stdout.write(f"{label}: {len(pks)} stored value(s) checked.")
        verb = "would be re-encrypted" if dry_run else "re-encrypted with the first key"
        self.stdout.write(self.style.SUCCESS(f"{done} value(s) {verb}; {unreadable} unreadable."))
        if unreadable:
            raise CommandError(f"{unreadable} value(s) could not be read with the keys given: see above.")
