"""ELF objects as clang builds them for BPF: programs, maps, global data, BTF and line info."""

from .btf import Btf, BtfType, parse_btf
from .btf_layout import BtfKind
from .errors import LoaderError
from .maps import global_data_map_name
from .object import ObjectSpec, load_object, parse_object

__all__ = ["Btf", "BtfKind", "BtfType", "LoaderError", "ObjectSpec", "global_data_map_name",
           "load_object", "parse_btf", "parse_object"]
