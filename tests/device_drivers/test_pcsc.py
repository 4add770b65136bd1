"""The PC/SC codec on bytes: APDUs, status words, SIMPLE-TLV, the 社保卡 read sequence."""
from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_drivers import pcsc
from device_drivers.pcsc import (
    CardStatusError,
    MalformedResponseError,
    NotSocialSecurityCardError,
    ResponseApdu,
    SocialSecurityReadError,
    Tlv,
    TlvError,
    decode_social_security,
    encode_simple_tlv,
    exchange,
    parse_simple_tlv,
    read_social_security_card,
    read_uid,
)
from device_drivers.registry import driver_class
from simulators.pcsc_card import SocialSecurityHolder, VirtualSocialSecurityCard


# ---- command APDUs --------------------------------------------------------------------------
def test_command_apdus_are_the_published_bytes() -> None:
    assert pcsc.GET_UID == bytes.fromhex("FF CA 00 00 00")
    assert pcsc.select_aid() == bytes.fromhex("00 A4 04 00 0F 7378312E73682EC9E7BBE1B1A3D5CF")
    assert pcsc.SSSE_AID == b"sx1.sh." + "社会保障".encode("gbk")
    assert pcsc.select_ef(0xEF05) == bytes.fromhex("00 A4 02 00 02 EF 05")
    assert pcsc.read_record(7) == bytes.fromhex("00 B2 07 04 00")
    assert pcsc.read_record(2, 0x20) == bytes.fromhex("00 B2 02 04 20")
    assert pcsc.get_response(0x12) == bytes.fromhex("00 C0 00 00 12")


@pytest.mark.parametrize("bad", [lambda: pcsc.read_record(0), lambda: pcsc.read_record(1, 256),
                                 lambda: pcsc.select_aid(b""), lambda: pcsc.select_ef(0x10000)])
def test_command_builders_reject_impossible_arguments(bad) -> None:
    with pytest.raises(ValueError):
        bad()


# ---- responses and status words ---------------------------------------------------------------
def test_response_splits_data_and_status_word() -> None:
    r = ResponseApdu.parse(bytes.fromhex("0102 9000"))
    assert (r.data, r.sw, r.ok) == (b"\x01\x02", 0x9000, True)
    assert r.check() == b"\x01\x02"


def test_response_without_status_word_is_malformed() -> None:
    with pytest.raises(MalformedResponseError, match="no status word"):
        ResponseApdu.parse(b"\x90")


@pytest.mark.parametrize(
    ("sw", "text"),
    [
        (0x6A82, "文件或应用未找到"),
        (0x6982, "安全状态不满足"),
        (0x6983, "密码已锁定"),
        (0x6D00, "指令不支持"),
        (0x6E00, "命令类别不支持"),
        (0x6A83, "记录未找到"),
        (0x63C2, "密码错误，还可尝试 2 次"),
        (0x6C12, "应为 18 字节"),
        (0x6112, "还有 18 字节"),
        (0x6999, "命令不允许"),
        (0x1234, "未知状态"),
    ],
)
def test_status_words_have_clear_meanings(sw: int, text: str) -> None:
    assert text in pcsc.describe_status(sw >> 8, sw & 0xFF)


def test_status_error_names_the_step_and_the_status_word() -> None:
    with pytest.raises(CardStatusError) as info:
        ResponseApdu.parse(bytes.fromhex("6982")).check("读 EF06 记录 1")
    assert str(info.value) == "读 EF06 记录 1失败：安全状态不满足（需要先验证密码） (SW 6982)"
    assert info.value.sw == 0x6982


class ScriptedCard:
    """A card outside our control that answers from a script (the T=0 dialogues of real cards)."""

    def __init__(self, answers: list[str]) -> None:
        self.answers = [bytes.fromhex(a) for a in answers]
        self.sent: list[bytes] = []

    def __call__(self, command: bytes) -> bytes:
        self.sent.append(command)
        return self.answers.pop(0)


def test_exchange_resends_with_the_length_the_card_asks_for() -> None:
    card = ScriptedCard(["6C03", "0701 41 9000"])
    assert exchange(card, pcsc.read_record(7)).data == bytes.fromhex("070141")
    assert card.sent == [bytes.fromhex("00B2070400"), bytes.fromhex("00B2070403")]


def test_exchange_collects_chained_get_response() -> None:
    card = ScriptedCard(["6102", "AABB 6101", "CC 9000"])
    r = exchange(card, pcsc.select_aid())
    assert (r.data, r.ok) == (bytes.fromhex("AABBCC"), True)
    assert card.sent[1:] == [bytes.fromhex("00C0000002"), bytes.fromhex("00C0000001")]


