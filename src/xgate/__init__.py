"""xgate: a self-hosted gateway for X's Conversions API."""

from xgate.config import Config, ConfigError, load_config
from xgate.conversion import FieldError, MappedConversion, MappingResult, Rejection
from xgate.events import Event, InvalidEvent, parse_event

__version__ = "0.1.0"

__all__ = [
    "Config",
    "ConfigError",
    "Event",
    "FieldError",
    "InvalidEvent",
    "MappedConversion",
    "MappingResult",
    "Rejection",
    "__version__",
    "load_config",
    "parse_event",
]
