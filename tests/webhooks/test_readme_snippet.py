"""The README's signature-verification snippet is the code the tests' receiver runs, and it works:
a real signature verifies; a changed body, another secret or an old timestamp does not."""

from __future__ import annotations

import inspect
import re
import time

from tests.servers import ROOT
from tests.webhooks import receiver
from webhooks.signing import new_secret, signature


def _snippet() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    found = [block for block in blocks if "def verify_signature" in block]
    assert len(found) == 1, "the README shows one signature-verification snippet"
    return found[0]


def test_the_readme_snippet_is_the_one_the_receiver_runs():
    assert inspect.getsource(receiver.verify_signature) in _snippet()


def test_the_readme_snippet_verifies_a_real_signature_and_nothing_else():
    namespace: dict = {}
    exec(compile(_snippet(), "README.md", "exec"), namespace)  # noqa: S102  # the README's own code
    verify = namespace["verify_signature"]
    secret, body, now = new_secret(), b'{"id":"e","type":"ping","data":{}}', int(time.time())
    header = signature(secret=secret, timestamp=now, body=body)
    assert verify(header, body, secret)
    assert not verify(header, body.replace(b"ping", b"pong"), secret)
    assert not verify(header, body, new_secret())
    assert not verify(signature(secret=secret, timestamp=now - 3600, body=body), body, secret)
    assert not verify("v1=" + header.split("v1=")[1], body, secret)
    assert not verify("", body, secret)
