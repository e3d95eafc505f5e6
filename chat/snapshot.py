"""What a turn was accepted with, frozen on its assistant message (``Message.turn``): who sent it,
the specialist's instructions, model, output limit and temperature, the tools it was offered and the
rates of each model it may call. A queued turn runs, and every call and tool round of it is held
and billed, from this record only: editing or deleting the specialist, its tools or the model's
rate afterwards changes nothing for it.

``models`` is the list of the turn's models, each with its own frozen rate and output limit: the
first is the model the turn calls, the others its fallback models, in order (``chat.fallbacks``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import NotRequired, TypedDict

from billing.models import ModelRate
from chat.context import ToolBinding
from chat.providers.base import ToolSpec
from core.json_types import JSONObject
from specialists.models import Specialist

VERSION = 1
MAX_OUTPUT_UNKNOWN = 2**31 - 1  # a record from before rates kept their output limit: the specialist's applies


# The record as stored (JSON, camelCase keys); a key marked NotRequired is absent from older records.
class FrozenRate(TypedDict):
    model: str
    provider: str
    inputCreditsPerMillion: str  # a Decimal, as text
    outputCreditsPerMillion: str
    contextWindow: int
    maxOutputTokens: NotRequired[int]


class FrozenBinding(TypedDict):
    toolId: str | None
    connectionId: str | None
    remoteName: str
    builtin: str
    orgId: str | None


class FrozenTool(TypedDict):
    name: str
    description: str
    inputSchema: JSONObject
    binding: FrozenBinding


class FrozenSpecialist(TypedDict):
    id: str
    organizationId: str
    name: str
    title: str
    instructions: str
    monthlyCreditLimit: str | None


class FrozenTurn(TypedDict):
    version: int
    senderId: str | None
    senderApiKeyId: NotRequired[str | None]
    specialist: FrozenSpecialist
    maxOutputTokens: int
    temperature: float
    models: list[FrozenRate]
    tools: list[FrozenTool]


@dataclass(frozen=True, slots=True)
class Thawed:
    """A frozen turn read back: the specialist as it was (an unsaved copy: no query reads it), the
    rate of each model in order (the first is called), the offered tools, the sender: a user, or
    the org API key the turn was started with (then no user)."""

    specialist: Specialist
    rates: list[ModelRate]
    specs: list[ToolSpec]
    bindings: dict[str, ToolBinding]
    sender_id: uuid.UUID | None
    sender_api_key_id: uuid.UUID | None = None

    @property
    def rate(self) -> ModelRate:
        return self.rates[0]

    @property
    def fallbacks(self) -> list[ModelRate]:
        return self.rates[1:]


def _rate(rate: ModelRate) -> FrozenRate:
    return {
        "model": rate.model,
        "provider": rate.provider,
        "inputCreditsPerMillion": str(rate.input_credits_per_million),
        "outputCreditsPerMillion": str(rate.output_credits_per_million),
        "contextWindow": rate.context_window,
        "maxOutputTokens": rate.max_output_tokens,
    }


def _binding(binding: ToolBinding) -> FrozenBinding:
    return {
        "toolId": str(binding.tool_id) if binding.tool_id else None,
        "connectionId": str(binding.connection_id) if binding.connection_id else None,
        "remoteName": binding.remote_name,
        "builtin": binding.builtin,
        "orgId": str(binding.org_id) if binding.org_id else None,
    }


def freeze(
    *,
    specialist: Specialist,
    rates: list[ModelRate],
    tools: tuple[list[ToolSpec], dict[str, ToolBinding]],
    sender_id: uuid.UUID | None,
    sender_api_key_id: uuid.UUID | None = None,
) -> FrozenTurn:
    """The turn's record, as JSON."""
    specs, bindings = tools
    limit = specialist.monthly_credit_limit
    return {
        "version": VERSION,
        "senderId": str(sender_id) if sender_id else None,
        "senderApiKeyId": str(sender_api_key_id) if sender_api_key_id else None,
        "specialist": {
            "id": str(specialist.pk),
            "organizationId": str(specialist.organization_id),
            "name": specialist.name,
            "title": specialist.title,
            "instructions": specialist.instructions,
            "monthlyCreditLimit": str(limit) if limit is not None else None,
        },
        "maxOutputTokens": specialist.max_output_tokens,
        "temperature": specialist.temperature,
        "models": [_rate(rate) for rate in rates],
        "tools": [
            {
                "name": spec.name,
                "description": spec.description,
                "inputSchema": spec.input_schema,
                "binding": _binding(bindings[spec.name]),
            }
            for spec in specs
        ],
    }


def _uuid(value: str | None) -> uuid.UUID | None:
    return uuid.UUID(value) if value else None


def thaw(record: FrozenTurn) -> Thawed:
    """The turn as it was accepted."""
    frozen = record["specialist"]
    rates = [
        ModelRate(
            model=row["model"],
            provider=row["provider"],
            input_credits_per_million=Decimal(row["inputCreditsPerMillion"]),
            output_credits_per_million=Decimal(row["outputCreditsPerMillion"]),
            context_window=row["contextWindow"],
            max_output_tokens=row.get("maxOutputTokens", MAX_OUTPUT_UNKNOWN),
            active=True,  # as it was when the turn was accepted
        )
        for row in record["models"]
    ]
    limit = frozen["monthlyCreditLimit"]
    specialist = Specialist(
        id=uuid.UUID(frozen["id"]),
        organization_id=uuid.UUID(frozen["organizationId"]),
        name=frozen["name"],
        title=frozen["title"],
        instructions=frozen["instructions"],
        model=rates[0].model,
        max_output_tokens=record["maxOutputTokens"],
        temperature=record["temperature"],
        monthly_credit_limit=Decimal(limit) if limit is not None else None,
    )
    specs: list[ToolSpec] = []
    bindings: dict[str, ToolBinding] = {}
    for tool in record["tools"]:
        bound = tool["binding"]
        specs.append(ToolSpec(name=tool["name"], description=tool["description"], input_schema=tool["inputSchema"]))
        bindings[tool["name"]] = ToolBinding(
            model_name=tool["name"],
            tool_id=_uuid(bound["toolId"]),
            connection_id=_uuid(bound["connectionId"]),
            remote_name=bound["remoteName"],
            builtin=bound["builtin"],
            org_id=_uuid(bound["orgId"]),
        )
    return Thawed(
        specialist=specialist,
        rates=rates,
        specs=specs,
        bindings=bindings,
        sender_id=_uuid(record["senderId"]),
        sender_api_key_id=_uuid(record.get("senderApiKeyId")),  # absent from the records of before keys
    )
