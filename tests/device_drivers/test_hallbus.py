"""Hall bus codec and Onbon BX adapter, tested on bytes (no port)."""
from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_drivers import hallbus as hb
from device_drivers.caller_pad import CallerKey, decode_caller_event, encode_caller_event
from device_drivers.led_board import (
    OnbonBxAdapter, OnbonFrame, OnbonParser, WindowLedBoard, encode_onbon, onbon_escape,
)


def crc16_arc_reference(data: bytes) -> int:
    """Bitwise CRC-16/ARC, independent of the library the codec uses."""
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# Worked examples, identical to the ones in docs/protocols.md.
EXAMPLES = [
    (hb.Frame(1, 5, hb.Command.PING), "7E 01 05 01 00 00 6C CC 7F"),
    (hb.Frame(1, 5, hb.Command.INFO, h("01 01 00")), "7E 01 05 81 03 00 01 01 00 9E 8D 7F"),
    (hb.Frame(1, 6, hb.Command.ACK), "7E 01 06 F0 00 00 3D 7B 7F"),
    (hb.Frame(1, 6, hb.Command.SHOW_CALLED,
              hb.pack_called(hb.CalledInfo("A001", "3号窗口", hb.Colour.RED, 10))),
     "7E 01 06 12 0F 00 01 0A 04 41 30 30 31 07 33 BA C5 B4 B0 BF DA F9 19 7F"),
    (hb.Frame(1, 7, hb.Command.SHOW_LINES,
              hb.pack_lines([hb.LedLine("暂停服务", hb.Colour.YELLOW, hb.Mode.STEADY)])),
     "7E 01 07 10 0C 00 01 03 00 08 D4 DD CD A3 B7 FE CE F1 9C E3 7F"),
    (hb.Frame(20, 0x7E, hb.Command.POLL), "7E 14 7D 5E 02 00 00 89 EB 7F"),
    (hb.Frame(20, 0x7E, hb.Command.EVENTS, h("00")), "7E 14 7D 5E 82 01 00 00 52 A6 7F"),
    (hb.Frame(20, 0x7F, hb.Command.EVENTS, h("01 06 01 35")),
     "7E 14 7D 5F 82 04 00 01 06 01 35 3B 92 7F"),
    (hb.Frame(20, 0x11, hb.Command.PAD_DISPLAY, hb.pack_pad_display(hb.PadDisplay("A001", 12))),
     "7E 14 11 20 08 00 0C 00 04 41 30 30 31 00 01 43 7F"),
    (hb.Frame(30, 0x21, hb.Command.EVAL_PROMPT,
              hb.pack_eval_prompt(hb.EvalPromptPayload(7, 30, "A001", "张三", "1001", "社保"))),
     "7E 1E 21 30 16 00 07 1E 04 41 30 30 31 04 D5 C5 C8 FD 04 31 30 30 31 04 C9 E7 B1 A3 94 DA 7F"),
    (hb.Frame(30, 0x22, hb.Command.EVENTS, h("01 20 02 07 05")), "7E 1E 22 82 05 00 01 20 02 07 05 69 8B 7F"),
    (hb.Frame(1, 8, hb.Command.NAK, h("05")), "7E 01 08 F1 01 00 05 43 2F 7F"),
    (hb.Frame(0xFF, 3, hb.Command.CLEAR), "7E FF 03 11 00 00 44 55 7F"),
    (hb.Frame(0x7D, 1, hb.Command.SET_BRIGHTNESS, h("08")), "7E 7D 5D 01 13 01 00 08 63 6F 7F"),
]


@pytest.mark.parametrize("frame,wire", EXAMPLES, ids=[f.describe()[:40] for f, _ in EXAMPLES])
def test_documented_frames_encode_and_decode_exactly(frame: hb.Frame, wire: str) -> None:
    assert hb.encode(frame) == h(wire)
    assert hb.FrameParser().feed(h(wire)) == [frame]


def test_crc_is_crc16_arc() -> None:
    assert hb.crc16_arc(b"123456789") == 0xBB3D
    assert hb.crc16_arc(h("01 05 01 00 00")) == crc16_arc_reference(h("01 05 01 00 00")) == 0xCC6C


def test_sequence_number_equal_to_start_byte_is_escaped() -> None:
    wire = hb.encode(hb.Frame(20, 0x7E, hb.Command.POLL))
    assert wire.count(hb.SOF) == 1 and wire[0] == hb.SOF
    assert wire.count(hb.EOF) == 1 and wire[-1] == hb.EOF


