"""The keys a profiles file may hold, and its JSON Schema for editors, both read from the
models.
"""

from __future__ import annotations

import json
from typing import Any

from bot.models import SEND_AT_PATTERN, Defaults, Interests, Subscriber

TOP_LEVEL_KEYS = ("defaults", "subscribers")
DEFAULT_KEYS = tuple(Defaults.model_fields)
INTEREST_KEYS = tuple(Interests.model_fields)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the profiles file, for editors (config/profiles.schema.json)."""
    subscriber = Subscriber.model_json_schema(mode="validation")
    defs = subscriber.pop("$defs", {})
    defaults: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {k: v for k, v in subscriber["properties"].items() if k in DEFAULT_KEYS},
    }
    subscriber["properties"]["send_at"] = {
        "type": "string",
        "pattern": f"^{SEND_AT_PATTERN}$",
        "description": 'Local send time, "HH:MM" (or "HH:MM:SS").',
    }
    defaults["properties"]["send_at"] = subscriber["properties"]["send_at"]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "paperbot profiles",
        "type": "object",
        "additionalProperties": False,
        "required": ["subscribers"],
        "properties": {
            "defaults": defaults,
            "subscribers": {"type": "array", "items": {"$ref": "#/$defs/Subscriber"}},
        },
        "$defs": {**defs, "Subscriber": subscriber},
    }


def json_schema_text() -> str:
    """The schema as the file text committed under config/."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"
