"""``pumpgw schema``: write the JSON Schemas generated from the models, and the reference doc."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pydantic import BaseModel

from gateway.config.model import GatewayConfig
from gateway.config.reference import render_reference
from gateway.druglib.model import DrugLibrary
from gateway.mqtt.library_payloads import PAYLOAD_MODELS as LIBRARY_PAYLOAD_MODELS
from gateway.mqtt.models import PAYLOAD_MODELS

# file name -> model of every published schema.
SCHEMAS: dict[str, type[BaseModel]] = {
    "gateway.schema.json": GatewayConfig,
    "drug-library.schema.json": DrugLibrary,
    **PAYLOAD_MODELS,
    **LIBRARY_PAYLOAD_MODELS,
}


def schema_of(model: type[BaseModel]) -> dict:
    schema = model.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def render(model: type[BaseModel]) -> str:
    return json.dumps(schema_of(model), indent=2, sort_keys=True) + "\n"


def render_config_reference() -> str:
    """docs/config-reference.md: every key of the gateway configuration, from its schema."""
    return render_reference(schema_of(GatewayConfig))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "schema",
        help="write the JSON Schemas of the configuration files (and the reference doc)",
        description="Regenerate config/schema/*.json from the models. Editors (VS Code, IntelliJ) "
        "use them to complete and check configuration files while you type. With --docs, also "
        "write the Markdown configuration reference generated from the same schema.",
    )
    p.add_argument("--out", default="config/schema", help="directory to write to (default: config/schema)")
    p.add_argument(
        "--docs", metavar="FILE", help="also write the configuration reference, e.g. docs/config-reference.md"
    )
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    out = Path(args.out)
    target = out
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, model in SCHEMAS.items():
            target = out / name
            target.write_text(render(model), encoding="utf-8")
            print(target)
        if args.docs:
            target = Path(args.docs)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(render_config_reference(), encoding="utf-8")
            print(target)
    except OSError as exc:
        print(f"pumpgw schema: cannot write {target}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0