def test_garbage_truncated_frame_and_bad_crc_are_dropped_and_next_frame_kept() -> None:
    good = hb.Frame(1, 6, hb.Command.ACK)
    bad_crc = bytearray(hb.encode(hb.Frame(1, 7, hb.Command.ACK)))
    bad_crc[-2] ^= 0x01  # CRC high byte
    truncated = hb.encode(hb.Frame(2, 9, hb.Command.PING))[:-4]
    parser = hb.FrameParser()
    frames = parser.feed(b"\x00\xffnoise" + truncated + bytes(bad_crc) + hb.encode(good))
    assert frames == [good]
    assert parser.crc_errors == 1
    assert parser.framing_errors == 1  # the truncated one, cut by the next start byte
    assert parser.garbage_bytes == 7


def test_length_mismatch_and_bad_escape_are_dropped() -> None:
    body = struct.pack("<BBBH", 1, 1, hb.Command.ACK, 3)  # claims 3 payload bytes, has none
    body += struct.pack("<H", hb.crc16_arc(body))
    parser = hb.FrameParser()
    assert parser.feed(bytes((hb.SOF,)) + hb.escape(body) + bytes((hb.EOF,))) == []
    assert parser.feed(h("7E 01 7D 41 7F")) == []  # 7D 41 is no valid escape
    assert parser.framing_errors == 2
    assert parser.feed(hb.encode(hb.Frame(1, 2, hb.Command.ACK))) == [hb.Frame(1, 2, hb.Command.ACK)]


def test_oversized_frame_is_dropped_without_eating_the_next() -> None:
    parser = hb.FrameParser()
    good = hb.Frame(3, 3, hb.Command.ACK)
    assert parser.feed(b"\x7e" + b"\x01" * 2000 + hb.encode(good)) == [good]
    assert parser.framing_errors == 1


def test_frame_rejects_out_of_range_fields() -> None:
    with pytest.raises(hb.FrameError, match="payload of 1025 bytes"):
        hb.Frame(1, 1, hb.Command.SHOW_LINES, bytes(1025))
    with pytest.raises(hb.FrameError, match="address 256"):
        hb.Frame(256, 1, 1)


frames_st = st.builds(
    hb.Frame,
    address=st.integers(0, 255),
    seq=st.integers(0, 255),
    cmd=st.integers(0, 255),
    # payloads rich in the special bytes 7D/7E/7F
    payload=st.lists(st.one_of(st.sampled_from([0x7D, 0x7E, 0x7F, 0x5D, 0x5E, 0x5F]),
                               st.integers(0, 255)), max_size=300).map(bytes),
)


@settings(max_examples=300, deadline=None)
@given(frames=st.lists(frames_st, min_size=1, max_size=5), data=st.data())
def test_round_trip_split_anywhere(frames: list[hb.Frame], data: st.DataObject) -> None:
    wire = b"".join(hb.encode(f) for f in frames)
    assert wire.count(hb.SOF) == len(frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=8)))
    parser = hb.FrameParser()
    out: list[hb.Frame] = []
    for start, end in zip([0] + cuts, cuts + [len(wire)]):
        out += parser.feed(wire[start:end])
    assert out == frames
    assert parser.crc_errors == parser.framing_errors == 0


@settings(max_examples=200, deadline=None)
@given(garbage=st.binary(max_size=200), frame=frames_st)
def test_resync_after_arbitrary_garbage(garbage: bytes, frame: hb.Frame) -> None:
    parser = hb.FrameParser()
    out = parser.feed(garbage + hb.encode(frame))
    # garbage may itself contain something frame-like, but never hides the real frame behind it
    assert out[-1:] == [frame]


@settings(max_examples=200, deadline=None)
@given(frame=frames_st, position=st.integers(0, 10_000), flip=st.integers(1, 255))
def test_any_corrupted_byte_is_dropped_and_next_frame_kept(frame: hb.Frame, position: int,
                                                           flip: int) -> None:
    wire = bytearray(hb.encode(frame))
    i = 1 + position % (len(wire) - 2)  # inside the frame
    wire[i] ^= flip
    nxt = hb.Frame(9, 9, hb.Command.ACK)
    parser = hb.FrameParser()
    out = parser.feed(bytes(wire) + hb.encode(nxt))
    assert out[-1] == nxt
    assert frame not in out[:-1] or frame == nxt


# ---- payloads ----------------------------------------------------------------------------------
text_st = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40).filter(
    lambda t: len(t.encode("gb18030")) <= 255)


@settings(max_examples=100, deadline=None)
@given(lines=st.lists(st.builds(hb.LedLine, text_st, st.sampled_from(hb.Colour),
                                st.sampled_from(hb.Mode)), max_size=8))
def test_led_lines_round_trip_any_gb18030_text(lines: list[hb.LedLine]) -> None:
    assert hb.unpack_lines(hb.pack_lines(lines)) == lines


