"""JSON Schema of the whole config, with each installed plugin's options, for editors."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from listend.daemon.config.models import ListendConfig
from listend.daemon.plugin.manager import PluginHost, TypeRegistry


def config_schema(host: PluginHost) -> dict[str, Any]:
    schema = ListendConfig.model_json_schema()
    defs: dict[str, Any] = schema.setdefault("$defs", {})
    props = schema["properties"]
    props["sources"] = _section(host.sources, defs, "source")
    props["sinks"] = _section(host.sinks, defs, "sink")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "listend configuration"
    return schema


def _section(registry: TypeRegistry[Any], defs: dict[str, Any], kind: str) -> dict[str, Any]:
    choices = []
    for type_name, cls in registry.items():
        model: type[BaseModel] = cls.config_model
        sub = model.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(sub.pop("$defs", {}))
        sub["properties"]["type"] = {"const": type_name, "description": f"{kind} type"}
        sub["required"] = sorted({*sub.get("required", []), "type"})
        title = f"{kind}:{type_name}"
        sub["title"] = title
        defs[title] = sub
        choices.append({"$ref": f"#/$defs/{title}"})
    return {
        "type": "object",
        "description": f"{kind}s by name",
        "additionalProperties": {"oneOf": choices} if choices else False,
    }
