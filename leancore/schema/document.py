"""The OpenAPI document as drf-spectacular hands it to the hooks and the schema class."""

from typing import Any

# drf-spectacular's own type for it (its ``_SchemaType``): nested JSON whose values are whatever the
# generator wrote, walked by key; typing each level would restate the OpenAPI specification.
type Document = dict[str, Any]