def test_exchange_gives_up_on_endless_more_data() -> None:
    card = ScriptedCard(["6101"] * 20)
    with pytest.raises(MalformedResponseError, match="GET RESPONSE"):
        exchange(card, pcsc.select_aid())


# ---- SIMPLE-TLV -----------------------------------------------------------------------------
def test_tlv_parses_exact_bytes_and_skips_padding() -> None:
    data = bytes.fromhex("00 0701 41 FF FF 0902 D5C5 4E00 00")
    assert parse_simple_tlv(data) == [Tlv(0x07, b"A"), Tlv(0x09, "张".encode("gbk")), Tlv(0x4E, b"")]


def test_tlv_three_byte_length() -> None:
    value = bytes(300)
    encoded = encode_simple_tlv(0x55, value)
    assert encoded[:4] == bytes.fromhex("55 FF 01 2C")
    assert parse_simple_tlv(encoded) == [Tlv(0x55, value)]


@pytest.mark.parametrize("data", ["07", "0709 4142", "55FF01", "55FF012C00"])
def test_tlv_truncated_is_an_error_with_the_offset(data: str) -> None:
    with pytest.raises(TlvError, match="offset 0"):
        parse_simple_tlv(bytes.fromhex(data))


tlv_items = st.lists(st.tuples(st.integers(0x01, 0xFE), st.binary(max_size=300)), max_size=8)


@given(items=tlv_items, padding=st.lists(st.sampled_from([b"", b"\x00", b"\xff", b"\x00\xff"]),
                                          min_size=9, max_size=9))
def test_tlv_round_trip_with_padding_between_items(items, padding) -> None:
    data = b"".join(padding[i] + encode_simple_tlv(t, v) for i, (t, v) in enumerate(items)) + padding[-1]
    assert parse_simple_tlv(data) == [Tlv(t, v) for t, v in items]


@given(st.binary(max_size=200))
def test_tlv_parser_never_fails_other_than_with_tlv_error(data: bytes) -> None:
    try:
        items = parse_simple_tlv(data)
    except TlvError:
        return
    assert sum(len(i.value) for i in items) <= len(data)


@given(items=tlv_items)
def test_decoding_tolerates_any_tags(items) -> None:
    data = decode_social_security(Tlv(t, v) for t, v in items)
    known = set(pcsc._FIELDS) | {pcsc.TAG_NAME_EXTENSION}
    for tag, value in items:
        if tag not in known:
            assert data.extra[tag] == [v for t, v in items if t == tag][-1]


# ---- decoding the 社保卡 records ------------------------------------------------------------
EF05 = [
    "0110 110100D15600000500A1B2C3D4E5F6A7",
    "0201 33",
    "0304 332E3030",
    "040C 110100000000000000000001",
    "0504 20200601",
    "0604 20300601",
    "0709 413132333435363738",
]
EF06 = [
    "0812 313130313035313934393132333130303258",
    "091E D5C5C8FDB7E1" + "20" * 24,
    "0A01 31",
    "0B01 01",
    "0C03 110105",
    "0D04 19491231",
]


def _decode(records: list[str]):
    return decode_social_security(t for r in records for t in parse_simple_tlv(bytes.fromhex(r)))


def test_decodes_the_published_record_layout() -> None:
    data = _decode(EF05 + EF06)
    assert data.card_number == "A12345678"
    assert data.name == "张三丰"
    assert data.id_number == "11010519491231002X" and data.id_number_valid
    assert (data.sex_code, data.sex) == ("1", "男")
    assert data.nation_code == "01"
    assert data.birth_place_code == "110105"
    assert data.birth_date == dt.date(1949, 12, 31)
    assert data.card_id_code == "110100D15600000500A1B2C3D4E5F6A7" and data.region_code == "110100"
    assert (data.card_type, data.spec_version) == ("3", "3.00")
    assert data.issuer_code == "110100000000000000000001"
    assert (data.issue_date, data.expiry_date) == (dt.date(2020, 6, 1), dt.date(2030, 6, 1))
    assert data.complete and data.problems == () and data.extra == {}


def test_unknown_tags_are_kept_and_bad_values_reported_not_fatal() -> None:
    data = _decode(["0709 413132333435363738", "0D04 1949FF31", "6002 ABCD"])
    assert data.card_number == "A12345678"
    assert data.birth_date is None
    assert any("标签 0D" in p for p in data.problems)
    assert data.extra[0x60] == bytes.fromhex("ABCD")
    assert data.extra[0x0D] == bytes.fromhex("1949FF31")


