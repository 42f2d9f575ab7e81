"""ELF objects as clang builds them for BPF: programs, maps, global data, BTF and line info."""

from .btf import Btf, BtfType, parse_btf
from .btf_layout import BtfKind
from .errors import LoaderError

__all__ = ["Btf", "BtfKind", "BtfType", "LoaderError", "parse_btf"]
