"""The BFD Control packet codec (RFC 5880 4.1) and the packet checks of 6.8.6."""

from __future__ import annotations

import struct
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcrd.bfd.packet import BfdDiag, BfdState, ControlPacket, DiscardError, decode, encode

U32 = st.integers(0, 0xFFFFFFFF)


@st.composite
def packets(draw: st.DrawFn) -> ControlPacket:
    state = draw(st.sampled_from(BfdState))
    your = draw(U32 if state in (BfdState.DOWN, BfdState.ADMIN_DOWN) else st.integers(1, 0xFFFFFFFF))
    poll = draw(st.booleans())
    return ControlPacket(
        state=state,
        detect_mult=draw(st.integers(1, 255)),
        my_discriminator=draw(st.integers(1, 0xFFFFFFFF)),
        your_discriminator=your,
        desired_min_tx_us=draw(U32),
        required_min_rx_us=draw(U32),
        required_min_echo_rx_us=draw(U32),
        diag=draw(st.integers(0, 31)),
        poll=poll,
        final=draw(st.booleans()) and not poll,
        control_plane_independent=draw(st.booleans()),
        demand=draw(st.booleans()),
    )


@given(packets())
def test_round_trip(p: ControlPacket) -> None:
    data = encode(p)
    assert len(data) == 24
    assert decode(data) == p


@given(packets(), st.binary(max_size=40))
def test_trailing_bytes_beyond_length_are_ignored(p: ControlPacket, extra: bytes) -> None:
    assert decode(encode(p) + extra) == p


def test_wire_layout() -> None:
    # An FRR-like Up packet with the Poll bit: bytes checked by hand against RFC 5880 4.1.
    p = ControlPacket(BfdState.UP, 3, 0x01020304, 0x0A0B0C0D, 300_000, 300_000, diag=1, poll=True)
    assert encode(p).hex() == "21e0031801020304" "0a0b0c0d" "000493e0" "000493e0" "00000000"


GOOD = ControlPacket(BfdState.UP, 3, 7, 9, 300_000, 300_000)


def _raw(p: ControlPacket) -> bytearray:
    return bytearray(encode(p))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (encode(GOOD)[:23], "shorter than 24"),
        (bytes([0x40]) + encode(GOOD)[1:], "version 2"),
        (encode(GOOD)[:3] + bytes([23]) + encode(GOOD)[4:], "length field 23 below"),
        (encode(GOOD)[:3] + bytes([30]) + encode(GOOD)[4:], "beyond the 24-byte payload"),
        (encode(replace(GOOD, detect_mult=0)), "detect multiplier 0"),
        (encode(replace(GOOD, multipoint=True)), "multipoint"),
        (encode(replace(GOOD, my_discriminator=0)), "my discriminator 0"),
        (encode(replace(GOOD, your_discriminator=0)), "your discriminator 0 in state Up"),
        (encode(replace(GOOD, state=BfdState.INIT, your_discriminator=0)), "your discriminator 0 in state Init"),
        # The A bit with a (minimal) authentication section: refused, mcrd runs without authentication.
        (encode(replace(GOOD, auth_present=True, length=28)) + b"\x01\x04\x00\x00", "authentication"),
        # The A bit with a Length too short for any authentication section.
        (encode(replace(GOOD, auth_present=True)), "length field 24 below"),
    ],
)
def test_discard_rules(data: bytes, reason: str) -> None:
    with pytest.raises(DiscardError, match=reason):
        decode(data)


@pytest.mark.parametrize("state", [BfdState.DOWN, BfdState.ADMIN_DOWN])
def test_your_discriminator_zero_allowed_when_down(state: BfdState) -> None:
    p = replace(GOOD, state=state, your_discriminator=0)
    assert decode(encode(p)) == p


def test_reserved_diag_kept_raw_and_read_as_none() -> None:
    p = decode(encode(replace(GOOD, diag=17)))
    assert p.diag == 17
    assert BfdDiag.of(p.diag) is BfdDiag.NONE
    assert BfdDiag.of(3) is BfdDiag.NEIGHBOR_SIGNALED_DOWN


@pytest.mark.parametrize("field", ["detect_mult", "my_discriminator", "diag", "desired_min_tx_us"])
def test_encode_refuses_out_of_range(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        encode(replace(GOOD, **{field: 1 << 32}))  # type: ignore[arg-type]


def test_state_names() -> None:
    assert [str(s) for s in BfdState] == ["AdminDown", "Down", "Init", "Up"]
    assert [s.value for s in BfdState] == [0, 1, 2, 3]
    assert [d.value for d in BfdDiag] == list(range(9))


def test_flags_decode_individually() -> None:
    data = _raw(GOOD)
    for bit, name in ((0x20, "poll"), (0x10, "final"), (0x08, "control_plane_independent"), (0x02, "demand")):
        data[1] = (BfdState.UP.value << 6) | bit
        assert getattr(decode(bytes(data)), name) is True
        assert struct.unpack_from("!B", data, 1)[0] & bit
