"""Typed, validated configuration of the app, and the names/ports/versions shared by all parts."""

from app_config.loader import ConfigError, config_from_dict, load_config
from app_config.model import AppConfig

__all__ = ["AppConfig", "ConfigError", "config_from_dict", "load_config"]
