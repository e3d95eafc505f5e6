"""The platform floor: errors and their code registry, credits, fields, pagination, throttles,
content negotiation, database and cache helpers, the channel layer, middleware and the base views
that need no organization. It imports no app of LeanCore."""