def test_name_extension_is_appended_and_ascii_dates_accepted() -> None:
    ext = "买买提".encode("gbk")
    data = _decode(["0904 B0A2B2BC", "4E" + f"{len(ext):02X}" + ext.hex(), "0D08 3139383030313032"])
    assert data.name == "阿布买买提"
    assert data.birth_date == dt.date(1980, 1, 2)


def test_unpersonalised_fields_stay_empty() -> None:
    data = _decode(["0709 FFFFFFFFFFFFFFFFFF", "0804 00000000"])
    assert data.card_number is None and data.id_number is None and not data.complete


def test_id_number_check_character() -> None:
    assert pcsc.id_number_valid("11010519491231002X")
    assert pcsc.id_number_valid("11010519491231002x")
    assert not pcsc.id_number_valid("110105194912310021")
    assert not pcsc.id_number_valid("1101051949123100")


# ---- the read sequence, against the virtual card's logic ---------------------------------------
def test_reads_uid_and_the_whole_card() -> None:
    card = VirtualSocialSecurityCard(uid=bytes.fromhex("11223344"))
    assert read_uid(card.process_apdu) == bytes.fromhex("11223344")
    data = read_social_security_card(card.process_apdu)
    assert data.complete and data.name == "张三丰" and data.problems == ()
    assert card.apdu_log[1] == bytes.fromhex("00A404000F7378312E73682EC9E7BBE1B1A3D5CF")
    assert card.apdu_log[2] == bytes.fromhex("00A4020002EF05")


def test_t0_card_dialogue_is_absorbed() -> None:
    card = VirtualSocialSecurityCard(t0_style=True, holder=SocialSecurityHolder(name="李四"))
    data = read_social_security_card(card.process_apdu)
    assert data.name == "李四" and data.card_number == "A12345678"
    assert bytes.fromhex("00C0000013") in card.apdu_log  # fetched the FCI announced by 61 13
    assert any(a[:2] == b"\x00\xB2" and a[4] != 0 for a in card.apdu_log)  # retried after 6C xx


def test_reader_without_get_uid_gives_no_uid() -> None:
    card = VirtualSocialSecurityCard(uid_supported=False)
    assert read_uid(card.process_apdu) is None


def test_plain_card_is_reported_as_not_a_social_security_card() -> None:
    card = VirtualSocialSecurityCard(social_security=False)
    with pytest.raises(NotSocialSecurityCardError) as info:
        read_social_security_card(card.process_apdu)
    assert info.value.sw == 0x6A82
    assert str(info.value) == "此卡不是社会保障卡：文件或应用未找到 (SW 6A82)"


def test_pin_protected_holder_file_yields_the_card_part_and_says_why() -> None:
    card = VirtualSocialSecurityCard(holder_pin="123456")
    data = read_social_security_card(card.process_apdu)
    assert data.card_number == "A12345678"
    assert data.name is None and data.id_number is None and not data.complete
    assert data.problems == ("读 EF06 记录 1失败：安全状态不满足（需要先验证密码） (SW 6982)",)


def test_card_with_nothing_readable_raises_with_every_reason() -> None:
    card = ScriptedCard(["9000", "6A82", "6A82"])
    with pytest.raises(SocialSecurityReadError, match="选择 EF05失败.*6A82.*选择 EF06失败"):
        read_social_security_card(card)


def test_corrupt_record_is_reported_and_the_rest_still_read() -> None:
    card = VirtualSocialSecurityCard(extra_ef06_records=[bytes.fromhex("6005 AABB")])
    data = read_social_security_card(card.process_apdu)
    assert data.complete
    assert data.problems == ("EF06 记录 7 格式错误：TLV tag 60 at offset 0 announces 5 bytes, 2 left",)


# ---- packaging --------------------------------------------------------------------------------
def test_registered_as_pcsc() -> None:
    assert driver_class("pcsc") is pcsc.PcscReaderService


def test_bad_option_names_the_key() -> None:
    with pytest.raises(ValueError, match="reader_fliter"):
        pcsc.PcscReaderService.from_options({"reader_fliter": "ACS"})


def test_module_imports_without_pyscard_and_says_how_to_get_it() -> None:
    code = textwrap.dedent(
        """
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "smartcard" or name.startswith("smartcard."):
                    raise ImportError("blocked for the test")
        sys.meta_path.insert(0, Block())
        from device_drivers import pcsc
        assert pcsc.is_usable() is False
        assert pcsc.PcscReaderService.is_usable() is False
        try:
            pcsc.PcscReaderService().start()
        except pcsc.PcscUnavailableError as exc:
            print(exc)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "未安装 pyscard" in out.stdout
