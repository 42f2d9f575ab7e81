"""bpftool's global options, ``-j``/``--json`` and ``-p``/``--pretty``, anywhere on the line;
taken out before the parser sees the line (start-up imports this module, so it imports
nothing heavy)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

_JSON = {"-j", "--json"}
_PRETTY = {"-p", "--pretty"}


@dataclass(frozen=True, slots=True)
class Globals:
    json: bool = False
    pretty: bool = False


def split_globals(argv: Sequence[str]) -> tuple[list[str], Globals]:
    """``argv`` without ``-j``/``--json``/``-p``/``--pretty`` (anywhere before ``--``), and
    which were given; ``-p`` implies JSON, as in bpftool."""
    rest: list[str] = []
    as_json = pretty = False
    for index, word in enumerate(argv):
        if word == "--":
            rest.extend(argv[index:])
            break
        if word in _JSON:
            as_json = True
        elif word in _PRETTY:
            as_json = pretty = True
        else:
            rest.append(word)
    return rest, Globals(as_json, pretty)
