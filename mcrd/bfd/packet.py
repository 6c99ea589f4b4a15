"""BFD Control packets (RFC 5880 4.1): encoding, decoding and the packet-level checks of 6.8.6.  No I/O.

    0                   1                   2                   3
    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
   |Vers |  Diag   |Sta|P|F|C|A|D|M|  Detect Mult  |    Length     |
   |                       My Discriminator                        |
   |                      Your Discriminator                       |
   |                    Desired Min TX Interval                    |
   |                   Required Min RX Interval                    |
   |                 Required Min Echo RX Interval                 |

Intervals are microseconds on the wire, as here.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

VERSION = 1
LENGTH = 24  # without authentication, the only form mcrd sends
_FORMAT = struct.Struct("!BBBBIIIII")
U32 = 0xFFFFFFFF


class BfdState(enum.Enum):
    """bfd.SessionState (RFC 5880 4.1, 6.2); the value is the wire code."""

    ADMIN_DOWN = 0
    DOWN = 1
    INIT = 2
    UP = 3

    def __str__(self) -> str:
        return _STATE_NAMES[self]


_STATE_NAMES = {BfdState.ADMIN_DOWN: "AdminDown", BfdState.DOWN: "Down", BfdState.INIT: "Init", BfdState.UP: "Up"}


class BfdDiag(enum.IntEnum):
    """Diagnostic codes (RFC 5880 4.1)."""

    NONE = 0
    CONTROL_DETECTION_TIME_EXPIRED = 1
    ECHO_FAILED = 2
    NEIGHBOR_SIGNALED_DOWN = 3
    FORWARDING_PLANE_RESET = 4
    PATH_DOWN = 5
    CONCATENATED_PATH_DOWN = 6
    ADMINISTRATIVELY_DOWN = 7
    REVERSE_CONCATENATED_PATH_DOWN = 8

    @classmethod
    def of(cls, code: int) -> BfdDiag:
        """The code as a BfdDiag; the reserved codes 9..31 read as NONE (they carry nothing mcrd could act on)."""
        try:
            return cls(code)
        except ValueError:
            return cls.NONE


@dataclass(frozen=True, slots=True)
class ControlPacket:
    state: BfdState
    detect_mult: int
    my_discriminator: int
    your_discriminator: int
    desired_min_tx_us: int
    required_min_rx_us: int
    required_min_echo_rx_us: int = 0
    diag: int = 0  # an int, not BfdDiag: a peer may send a reserved code and the packet is still valid
    poll: bool = False
    final: bool = False
    control_plane_independent: bool = False
    auth_present: bool = False
    demand: bool = False
    multipoint: bool = False
    version: int = VERSION
    length: int = LENGTH


class DiscardError(ValueError):
    """A received packet that RFC 5880 6.8.6 says to discard; the message is the reason."""


def encode(p: ControlPacket) -> bytes:
    """The packet's 24 bytes (fields out of range raise ValueError)."""
    for name, value, top in (
        ("version", p.version, 7),
        ("diag", p.diag, 31),
        ("detect_mult", p.detect_mult, 255),
        ("length", p.length, 255),
        ("my_discriminator", p.my_discriminator, U32),
        ("your_discriminator", p.your_discriminator, U32),
        ("desired_min_tx_us", p.desired_min_tx_us, U32),
        ("required_min_rx_us", p.required_min_rx_us, U32),
        ("required_min_echo_rx_us", p.required_min_echo_rx_us, U32),
    ):
        if not 0 <= value <= top:
            raise ValueError(f"BFD packet field {name}={value} out of range 0..{top}")
    flags = (
        p.state.value << 6
        | p.poll << 5
        | p.final << 4
        | p.control_plane_independent << 3
        | p.auth_present << 2
        | p.demand << 1
        | p.multipoint
    )
    return _FORMAT.pack(
        p.version << 5 | p.diag,
        flags,
        p.detect_mult,
        p.length,
        p.my_discriminator,
        p.your_discriminator,
        p.desired_min_tx_us,
        p.required_min_rx_us,
        p.required_min_echo_rx_us,
    )


def decode(data: bytes) -> ControlPacket:
    """A received Control packet, checked as RFC 5880 6.8.6 says before any session is looked at.

    Raises DiscardError (with the reason) for: too short, a version other than 1, a Length field below the minimum or
    beyond the datagram, Detect Mult 0, the Multipoint bit, My Discriminator 0, Your Discriminator 0 outside
    Down/AdminDown, and the Authentication bit (mcrd runs without authentication, so 6.8.6 says discard).
    """
    if len(data) < LENGTH:
        raise DiscardError(f"packet of {len(data)} bytes, shorter than {LENGTH}")
    vd, flags, mult, length, my, your, tx, rx, echo = _FORMAT.unpack_from(data)
    version, diag = vd >> 5, vd & 0x1F
    if version != VERSION:
        raise DiscardError(f"version {version}, not {VERSION}")
    auth = bool(flags & 0x04)
    if length < (LENGTH + 2 if auth else LENGTH):
        raise DiscardError(f"length field {length} below the minimum")
    if length > len(data):
        raise DiscardError(f"length field {length} beyond the {len(data)}-byte payload")
    if mult == 0:
        raise DiscardError("detect multiplier 0")
    if flags & 0x01:
        raise DiscardError("multipoint bit set")
    if my == 0:
        raise DiscardError("my discriminator 0")
    state = BfdState(flags >> 6)
    if your == 0 and state not in (BfdState.DOWN, BfdState.ADMIN_DOWN):
        raise DiscardError(f"your discriminator 0 in state {state}")
    if auth:
        raise DiscardError("authentication bit set; no authentication is configured")
    return ControlPacket(
        state=state,
        detect_mult=mult,
        my_discriminator=my,
        your_discriminator=your,
        desired_min_tx_us=tx,
        required_min_rx_us=rx,
        required_min_echo_rx_us=echo,
        diag=diag,
        poll=bool(flags & 0x20),
        final=bool(flags & 0x10),
        control_plane_independent=bool(flags & 0x08),
        auth_present=auth,
        demand=bool(flags & 0x02),
        multipoint=False,
        version=version,
        length=length,
    )
