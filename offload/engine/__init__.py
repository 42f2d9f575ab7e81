"""Engines that run eBPF programs, over one memory model of typed, bounds-checked regions."""

from .errors import ExecutionError
from .interpreter import (
    DEFAULT_MAX_STEPS,
    ExecResult,
    Execution,
    Helper,
    Interpreter,
    LoadError,
    TailCall,
)
from .memory import Memory, MemoryFault, Region, RegionKind

__all__ = [
    "DEFAULT_MAX_STEPS", "ExecResult", "Execution", "ExecutionError", "Helper", "Interpreter",
    "LoadError", "Memory", "MemoryFault", "Region", "RegionKind", "TailCall",
]
