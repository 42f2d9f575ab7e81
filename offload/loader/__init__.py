"""ELF objects as clang builds them for BPF: programs, maps, global data, BTF and line info.

The names below load their modules on first use (PEP 562): a reader of BTF or of CO-RE
bindings (the snapshot records) does not import the ELF reader.
"""

from typing import TYPE_CHECKING

from ..lazy_exports import lazy_exports

if TYPE_CHECKING:
    from .btf import Btf, BtfType, parse_btf
    from .btf_layout import BtfKind
    from .errors import LoaderError, LoadOptionError, ProgramRefusal, RefusalKind
    from .maps import global_data_map_name
    from .object import LoadOptions, ObjectSpec, load_object, parse_object

__all__ = ["Btf", "BtfKind", "BtfType", "LoadOptionError", "LoadOptions", "LoaderError",
           "ObjectSpec", "ProgramRefusal", "RefusalKind", "global_data_map_name", "load_object",
           "parse_btf", "parse_object"]

_MODULES = {"Btf": "btf", "BtfType": "btf", "parse_btf": "btf", "BtfKind": "btf_layout",
            "LoaderError": "errors", "LoadOptionError": "errors", "ProgramRefusal": "errors",
            "RefusalKind": "errors", "global_data_map_name": "maps", "LoadOptions": "object",
            "ObjectSpec": "object", "load_object": "object", "parse_object": "object"}


__getattr__ = lazy_exports(__name__, _MODULES)
