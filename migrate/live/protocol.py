"""The live-migration protocol as two pure state machines, one per side (sans-I/O, as h11).

Each side is fed the bytes that arrive (:meth:`Connection.receive_data`), hands out the
messages they complete (:meth:`Connection.next_message`), and turns the messages it sends into
bytes (:meth:`Connection.send`). Both directions are checked against the same transition table
(docs/live-migration.md, "Message flow"), so a message out of turn is a
:class:`ProtocolViolation` whichever side makes the mistake. Sockets live in ``channel``.

The states, in order: ``HELLO`` (the source says hello), ``WELCOME`` (the destination accepts
or refuses), ``COPY`` (snapshot chunks, then their end), ``RESTORE`` (the destination restores,
reporting progress, and says ready), ``PRECOPY`` (rounds of deltas, each acknowledged),
``ROUND`` (waiting for an acknowledgement), ``COMMIT`` (after FINAL, waiting for COMMITTED),
then ``DONE`` or ``FAILED`` (a refusal or an abort).
"""

from __future__ import annotations

from enum import Enum

from .errors import ProtocolViolation, StreamTruncated
from .frames import FrameDecoder, FrameType
from .messages import Message, decode_message

#: Versions of this protocol this code speaks (2 adds the proof: HELLO ``prove``, READY and
#: COMMITTED ``proof``, REFUSE code ``proof``).
PROTOCOL_VERSIONS = (1, 2)


class Role(Enum):
    SOURCE = "source"
    DESTINATION = "destination"


class State(Enum):
    HELLO = "hello"
    WELCOME = "welcome"
    COPY = "copy"
    RESTORE = "restore"
    PRECOPY = "precopy"
    ROUND = "round"
    COMMIT = "commit"
    DONE = "done"
    FAILED = "failed"


S, D = Role.SOURCE, Role.DESTINATION
T = FrameType
#: (state, sender, message type) -> the state after it.
TRANSITIONS: dict[tuple[State, Role, FrameType], State] = {
    (State.HELLO, S, T.HELLO): State.WELCOME,
    (State.WELCOME, D, T.WELCOME): State.COPY,
    (State.WELCOME, D, T.REFUSE): State.FAILED,
    (State.COPY, S, T.SNAPSHOT): State.COPY,
    (State.COPY, S, T.SNAPSHOT_END): State.RESTORE,
    (State.COPY, D, T.REFUSE): State.FAILED,
    (State.RESTORE, D, T.PROGRESS): State.RESTORE,
    (State.RESTORE, D, T.READY): State.PRECOPY,
    (State.RESTORE, D, T.REFUSE): State.FAILED,
    (State.PRECOPY, S, T.DELTA): State.PRECOPY,
    (State.PRECOPY, S, T.ROUND_END): State.ROUND,
    (State.PRECOPY, S, T.FINAL): State.COMMIT,
    (State.ROUND, D, T.ROUND_ACK): State.PRECOPY,
    (State.ROUND, D, T.REFUSE): State.FAILED,
    (State.COMMIT, D, T.COMMITTED): State.DONE,
    (State.COMMIT, D, T.REFUSE): State.FAILED,
}
for _state in (State.HELLO, State.WELCOME, State.COPY, State.RESTORE, State.PRECOPY,
               State.ROUND, State.COMMIT):  # the source may give up at any point
    if _state is not State.HELLO:
        TRANSITIONS[(_state, S, T.ABORT)] = State.FAILED
# A delta may cross a ROUND_END on the wire only in this order: deltas, ROUND_END, then the
# acknowledgement; the source waits for it before the next round.


class Connection:
    """One side of one migration."""

    def __init__(self, role: Role) -> None:
        self.role = role
        self.state = State.HELLO
        self._decoder = FrameDecoder()
        self.bytes_sent = 0

    @property
    def peer(self) -> Role:
        return D if self.role is S else S

    @property
    def bytes_received(self) -> int:
        return self._decoder.received

    def _advance(self, sender: Role, kind: FrameType) -> None:
        following = TRANSITIONS.get((self.state, sender, kind))
        if following is None:
            who = "this side" if sender is self.role else f"the {sender.value}"
            raise ProtocolViolation(f"{who} sent {kind.name} in state {self.state.value}: "
                                    f"the migration protocol does not allow it there.")
        self.state = following

    def send(self, message: Message) -> bytes:
        """The bytes for ``message``; refuses one this side may not send now."""
        self._advance(self.role, message.TYPE)
        data = message.encode()
        self.bytes_sent += len(data)
        return data

    def receive_data(self, data: bytes) -> None:
        self._decoder.feed(data)

    def next_message(self) -> Message | None:
        """The next message the peer completed, or None until more bytes arrive."""
        frame = self._decoder.next_frame()
        if frame is None:
            return None
        if self.state in (State.DONE, State.FAILED):
            raise ProtocolViolation(f"the {self.peer.value} sent {frame.type.name} after the "
                                    f"migration ended.")
        self._advance(self.peer, frame.type)
        return decode_message(frame)

    def receive_eof(self) -> None:
        """The peer closed the stream: truncation unless the migration had ended."""
        self._decoder.end_of_stream()
        if self.state not in (State.DONE, State.FAILED):
            raise StreamTruncated(f"the {self.peer.value} closed the stream in state "
                                  f"{self.state.value}, before the migration ended.")

    def fail(self) -> None:
        """This side gave up without a message (the connection is closed afterwards)."""
        self.state = State.FAILED