def test_payload_round_trips_and_precise_errors() -> None:
    p = hb.EvalPromptPayload(200, 60, "B012", "李四", "A-77", "不动产登记")
    assert hb.unpack_eval_prompt(hb.pack_eval_prompt(p)) == p
    d = hb.PadDisplay("C003", 65535, "暂停中")
    assert hb.unpack_pad_display(hb.pack_pad_display(d)) == d
    ev = [hb.RawEvent(1), hb.RawEvent(6, "窗口5".encode("gb18030"))]
    assert hb.unpack_events(hb.pack_events(ev)) == ev
    with pytest.raises(hb.FrameError, match="EVENTS payload too short"):
        hb.unpack_events(h("02 01 00"))
    with pytest.raises(hb.FrameError, match="文本过长"):
        hb.pack_lines([hb.LedLine("字" * 200)])
    with pytest.raises(hb.FrameError, match="colour: unknown value 0x09"):
        hb.unpack_lines(h("01 09 00 00"))


def test_caller_events_are_typed() -> None:
    for key in CallerKey:
        target = "5" if key is CallerKey.TRANSFER else None
        ev = decode_caller_event("pad", 20, encode_caller_event(key, target))
        assert (ev.key, ev.target) == (key, target)
    with pytest.raises(hb.FrameError, match="unknown key code 0x99"):
        decode_caller_event("pad", 20, hb.RawEvent(0x99))


# ---- Onbon BX-5K adapter -----------------------------------------------------------------------
def test_onbon_frame_layout_and_crc() -> None:
    wire = encode_onbon(OnbonFrame(1, h("A3 06 01 00 00 00 00")))
    assert wire == h("A5 A5 A5 A5 A5 A5 A5 A5 01 00 00 80 00 00 00 00 00 FE 02 07 00 "
                     "A3 06 01 00 00 00 00 42 84 5A")
    body = wire[8:-3]
    assert wire[-3:-1] == struct.pack("<H", crc16_arc_reference(body))


def test_onbon_escaping_of_special_bytes_in_address_and_data() -> None:
    assert onbon_escape(h("A5 A6 5A 5B 00")) == h("A6 02 A6 01 5B 02 5B 01 00")
    frame = OnbonFrame(0x5A, h("A5 A6 5A 5B"))
    wire = encode_onbon(frame)
    assert wire == h("A5 A5 A5 A5 A5 A5 A5 A5 5B 02 00 00 80 00 00 00 00 00 FE 02 04 00 "
                     "A6 02 A6 01 5B 02 5B 01 8E CB 5A")
    assert wire[8:].count(0xA5) == 0 and wire[:-1].count(0x5A) == 0
    assert OnbonParser().feed(wire) == [frame]


@settings(max_examples=150, deadline=None)
@given(dst=st.integers(0, 0xFFFF), data=st.binary(max_size=200), garbage=st.binary(max_size=40),
       cut=st.integers(0, 400))
def test_onbon_round_trip_with_garbage_and_split(dst: int, data: bytes, garbage: bytes, cut: int) -> None:
    frame = OnbonFrame(dst, data)
    wire = garbage + encode_onbon(frame)
    parser = OnbonParser()
    cut = min(cut, len(wire))
    out = parser.feed(wire[:cut]) + parser.feed(wire[cut:])
    assert out[-1] == frame


def test_onbon_bad_crc_dropped() -> None:
    wire = bytearray(encode_onbon(OnbonFrame(1, b"\x01\x02")))
    wire[-2] ^= 0x10
    parser = OnbonParser()
    assert parser.feed(bytes(wire) + encode_onbon(OnbonFrame(2, b""))) == [OnbonFrame(2, b"")]
    assert parser.crc_errors == 1


def test_window_board_through_onbon_adapter_writes_gb2312_text() -> None:
    written: list[bytes] = []
    board = WindowLedBoard(OnbonBxAdapter(written.append, address=3, width=64, height=32))
    board.show_called("A001", "3号窗口").result(1)
    (frame,) = OnbonParser().feed(written[0])
    assert frame.dst == 3 and frame.device_type == 0xFE and frame.version == 0x02
    assert frame.data[:2] == h("A3 06")
    assert frame.data.endswith("请A001号\r\n3号窗口".encode("gb2312"))
    with pytest.raises(hb.FrameError, match="not GB2312"):
        board.show_text("𠀀")


def test_every_example_frame_in_the_protocol_document_is_valid() -> None:
    import pathlib
    import re

    doc = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "protocols.md").read_text("utf-8")
    wires = re.findall(r"^(?:host|board|pad)\s+((?:[0-9A-F]{2} )+[0-9A-F]{2})$", doc, re.M)
    assert len(wires) >= 12
    documented = {w for _, w in EXAMPLES}
    for wire in wires:
        parser = hb.FrameParser()
        assert len(parser.feed(h(wire))) == 1, wire
        assert wire in documented, f"{wire} is in the document but not checked against the encoder"
