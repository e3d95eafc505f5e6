"""The shapes of JSON, named once: what a body, a stored document or an answer may hold."""

import json
from collections.abc import Mapping, Sequence

# A JSON value as ``json.loads`` gives it back.
type JSONValue = bool | int | float | str | list[JSONValue] | dict[str, JSONValue] | None
type JSONObject = dict[str, JSONValue]

# A value read only (to serialize or to walk): any mapping or sequence of JSON will do, so a
# ``dict[str, str]`` passes where a ``JSONObject`` (invariant, being mutable) would not.
type JSONReadable = bool | int | float | str | Sequence[JSONReadable] | Mapping[str, JSONReadable] | None


def compact_json(value: JSONReadable) -> str:
    """``value`` as JSON without spaces (an SSE frame, a provider's request, a replay entry), by an
    encoder made once (``json.dumps`` with options builds one per call)."""
    return _compact_encoder.encode(value)


_compact_encoder = json.JSONEncoder(separators=(",", ":"))
