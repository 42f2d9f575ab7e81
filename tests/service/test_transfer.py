"""The client's side of snapshot transfers: a daemon that sends less, more or something else
than it announced is refused before its bytes could be sealed or committed."""

from __future__ import annotations

from typing import Any

import pytest

from service.errors import Refused, UsageError
from service.transfer import checkpoint, upload


class Peer:
    def __init__(self, size: int, chunks: list[Any]) -> None:
        self.size, self.chunks, self.writes = size, chunks, []

    def call(self, method: str, **params: Any) -> Any:
        if method == "checkpoint.begin":
            return {"transfer": 1, "size": self.size, "programs": 0, "maps": 0, "entries": 0,
                    "source": None}
        if method == "checkpoint.read":
            return {"data": self.chunks.pop(0) if self.chunks else b""}
        if method == "restore.begin":
            return {"transfer": 5, "expected": params["size"]}
        self.writes.append(params["data"])
        return {"received": sum(map(len, self.writes))}


@pytest.mark.parametrize("chunks", [[b"ab"], [b"ab", b""], [b"abc", b"de"], [b"abcde"], ["abcd"],
                                    [None]])
def test_a_checkpoint_that_is_not_its_size_is_refused(chunks):
    taken = checkpoint(Peer(4, list(chunks)))  # type: ignore[arg-type]
    with pytest.raises(Refused, match="incomplete"):
        list(taken.chunks)


def test_a_checkpoint_reads_exactly_its_size():
    taken = checkpoint(Peer(5, [b"ab", b"cde"]))  # type: ignore[arg-type]
    assert b"".join(taken.chunks) == b"abcde" and taken.source is None


def test_an_upload_sends_bounded_messages_and_exactly_its_size():
    peer = Peer(0, [])
    assert upload(peer, [b"abcdefg", b"h"], 8, chunk=3) == 5  # type: ignore[arg-type]
    assert peer.writes == [b"abc", b"def", b"g", b"h"]
    for chunks, size in (([b"abc"], 4), ([b"abcde"], 4)):
        with pytest.raises(UsageError, match="bytes"):
            upload(Peer(0, []), chunks, size, chunk=3)  # type: ignore[arg-type]


def test_a_daemon_answer_without_a_transfer_is_refused():
    class Odd(Peer):
        def call(self, method: str, **params: Any) -> Any:
            return {"transfer": "x"}

    with pytest.raises(Refused):
        upload(Odd(0, []), [b"a"], 1)  # type: ignore[arg-type]
    with pytest.raises(Refused, match="size"):
        checkpoint(Odd(0, []))  # type: ignore[arg-type]
