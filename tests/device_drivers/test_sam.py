"""SAM ID card reader codec: frames on exact bytes, the streaming parser, the text block, ID numbers."""
from __future__ import annotations

from datetime import date

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from device_drivers.sam import (
    FIND_CARD,
    NATIONS,
    PREAMBLE,
    READ_TEXT_PHOTO,
    READ_TEXT_PHOTO_FP,
    RESET_SAM,
    SAM_ID,
    SAM_STATUS,
    SELECT_CARD,
    STATUS_MESSAGES,
    Frame,
    FrameParser,
    IdCardData,
    IdCardDataError,
    InvalidIdNumberError,
    RejectReason,
    Reply,
    Request,
    SamFrameError,
    SamStatus,
    SamStatusError,
    UnsupportedCardLayoutError,
    decode_sam_id,
    encode_read_data,
    encode_sam_id,
    id_check_char,
    parse_read_reply,
    parse_text_block,
    status_message,
    validate_id_number,
    xor_checksum,
)


def h(text: str) -> bytes:
    return bytes.fromhex(text)


CARD = IdCardData.build(
    name="阿依古丽·测试", sex_code="2", nation_code="05", birth_date=date(1990, 7, 8),
    address="测试自治区样例市天山示例街道虚构巷12号", id_number="650102199007080040",
    issuing_authority="样例市公安局天山示例分局", valid_from=date(2021, 9, 1), valid_to=date(2041, 9, 1),
    photo_wlt=bytes(range(256)) * 4,
)


# ---- frames on exact bytes ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "request_, wire",
    [
        (FIND_CARD, "AA AA AA 96 69 00 03 20 01 22"),
        (SELECT_CARD, "AA AA AA 96 69 00 03 20 02 21"),
        (READ_TEXT_PHOTO, "AA AA AA 96 69 00 03 30 01 32"),
        (READ_TEXT_PHOTO_FP, "AA AA AA 96 69 00 03 30 10 23"),
        (RESET_SAM, "AA AA AA 96 69 00 03 10 FF EC"),
        (SAM_STATUS, "AA AA AA 96 69 00 03 11 FF ED"),
        (SAM_ID, "AA AA AA 96 69 00 03 12 FF EE"),
        (Request(0x60, 0x04), "AA AA AA 96 69 00 03 60 04 67"),
    ],
)
def test_requests_are_byte_exact(request_: Request, wire: str) -> None:
    assert request_.encode() == h(wire)
    [frame] = FrameParser().feed(h(wire))
    assert Request.from_frame(frame) == request_


def test_find_card_reply_decodes() -> None:
    wire = h("AA AA AA 96 69 00 08 00 00 9F 00 00 00 00 97")
    [frame] = FrameParser(min_body=3).feed(wire)
    reply = Reply.from_frame(frame)
    assert (reply.sw3, reply.data, reply.ok) == (SamStatus.CARD_FOUND, bytes(4), True)
    assert reply.encode() == wire


def test_no_card_reply_decodes_to_failure() -> None:
    [frame] = FrameParser(min_body=3).feed(h("AA AA AA 96 69 00 04 00 00 80 84"))
    reply = Reply.from_frame(frame)
    assert not reply.ok
    with pytest.raises(SamStatusError) as err:
        reply.raise_for_status(SamStatus.CARD_FOUND)
    assert err.value.status is SamStatus.FIND_FAILED
    assert err.value.message == "未检测到身份证，请将身份证放在感应区"


def test_read_reply_is_1295_bytes_and_round_trips() -> None:
    wire = Reply(0, 0, SamStatus.OK, encode_read_data(CARD.to_text_block(), CARD.photo_wlt)).encode()
    assert len(wire) == 1295
    assert wire[:14] == h("AA AA AA 96 69 05 08 00 00 90 01 00 04 00")
    assert wire[-1] == xor_checksum(wire[5:-1])
    [frame] = FrameParser(min_body=3).feed(wire)
    card = parse_read_reply(Reply.from_frame(frame))
    assert card == CARD
    assert card.photo_wlt == CARD.photo_wlt


