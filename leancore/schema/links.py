"""OpenAPI links from every create to the operations on what it created, so that clients and
stateful fuzzers can follow them."""

from __future__ import annotations

import re

from leancore.schema.document import Document


def _path_params(path: str) -> list[str]:
    return re.findall(r"\{([^}]+)\}", path)


def _creates_with_id(result: Document, operation: Document) -> bool:
    content = operation.get("responses", {}).get("201", {}).get("content", {}).get("application/json", {})
    schema = content.get("schema", {})
    if "$ref" in schema:
        schema = result["components"]["schemas"].get(schema["$ref"].rsplit("/", 1)[-1], {})
    return "id" in schema.get("properties", {})


# Links the shape of the paths does not imply: (operation, status, response field, target paths).
NAMED_LINKS = [
    ("/users/invite", "post", "201", "id", ["/users/{id}", "/users/{id}/role"]),
    ("/api/chat/async", "post", "202", "sessionId", ["/api/chat/sessions/{id}"]),
]


def _link_all(paths: Document, targets: list[str], parameters: dict[str, str]) -> dict[str, object]:
    links: dict[str, object] = {}
    for target in targets:
        for method, operation in paths.get(target, {}).items():
            if method in ("get", "put", "patch", "delete", "post") and "operationId" in operation:
                links[operation["operationId"]] = {"operationId": operation["operationId"], "parameters": parameters}
    return links


def add_links(result: Document) -> None:
    """OpenAPI links from every create (201 with an ``id``) to the operations on the created object,
    so that clients and stateful fuzzers can follow them."""
    paths = result.get("paths", {})
    for source, operations in paths.items():
        create = operations.get("post")
        if not create or not _creates_with_id(result, create):
            continue
        known = set(_path_params(source))
        links = {}
        for target, target_operations in paths.items():
            if not target.startswith(source + "/{"):
                continue
            new = [name for name in _path_params(target) if name not in known]
            if len(new) != 1:
                continue
            parameters = {new[0]: "$response.body#/id"} | {name: f"$request.path.{name}" for name in known}
            for method, operation in target_operations.items():
                if method in ("get", "put", "patch", "delete", "post") and "operationId" in operation:
                    links[operation["operationId"]] = {
                        "operationId": operation["operationId"],
                        "parameters": parameters,
                    }
        if links:
            create["responses"]["201"]["links"] = links
    for source, method, status, field, targets in NAMED_LINKS:
        response = paths.get(source, {}).get(method, {}).get("responses", {}).get(status)
        if response is not None:
            response.setdefault("links", {}).update(_link_all(paths, targets, {"id": f"$response.body#/{field}"}))
