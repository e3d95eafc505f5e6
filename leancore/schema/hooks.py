"""drf-spectacular's pre- and post-processing hooks (named in settings' ``SPECTACULAR_SETTINGS``)."""

from __future__ import annotations

from collections.abc import Callable

from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.plumbing import get_lib_doc_excludes
from rest_framework.request import Request

from core import errors as e
from core.serializers import PlainReadModelSerializer
from leancore.schema.document import Document
from leancore.schema.error_responses import PROBLEM_SCHEMA, REQUEST_ID_HEADER
from leancore.schema.examples import add_request_examples
from leancore.schema.links import add_links


def add_problem_schema(result: Document, generator: SchemaGenerator, request: Request | None, public: bool) -> Document:
    """Post-processing hook: the Problem component, camelCase path parameters (``{orgId}``) and
    links from creates to what they created."""
    result.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    result["components"].setdefault("headers", {})["X-Request-Id"] = REQUEST_ID_HEADER
    paths: Document = {}
    for path, operations in result.get("paths", {}).items():
        renamed = path
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            for response in operation.get("responses", {}).values():
                response.setdefault("headers", {})["X-Request-Id"] = {"$ref": "#/components/headers/X-Request-Id"}
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "path" and "_" in parameter["name"]:
                    camel = e.camelize_key(parameter["name"])
                    renamed = renamed.replace("{" + parameter["name"] + "}", "{" + camel + "}")
                    parameter["name"] = camel
        paths[renamed] = operations
    result["paths"] = paths
    add_links(result)
    add_request_examples(result)
    return result


# drf-spectacular's endpoint: (path, path regex, method, view)
type Endpoint = tuple[str, str, str, Callable[..., object]]


def drop_trailing_slash_twins(endpoints: list[Endpoint]) -> list[Endpoint]:
    """Pre-processing hook: every path is also served with a trailing slash; document it once."""
    return [endpoint for endpoint in endpoints if not (endpoint[0].endswith("/") and endpoint[0] != "/")]


def lib_doc_excludes() -> list[type]:
    """The classes whose docstrings never describe a component (``GET_LIB_DOC_EXCLUDES``): DRF's and
    Python's, as drf-spectacular has them, and the project's own serializer bases (their docstrings
    are notes for maintainers, not for API users)."""
    library: list[type] = get_lib_doc_excludes()  # type: ignore[no-untyped-call]  # drf-spectacular's own, untyped
    return [*library, PlainReadModelSerializer]
