"""Capabilities: what a device supports, and named profiles of them."""

from .capabilities import Capabilities, Limits
from .profiles import ProfileError, list_profiles, load_profile

__all__ = ["Capabilities", "Limits", "ProfileError", "list_profiles", "load_profile"]
