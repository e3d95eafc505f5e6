"""Providers by name; the provider of a call comes from its model's rate."""

from __future__ import annotations

from chat.providers.anthropic_provider import AnthropicProvider
from chat.providers.base import Provider, ProviderError
from chat.providers.local import LocalProvider
from chat.providers.openai_provider import OpenAIProvider

PROVIDERS: dict[str, Provider] = {
    "openai": OpenAIProvider(),
    "anthropic": AnthropicProvider(),
    "local": LocalProvider(),
}


def get_provider(name: str) -> Provider:
    try:
        return PROVIDERS[name]
    except KeyError as exc:
        raise ProviderError(f"No provider named {name!r}.") from exc


__all__ = ["PROVIDERS", "Provider", "ProviderError", "get_provider"]
