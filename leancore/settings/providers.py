"""Model providers and MCP servers: keys, endpoints, timeouts, the SSRF guard's exceptions."""

from __future__ import annotations

from leancore.settings.env import env_bool, env_int, env_list, env_str

WIZARD_MODEL = env_str("WIZARD_MODEL")
OPENAI_API_KEY = env_str("OPENAI_API_KEY")
OPENAI_BASE_URL = env_str("OPENAI_BASE_URL")
# A provider that goes quiet: the call fails after this many seconds without a byte (before the first
# token or between two), the turn ends `failed` and what was produced is billed.
LLM_IDLE_TIMEOUT = float(env_str("LLM_IDLE_TIMEOUT", "60"))
LLM_CONNECT_TIMEOUT = float(env_str("LLM_CONNECT_TIMEOUT", "10"))
# A provider whose answer has not started (no first byte) within this many seconds: the call is
# given up before any output, retried once, then the specialist's fallback models are tried.
LLM_FIRST_BYTE_TIMEOUT = float(env_str("LLM_FIRST_BYTE_TIMEOUT", "30"))
ANTHROPIC_API_KEY = env_str("ANTHROPIC_API_KEY")
ANTHROPIC_BASE_URL = env_str("ANTHROPIC_BASE_URL")
MCP_ALLOW_PRIVATE_NETWORKS = env_bool("MCP_ALLOW_PRIVATE_NETWORKS", False)
# Exact origins (scheme://host:port, comma-separated) let through the SSRF guard although they are
# private or loopback, e.g. the demo MCP server that run.sh starts (http://127.0.0.1:8765). Every
# other private address stays refused. Empty in production.
MCP_ALLOWED_PRIVATE_URLS = env_list("MCP_ALLOWED_PRIVATE_URLS")
MCP_SYNC_TIMEOUT_SECONDS = float(env_str("MCP_SYNC_TIMEOUT_SECONDS", "20"))
MCP_TOOL_TIMEOUT_SECONDS = float(env_str("MCP_TOOL_TIMEOUT_SECONDS", "30"))
# An MCP response (over SSE: a whole session's stream) larger than this fails the call: 502
# `mcp_unreachable` for a sync, a tool error in a turn. It is counted as it arrives, never buffered whole.
MCP_MAX_RESPONSE_BYTES = env_int("MCP_MAX_RESPONSE_BYTES", 4 * 1024 * 1024)