def test_read_reply_with_fingerprint() -> None:
    fp = b"\x43" * 1024
    data = encode_read_data(CARD.to_text_block(), CARD.photo_wlt, fp)
    assert data[:6] == h("01 00 04 00 04 00")
    card = parse_read_reply(Reply(0, 0, SamStatus.OK, data), with_fingerprint=True)
    assert card.fingerprint == fp


def test_read_reply_whose_lengths_do_not_add_up_is_a_frame_error() -> None:
    data = encode_read_data(CARD.to_text_block(), CARD.photo_wlt)[:-10]
    with pytest.raises(SamFrameError):
        parse_read_reply(Reply(0, 0, SamStatus.OK, data))


def test_read_failure_reply_raises_status() -> None:
    with pytest.raises(SamStatusError) as err:
        parse_read_reply(Reply(0, 0, SamStatus.READ_FAILED))
    assert err.value.code == 0x41
    assert "读取身份证失败" in err.value.message


# ---- status codes -------------------------------------------------------------------------------
DEVICES_MD_CODES = [0x90, 0x9F, 0x80, 0x81, 0x41, 0x91, 0x10, 0x11, 0x21, 0x23, 0x24, 0x31, 0x32,
                    0x33, 0x37, 0x40, 0x47, 0x60, 0x66]


@pytest.mark.parametrize("code", DEVICES_MD_CODES)
def test_every_documented_status_has_a_chinese_message(code: int) -> None:
    message = status_message(code)
    assert SamStatus(code) in STATUS_MESSAGES
    assert any("\u4e00" <= ch <= "\u9fff" for ch in message)
    assert "未知状态" not in message


def test_status_messages_are_distinct() -> None:
    assert len(set(STATUS_MESSAGES.values())) == len(STATUS_MESSAGES) == len(DEVICES_MD_CODES)


def test_unlisted_status_is_named_with_its_code() -> None:
    err = SamStatusError(0x55)
    assert err.status is None and err.code == 0x55
    assert "0x55" in err.message


# ---- the streaming parser -----------------------------------------------------------------------
GOOD = [
    h("AA AA AA 96 69 00 08 00 00 9F 00 00 00 00 97"),
    h("AA AA AA 96 69 00 04 00 00 80 84"),
    Reply(0, 0, 0x90, bytes(range(40))).encode(),
]


def test_split_at_every_position() -> None:
    stream = b"".join(GOOD)
    for cut in range(len(stream) + 1):
        parser = FrameParser(min_body=3)
        frames = parser.feed(stream[:cut]) + parser.feed(stream[cut:])
        assert [f.encode() for f in frames] == GOOD, cut
        assert parser.pending == 0


def test_byte_by_byte() -> None:
    parser = FrameParser(min_body=3)
    frames = [f for b in b"".join(GOOD) for f in parser.feed(bytes([b]))]
    assert [f.encode() for f in frames] == GOOD


def test_garbage_and_partial_preambles_are_skipped() -> None:
    parser = FrameParser(min_body=3)
    stream = b"\x00\xff\xaa\xaa" + GOOD[0] + b"\xaa\xaa\xaa\x96" + GOOD[1] + b"noise\xaa"
    assert [f.encode() for f in parser.feed(stream)] == GOOD[:2]
    assert parser.pending == 1  # the trailing AA could begin a frame
    assert [f.encode() for f in parser.feed(b"\xaa\xaa\x96\x69" + GOOD[2][5:])] == [GOOD[2]]


def test_bad_checksum_is_rejected_and_next_frame_kept() -> None:
    rejects = []
    parser = FrameParser(min_body=3, on_reject=rejects.append)
    bad = GOOD[0][:-1] + bytes([GOOD[0][-1] ^ 0x01])
    assert [f.encode() for f in parser.feed(bad + GOOD[1])] == [GOOD[1]]
    assert [r.reason for r in rejects] == [RejectReason.CHECKSUM]


def test_false_preamble_with_absurd_length_does_not_stall() -> None:
    rejects = []
    parser = FrameParser(min_body=3, on_reject=rejects.append)
    junk = PREAMBLE + b"\xff\xff" + b"\x00" * 3  # claims a 64 kB frame
    assert [f.encode() for f in parser.feed(junk + GOOD[1])] == [GOOD[1]]
    assert rejects[0].reason is RejectReason.LENGTH


