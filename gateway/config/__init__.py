"""Gateway configuration: TOML files validated into one :class:`GatewayConfig`."""

from gateway.config.load import load_config, load_config_text
from gateway.config.model import GatewayConfig

__all__ = ["GatewayConfig", "load_config", "load_config_text"]
