"""Email goes through Django's mailers, configured from the EMAIL_* environment variables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import django
django.setup()
from django.core.mail import send_mail
send_mail("Subject here", "Body here", None, ["to@example.com"])
"""


def test_file_based_backend_from_environment(tmp_path):
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "leancore.settings",
            "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "EMAIL_FILE_PATH": str(tmp_path),
            "DEFAULT_FROM_EMAIL": "LeanCore <ops@leancore.test>",
        }
    )
    subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, check=True, capture_output=True)
    written = "".join(p.read_text() for p in tmp_path.iterdir())
    assert "Subject here" in written
    assert "ops@leancore.test" in written
