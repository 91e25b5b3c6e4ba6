"""The published JSON Schemas are generated from the models and must not drift."""

from common.resources import config_dir
from gateway.commands.schema import SCHEMAS, render


def test_published_schemas_match_the_models():
    for name, model in SCHEMAS.items():
        published = (config_dir() / "schema" / name).read_text(encoding="utf-8")
        assert published == render(model), f"config/schema/{name} is stale: run `pumpgw schema`"
