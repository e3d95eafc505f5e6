"""What a long-lived process (a server, a worker) does once it is built."""

from __future__ import annotations

import gc

from chat import providers
from mcps import client


def keep_startup_objects_out_of_collections() -> None:
    """The imported framework and app are some 380,000 objects that live as long as the process.
    Python's oldest-generation collection walks them all (about a quarter of a second here) each
    time enough new objects survive, which under streaming load stalled every open stream about
    once a minute. Frozen, they are never walked again; objects made later are collected as usual.
    The SDKs a one-off command never imports (the model providers', MCP's) are imported first, so
    that they are frozen too."""
    providers.import_all()
    client.import_sdk()
    gc.collect()
    gc.freeze()
