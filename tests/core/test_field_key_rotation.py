"""MCP credentials have their own key: FIELD_ENCRYPTION_KEY (several, comma-separated: the first
encrypts, all decrypt). ``check --deploy`` refuses a deployment without one (the fallback derives it
from SECRET_KEY, the JWT signing key), and ``manage.py rotate_field_key`` takes existing installs
over: what the derived key (or an old key) wrote is re-encrypted with the new first key."""

from __future__ import annotations

import json
import subprocess
import sys
from io import StringIO

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.management import call_command
from django.core.management.base import CommandError

from core.crypto import decrypt_json, derived_key, encrypt_json
from leancore.checks import field_encryption_key_in_production, field_encryption_keys_are_fernet_keys
from leancore.management.commands.rotate_field_key import encrypted_fields
from mcps.models import Connection
from tests.core.test_deploy_checks import _example_env
from tests.servers import ROOT

pytestmark = pytest.mark.django_db

CREDENTIALS = {"token": "sk-live-very-secret", "headerName": "Authorization"}


def _connection(org, name: str = "CRM") -> Connection:
    return Connection.all_orgs.create(
        organization=org, name=name, url="https://mcp.example.com/mcp", credentials_encrypted=encrypt_json(CREDENTIALS)
    )


def _stored(connection: Connection) -> bytes:
    return Connection.all_orgs.get(pk=connection.pk).credentials_encrypted.encode()


def test_credentials_written_with_the_derived_key_move_to_the_new_key(settings, org):
    """The attack first: with no key of its own, whoever holds SECRET_KEY (it signs every JWT)
    decrypts the stored credentials. After the new key and the command, only the new key does."""
    settings.FIELD_ENCRYPTION_KEY = ""
    connection = _connection(org)
    empty = Connection.all_orgs.create(organization=org, name="Open", url="https://open.example.com/mcp")
    assert json.loads(Fernet(derived_key(settings.SECRET_KEY)).decrypt(_stored(connection))) == CREDENTIALS

    new = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEY = new
    with pytest.raises(ValueError, match="cannot be decrypted"):  # the derived key is no longer accepted
        decrypt_json(_stored(connection).decode())
    out = StringIO()
    call_command("rotate_field_key", "--from-secret-key", stdout=out)
    assert "1 value(s) re-encrypted" in out.getvalue()

    assert json.loads(Fernet(new.encode()).decrypt(_stored(connection))) == CREDENTIALS  # only the new key
    with pytest.raises(InvalidToken):
        Fernet(derived_key(settings.SECRET_KEY)).decrypt(_stored(connection))
    settings.SECRET_KEY = "a-rotated-secret-key-0123456789abcdef0123456789abcdef"  # rotating it breaks nothing
    assert decrypt_json(Connection.all_orgs.get(pk=connection.pk).credentials_encrypted) == CREDENTIALS
    assert Connection.all_orgs.get(pk=empty.pk).credentials_encrypted == ""


def test_a_key_is_rotated_with_the_old_one_after_the_new(settings, org):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEY = old
    connection = _connection(org)
    settings.FIELD_ENCRYPTION_KEY = f"{new}, {old}"  # both decrypt meanwhile; the new one encrypts
    assert decrypt_json(_stored(connection).decode()) == CREDENTIALS
    assert json.loads(Fernet(new.encode()).decrypt(encrypt_json(CREDENTIALS).encode())) == CREDENTIALS
    call_command("rotate_field_key", stdout=StringIO())
    settings.FIELD_ENCRYPTION_KEY = new  # the old key dropped
    assert decrypt_json(_stored(connection).decode()) == CREDENTIALS
    with pytest.raises(InvalidToken):
        Fernet(old.encode()).decrypt(_stored(connection))


def test_a_value_no_key_reads_is_left_and_reported(settings, org):
    settings.FIELD_ENCRYPTION_KEY = Fernet.generate_key().decode()
    lost = _connection(org)
    settings.FIELD_ENCRYPTION_KEY = Fernet.generate_key().decode()  # the old key is lost
    before = _stored(lost)
    err = StringIO()
    with pytest.raises(CommandError, match="could not be read"):
        call_command("rotate_field_key", "--from-secret-key", stdout=StringIO(), stderr=err)
    assert str(lost.pk) in err.getvalue()
    assert _stored(lost) == before


def test_the_command_needs_a_key_and_a_dry_run_writes_nothing(settings, org):
    settings.FIELD_ENCRYPTION_KEY = ""
    connection = _connection(org)
    with pytest.raises(CommandError, match="Set FIELD_ENCRYPTION_KEY"):
        call_command("rotate_field_key", "--from-secret-key", stdout=StringIO())
    settings.FIELD_ENCRYPTION_KEY = Fernet.generate_key().decode()
    before = _stored(connection)
    out = StringIO()
    call_command("rotate_field_key", "--from-secret-key", "--dry-run", stdout=out)
    assert "1 value(s) would be re-encrypted" in out.getvalue()
    assert _stored(connection) == before


def test_every_encrypted_field_is_rotated():
    assert (Connection, "credentials_encrypted") in encrypted_fields()


def test_deploy_check_requires_its_own_key(settings):
    settings.DEBUG = False
    settings.FIELD_ENCRYPTION_KEY = ""
    assert [m.id for m in field_encryption_key_in_production(None)] == ["leancore.E001"]
    settings.FIELD_ENCRYPTION_KEY = Fernet.generate_key().decode()
    assert field_encryption_key_in_production(None) == []
    settings.DEBUG = True
    settings.FIELD_ENCRYPTION_KEY = ""
    assert field_encryption_key_in_production(None) == []  # development may derive it


def test_a_key_that_is_no_fernet_key_is_an_error(settings):
    settings.FIELD_ENCRYPTION_KEY = f"{Fernet.generate_key().decode()},not-a-key"
    messages = field_encryption_keys_are_fernet_keys(None)
    assert [m.id for m in messages] == ["leancore.E002"]
    assert "position 2" in messages[0].msg


def test_check_deploy_fails_without_the_key():
    env = _example_env()
    env.pop("FIELD_ENCRYPTION_KEY")
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "ERROR"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "leancore.E001" in done.stdout + done.stderr