def test_good_frame_hidden_inside_a_corrupted_one_is_found() -> None:
    # a damaged header whose LEN swallows the next good frame: checksum fails, rescanning finds it
    parser = FrameParser(min_body=3)
    damaged = PREAMBLE + b"\x00\x30" + b"\x00\x00\x90"
    stream = damaged + GOOD[2]
    assert [f.encode() for f in parser.feed(stream + b"\x00" * 64)] == [GOOD[2]]


frames_st = st.builds(
    lambda sw3, data: Reply(0, 0, sw3, data).encode(),
    st.sampled_from(DEVICES_MD_CODES),
    st.binary(max_size=300),
).filter(lambda raw: PREAMBLE not in raw[5:])
garbage_st = st.binary(max_size=40).filter(lambda g: PREAMBLE not in g)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(garbage_st, frames_st), min_size=1, max_size=5),
    st.lists(st.integers(min_value=0), max_size=12),
)
def test_property_garbage_between_frames_and_any_split(
    pieces: list[tuple[bytes, bytes]], cuts: list[int]
) -> None:
    stream = b"".join(g + f for g, f in pieces)
    # garbage glued to a frame's start must not form a preamble across the seam
    assume(stream.count(PREAMBLE) == len(pieces))
    parser = FrameParser(min_body=3)
    frames = [f for chunk in chunked(stream, cuts) for f in parser.feed(chunk)]
    assert [f.encode() for f in frames] == [f for _, f in pieces]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(frames_st, st.booleans(), st.integers(1, 255)), min_size=1, max_size=6),
    st.lists(st.integers(min_value=0), max_size=8),
)
def test_property_corrupted_checksums_rejected_next_good_parsed(
    items: list[tuple[bytes, bool, int]], cuts: list[int]
) -> None:
    wire, expected, n_bad = b"", [], 0
    for raw, corrupt, flip in items:
        if corrupt:
            wire += raw[:-1] + bytes([raw[-1] ^ flip])
            n_bad += 1
        else:
            wire += raw
            expected.append(raw)
    rejects = []
    parser = FrameParser(min_body=3, on_reject=rejects.append)
    frames = [f for chunk in chunked(wire, cuts) for f in parser.feed(chunk)]
    assert [f.encode() for f in frames] == expected
    assert sum(r.reason is RejectReason.CHECKSUM for r in rejects) == n_bad


def test_frame_encode_matches_reply_encode() -> None:
    assert Frame(b"\x00\x00\x90").encode() == h("AA AA AA 96 69 00 04 00 00 90 94")


# ---- ID numbers ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "number", ["110101195804120017", "44010619751122037X", "650102199007080040", "11010519491231002X"]
)
def test_valid_id_numbers(number: str) -> None:
    assert validate_id_number(number) == number


def test_lower_case_x_is_normalised() -> None:
    assert validate_id_number("44010619751122037x") == "44010619751122037X"


@pytest.mark.parametrize("number", ["110101195804120018", "440106197511220370", "65010219900708004X"])
def test_bad_check_character_is_a_clear_error(number: str) -> None:
    with pytest.raises(InvalidIdNumberError) as err:
        validate_id_number(number)
    assert err.value.message == "身份证号码校验位错误，请到人工窗口办理"
    assert "expected" in err.value.detail


@pytest.mark.parametrize("number", ["", "11010119580412001", "1101011958041200177", "11010119580412A017"])
def test_malformed_id_numbers(number: str) -> None:
    with pytest.raises(InvalidIdNumberError, match="格式错误"):
        validate_id_number(number)


@given(st.text(alphabet="0123456789", min_size=17, max_size=17), st.sampled_from("0123456789X"))
def test_property_exactly_one_check_character_is_accepted(first17: str, last: str) -> None:
    good = id_check_char(first17)
    if last == good:
        assert validate_id_number(first17 + last) == first17 + last
    else:
        with pytest.raises(InvalidIdNumberError):
            validate_id_number(first17 + last)


# ---- the text block -----------------------------------------------------------------------------
def test_text_block_layout() -> None:
    block = CARD.to_text_block()
    assert len(block) == 256
    assert block[:14].decode("utf-16-le") == "阿依古丽·测试"
    assert block[30:32].decode("utf-16-le") == "2"
    assert block[32:36].decode("utf-16-le") == "05"
    assert block[36:52].decode("utf-16-le") == "19900708"
    assert block[122:158].decode("utf-16-le") == "650102199007080040"
    assert block[204:220].decode("utf-16-le") == "20410901"
    assert block[248:250] == b" \x00"


