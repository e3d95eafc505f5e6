"""Providers by name; the provider of a call comes from its model's rate.

A provider's module, and the SDK it is built on, is imported the first time the provider is asked
for: the openai and anthropic SDKs take about a second of CPU to import, which a one-off process
(``manage.py migrate``, ``check``, ``shell``) never pays. A server or a worker imports them all at
startup (``import_all``), before it freezes what it imported."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping

from chat.providers.base import Provider, ProviderError
from chat.providers.local import LocalProvider


def _openai() -> Provider:
    from chat.providers.openai_provider import OpenAIProvider  # noqa: PLC0415  # its SDK on first use only

    return OpenAIProvider()


def _anthropic() -> Provider:
    from chat.providers.anthropic_provider import AnthropicProvider  # noqa: PLC0415  # its SDK on first use only

    return AnthropicProvider()


_MAKERS: dict[str, Callable[[], Provider]] = {"openai": _openai, "anthropic": _anthropic, "local": LocalProvider}


class _Providers(Mapping[str, Provider]):
    """The providers by name, each made once, when first looked up."""

    def __init__(self) -> None:
        self._made: dict[str, Provider] = {}
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> Provider:
        made = self._made.get(name)
        if made is None:
            with self._lock:
                made = self._made.get(name)
                if made is None:
                    made = self._made[name] = _MAKERS[name]()
        return made

    def __iter__(self) -> Iterator[str]:
        return iter(_MAKERS)

    def __len__(self) -> int:
        return len(_MAKERS)


PROVIDERS: Mapping[str, Provider] = _Providers()


def import_all() -> None:
    """Every provider made, its SDK imported: a long-lived process does this before it freezes what
    it imported (``leancore.long_lived``), since it will call them."""
    for name in _MAKERS:
        PROVIDERS[name]


def get_provider(name: str) -> Provider:
    try:
        return PROVIDERS[name]
    except KeyError as exc:
        raise ProviderError(f"No provider named {name!r}.") from exc


__all__ = ["PROVIDERS", "Provider", "ProviderError", "get_provider"]
