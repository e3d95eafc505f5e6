"""OpenAPI, as drf-spectacular builds it for LeanCore, one module per concern:

- ``operations``: the schema of one operation (the org header, its area, its error statuses, its
  description with who may call it), the class settings name as ``DEFAULT_SCHEMA_CLASS``;
- ``error_responses``: every error status an operation can answer, derived from the kind of its view
  and the errors it declares, with the codes of the one registry in ``core.errors``; the Problem body;
- ``access``: who may call an operation, in words;
- ``descriptions``: what an operation does, from its app's ``api_descriptions`` module;
- ``examples``: one example body per write operation;
- ``links``: links from every create to the operations on what it created;
- ``hooks``: the pre- and post-processing hooks settings name.
"""

from leancore.schema.examples import REQUEST_EXAMPLES

__all__ = ["REQUEST_EXAMPLES"]  # the tests' example bodies (``leancore.schema.REQUEST_EXAMPLES``)
