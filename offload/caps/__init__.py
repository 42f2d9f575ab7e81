"""Capabilities: what a device supports, and named profiles of them."""

from .capabilities import Capabilities, Limits

__all__ = ["Capabilities", "Limits"]
