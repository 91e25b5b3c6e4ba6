"""``pumpgw schema``: write the JSON Schemas generated from the pydantic models."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gateway.config.model import GatewayConfig
from gateway.mqtt.payloads import PAYLOAD_MODELS

# file name -> model; later issues add the drug library models here.
SCHEMAS = {"gateway.schema.json": GatewayConfig, **PAYLOAD_MODELS}


def render(model: type) -> str:
    schema = model.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "schema",
        help="write the JSON Schemas of the configuration files",
        description="Regenerate config/schema/*.json from the models. Editors (VS Code, IntelliJ) "
        "use them to complete and check configuration files while you type.",
    )
    p.add_argument("--out", default="config/schema", help="directory to write to (default: config/schema)")
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, model in SCHEMAS.items():
        (out / name).write_text(render(model), encoding="utf-8")
        print(out / name)
    return 0
