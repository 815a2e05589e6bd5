"""The map stage: generic events → X conversions per destination (see :class:`Mapper`)."""

from xgate.mapping.mapper import Mapper, default_body, stable_conversion_id

__all__ = ["Mapper", "default_body", "stable_conversion_id"]
