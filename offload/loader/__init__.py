"""ELF objects as clang builds them for BPF: programs, maps, global data, BTF and line info."""

from .btf import Btf, BtfType, parse_btf
from .btf_layout import BtfKind
from .errors import LoaderError, LoadOptionError, ProgramRefusal, RefusalKind
from .maps import global_data_map_name
from .object import LoadOptions, ObjectSpec, load_object, parse_object

__all__ = ["Btf", "BtfKind", "BtfType", "LoadOptionError", "LoadOptions", "LoaderError",
           "ObjectSpec", "ProgramRefusal", "RefusalKind", "global_data_map_name", "load_object",
           "parse_btf", "parse_object"]
