"""The shapes of JSON, named once: what a body, a stored document or an answer may hold."""

from collections.abc import Mapping, Sequence

# A JSON value as ``json.loads`` gives it back.
type JSONValue = bool | int | float | str | list[JSONValue] | dict[str, JSONValue] | None
type JSONObject = dict[str, JSONValue]

# A value read only (to serialize or to walk): any mapping or sequence of JSON will do, so a
# ``dict[str, str]`` passes where a ``JSONObject`` (invariant, being mutable) would not.
type JSONReadable = bool | int | float | str | Sequence[JSONReadable] | Mapping[str, JSONReadable] | None
