"""Gateway configuration: TOML files validated into one :class:`GatewayConfig`."""

from gateway.config.load import ConfigReport, load_config, load_config_report, load_config_text, load_config_text_report
from gateway.config.model import GatewayConfig
from gateway.config.problems import ConfigFileError, ConfigProblem

__all__ = [
    "ConfigFileError",
    "ConfigProblem",
    "ConfigReport",
    "GatewayConfig",
    "load_config",
    "load_config_report",
    "load_config_text",
    "load_config_text_report",
]