def test_text_block_parses() -> None:
    card = parse_text_block(CARD.to_text_block(), photo_wlt=b"photo")
    assert (card.name, card.sex, card.nation, card.birth_date) == ("阿依古丽·测试", "女", "维吾尔", date(1990, 7, 8))
    assert card.address == "测试自治区样例市天山示例街道虚构巷12号"
    assert card.issuing_authority == "样例市公安局天山示例分局"
    assert (card.valid_from, card.valid_to) == (date(2021, 9, 1), date(2041, 9, 1))
    assert card.photo_wlt == b"photo"
    assert card.validity_text == "2021.09.01-2041.09.01"


def test_long_term_validity() -> None:
    elder = IdCardData.build(
        name="王测试", sex_code="1", nation_code="01", birth_date=date(1958, 4, 12),
        address="测试省示例市虚构区样例路1号", id_number="110101195804120017",
        issuing_authority="示例市公安局虚构分局", valid_from=date(2008, 5, 20), valid_to=None,
    )
    block = elder.to_text_block()
    assert block[204:208].decode("utf-16-le") == "长期"
    card = parse_text_block(block)
    assert card.valid_to is None and card.long_term and card.sex == "男" and card.nation == "汉"
    assert card.validity_text == "2008.05.20-长期"
    assert not card.is_expired(date(2099, 1, 1))


def test_expiry_and_age() -> None:
    assert CARD.is_expired(date(2041, 9, 2)) and not CARD.is_expired(date(2041, 9, 1))
    assert CARD.age(date(2026, 7, 7)) == 35 and CARD.age(date(2026, 7, 8)) == 36


def test_nation_table_has_the_56_groups() -> None:
    groups = [NATIONS[f"{i:02d}"] for i in range(1, 57)]
    assert len(set(groups)) == 56
    assert (NATIONS["01"], NATIONS["05"], NATIONS["56"]) == ("汉", "维吾尔", "基诺")


def test_bad_check_character_on_the_card() -> None:
    block = bytearray(CARD.to_text_block())
    block[156:158] = "1".encode("utf-16-le")
    with pytest.raises(InvalidIdNumberError, match="校验位错误"):
        parse_text_block(bytes(block))


def test_birth_date_must_match_the_id_number() -> None:
    block = bytearray(CARD.to_text_block())
    block[36:52] = "19900709".encode("utf-16-le")
    with pytest.raises(IdCardDataError, match="出生日期与号码不符"):
        parse_text_block(bytes(block))


def test_impossible_date_is_a_clear_error() -> None:
    block = bytearray(CARD.to_text_block())
    block[188:204] = "20210231".encode("utf-16-le")
    with pytest.raises(IdCardDataError, match="有效期限无法识别"):
        parse_text_block(bytes(block))


@pytest.mark.parametrize("marker, kind", [("I", "外国人永久居留身份证"), ("J", "港澳台居民居住证")])
def test_other_card_layouts_are_refused_clearly(marker: str, kind: str) -> None:
    with pytest.raises(UnsupportedCardLayoutError) as err:
        parse_text_block(CARD.to_text_block(card_type=marker))
    assert kind in err.value.message and err.value.marker == marker


def test_field_too_long_for_the_card_is_refused() -> None:
    too_long = IdCardData.build(
        name="名" * 16, sex_code="1", nation_code="01", birth_date=date(1958, 4, 12), address="",
        id_number="110101195804120017", issuing_authority="", valid_from=date(2008, 5, 20), valid_to=None,
    )
    with pytest.raises(ValueError, match="name"):
        too_long.to_text_block()


def test_repr_masks_personal_data() -> None:
    text = repr(CARD)
    assert "650102199007080040" not in text and "阿依古丽" not in text
    assert "650102********0040" in text


def test_sam_id_round_trip() -> None:
    sam_id = "05.01-20101111-0012345678-1234567890"
    raw = encode_sam_id(sam_id)
    assert len(raw) == 16
    assert decode_sam_id(raw) == sam_id
