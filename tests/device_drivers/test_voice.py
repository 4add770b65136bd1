"""Voice announcements: phrase rules, real espeak-ng rendering, cache, ordering, health."""
from __future__ import annotations

import shutil
import subprocess
import threading
import time
import wave
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_drivers.health import Health
from device_drivers.registry import driver_class
from device_drivers.voice import (
    DEFAULT_VOICE,
    Announcer,
    CommandPlayer,
    FilePlayer,
    NullPlayer,
    PlaybackError,
    RenderError,
    SpeechRenderer,
    make_chime,
    wav_duration,
)
from device_drivers.voice_phrases import (
    PhraseBuilder,
    PhraseValueError,
    TemplateError,
    read_number,
    spell_digits,
)
from device_drivers.wav_join import SILENCE, JoinError, join_wavs

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
needs_soxi = pytest.mark.skipif(shutil.which("soxi") is None, reason="sox not installed")


def soxi(flag: str, path: Path) -> str:
    return subprocess.run(["soxi", flag, str(path)], capture_output=True, text=True, check=True, timeout=10).stdout.strip()


def espeak_phonemes(text: str) -> str:
    """What espeak-ng would say, as phoneme mnemonics; "(en)" marks a switch to English."""
    return subprocess.run(
        ["espeak-ng", "-q", "-x", "-v", "cmn-latn-pinyin", text],
        capture_output=True, text=True, check=True, timeout=10,
    ).stdout


# ------------------------------------------------------------------------------------ phrase rules


def test_default_phrase_display_and_spoken_differ() -> None:
    p = PhraseBuilder().build("A001", "3")
    assert p.display == "请A001号到3号窗口办理"
    assert p.spoken == "qing3 A ling2 ling2 yi1 hao4 dao4 san1 hao4 chuang1 kou3 ban4 li3"


@pytest.mark.parametrize(
    ("number", "spoken"),
    [
        ("A001", "A 零零一"),
        ("a001", "A 零零一"),  # letters are named upper-case
        ("AB012", "A B 零一二"),  # "AB" together would be read as an English word
        ("B-100", "B 一零零"),  # digit by digit, never 一百
        ("1001", "一零零一"),
    ],
)
def test_ticket_numbers_are_spelled(number: str, spoken: str) -> None:
    assert spell_digits(number) == spoken


@pytest.mark.parametrize(
    ("window", "spoken"),
    [("3", "san1"), ("12", "shi2 er4"), ("20", "er4 shi2"), ("2", "er4"), ("03", "san1"),
     ("101", "yi4 bai3 ling2 yi1"), ("B12", "B shi2 er4")],
)
def test_windows_are_read_as_numbers(window: str, spoken: str) -> None:
    p = PhraseBuilder().build("A001", window)
    assert p.spoken == f"qing3 A ling2 ling2 yi1 hao4 dao4 {spoken} hao4 chuang1 kou3 ban4 li3"
    assert p.display == f"请A001号到{window}号窗口办理"


@pytest.mark.parametrize(
    ("n", "han"),
    [(0, "零"), (3, "三"), (10, "十"), (12, "十二"), (20, "二十"), (100, "一百"), (101, "一百零一"),
     (110, "一百一十"), (1001, "一千零一"), (1010, "一千零一十"), (9999, "九千九百九十九")],
)
def test_read_number(n: int, han: str) -> None:
    assert read_number(n) == han


def _parse_han_number(text: str) -> int:
    """Independent reader of a Chinese numeral, to check read_number by round trip."""
    digits = {c: i for i, c in enumerate("零一二三四五六七八九")}
    units = {"十": 10, "百": 100, "千": 1000}
    total, current = 0, 0
    for ch in text:
        if ch in digits:
            current = digits[ch]
        else:
            total += (current or 1) * units[ch]
            current = 0
    return total + current


@given(st.integers(min_value=0, max_value=9999))
def test_read_number_round_trips_and_has_no_stray_zeros(n: int) -> None:
    han = read_number(n)
    assert _parse_han_number(han) == n
    assert "零零" not in han
    assert n == 0 or not han.endswith("零")


@given(st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", min_size=1, max_size=8))
def test_spelling_keeps_every_character_in_order(code: str) -> None:
    spoken = spell_digits(code).replace(" ", "")
    back = "".join(str("零一二三四五六七八九".index(c)) if c in "零一二三四五六七八九" else c for c in spoken)
    assert back == code


def test_hall_template_with_queue_and_literal_digits() -> None:
    b = PhraseBuilder("请{number}号到{queue}{window}号窗口，2楼。")
    p = b.build("C9", "7", queue="社保")
    assert p.display == "请C9号到社保7号窗口，2楼。"
    assert p.spoken == "qing3 C jiu3 hao4 dao4 she4 bao3 qi1 hao4 chuang1 kou3, er4 lou2."


def test_pinyin_picks_the_reading_of_polyphones_that_espeak_gets_wrong() -> None:
    # espeak-ng's cmn_dict reads 银行 as yin2 xing2; pypinyin's phrase dictionary says hang2
    p = PhraseBuilder("请{number}号到{queue}窗口").build("A1", "1", queue="银行")
    assert "yin2 hang2" in p.spoken


def test_han_style_keeps_characters() -> None:
    p = PhraseBuilder(spoken_style="han").build("AB001", "12")
    assert p.spoken == "请 A B 零零一 号到 十二 号窗口办理"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("请{number}号到{counter}号窗口", "未知字段 {counter}"),
        ("请{}号", "未知字段 {}"),
        ("请{0}号", "未知字段 {0}"),
        ("请{number.upper}号", "未知字段 {number.upper}"),
        ("请{number:>5}号", "不能带格式说明"),
        ("请{number!r}号", "不能带格式说明"),
        ("请{number号", "花括号不成对"),
        ("请到{window}号窗口", "缺少 {number}"),
    ],
)
def test_bad_template_is_rejected_with_the_reason(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as err:
        PhraseBuilder(template)
    assert message in str(err.value)
    if "未知字段" in message:
        assert "{number}, {window}, {queue}" in str(err.value)  # tells the installer what is allowed


@pytest.mark.parametrize(("number", "window"), [("A0#1", "3"), ("", "3"), ("A001", "")])
def test_unspeakable_values_are_rejected(number: str, window: str) -> None:
    with pytest.raises(PhraseValueError):
        PhraseBuilder().build(number, window)


@needs_espeak
@pytest.mark.parametrize(
    ("template", "number", "window", "words"),
    [
        ("请{number}号到{window}号窗口办理", "A001", "3", 13),  # qing A ling ling yi hao dao san hao ...
        ("请{number}号到{window}号窗口办理", "AB012", "12", 15),  # ... A B ling yi er ... shi er ...
        ("请{number}号到{window}号窗口办理", "W9", "20", 12),
        ("{number}号请到{window}号窗口", "AB1", "5", 10),  # "AB" first in a sentence turns English
    ],
)
def test_spoken_text_stays_mandarin_in_espeak(template: str, number: str, window: str, words: int) -> None:
    phonemes = espeak_phonemes(PhraseBuilder(template).build(number, window).spoken)
    assert "(en)" not in phonemes  # no fallback to English spelling rules
    assert "X'Au51" in phonemes  # 号 = hao4
    assert phonemes.count("_|") == words  # one spoken word per letter, digit and syllable
    if template.startswith("请"):
        assert phonemes.startswith("tS;h'i")  # 请 = qing, not English "king"


# ------------------------------------------------------------------------- pieces rendered ahead


def test_default_template_splits_into_ticket_and_window_pieces() -> None:
    b = PhraseBuilder()
    pieces = b.pieces("A001", "3")
    assert pieces is not None
    assert [(p.kind, p.spoken) for p in pieces] == [
        ("ticket", "qing3 A ling2 ling2 yi1 hao4"), ("window", "dao4 san1 hao4 chuang1 kou3 ban4 li3")]
    assert b.ticket_piece("A001") == pieces[0].spoken and b.window_piece("3") == pieces[1].spoken


@given(st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", min_size=1, max_size=6),
       st.integers(min_value=1, max_value=400))
def test_pieces_say_exactly_the_whole_sentence(number: str, window: int) -> None:
    b = PhraseBuilder()
    pieces = b.pieces(number, str(window))
    assert pieces is not None
    assert " ".join(p.spoken for p in pieces) == b.build(number, str(window)).spoken


@pytest.mark.parametrize(
    ("template", "pieces"),
    [
        ("{number}号，请到{window}号窗口", [("ticket", "A ling2 ling2 yi1 hao4,"), ("window", "qing3 dao4 san1 hao4 chuang1 kou3")]),
        ("请{window}号窗口为{number}号办理", [("window", "qing3 san1 hao4 chuang1 kou3"),
                                          ("ticket", "wei4 A ling2 ling2 yi1 hao4 ban4 li3")]),
        ("请{queue}{number}号到{window}窗口", [("ticket", "qing3 she4 bao3 A ling2 ling2 yi1 hao4"),
                                           ("window", "dao4 san1 chuang1 kou3")]),
        ("请{number}号办理", [("ticket", "qing3 A ling2 ling2 yi1 hao4 ban4 li3")]),  # no window: all ahead
        ("请{number}号到{window}号窗口，{queue}", None),  # ticket, window, ticket: said whole
    ],
)
def test_hall_templates_split_where_the_words_allow(template: str, pieces: list[tuple[str, str]] | None) -> None:
    got = PhraseBuilder(template).pieces("A001", "3", queue="社保")
    assert (None if got is None else [(p.kind, p.spoken) for p in got]) == pieces


def _wav(path: Path, samples: list[int], rate: int = 22050, channels: int = 1) -> Path:
    import array

    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(array.array("h", samples).tobytes())
    return path


def test_join_replaces_the_padding_between_pieces_with_the_gap(tmp_path: Path) -> None:
    loud = [3000, -3000] * 2205  # 0.2 s of sound
    pad = [0] * 8820  # 0.4 s of silence, as espeak-ng leaves after a sentence
    a = _wav(tmp_path / "a.wav", [0] * 1000 + loud + pad)
    b = _wav(tmp_path / "b.wav", [0] * 1000 + loud + pad)
    out = join_wavs([a, b], tmp_path / "ab.wav", [0.08])
    # lead-in of the first and tail of the last kept; between them 0.08 s + 2 x 10 ms margins
    assert wav_duration(out) == pytest.approx((1000 + 4410 + 4410 + 8820) / 22050 + 0.08 + 0.02, abs=0.002)
    with pytest.raises(JoinError, match="44100 Hz"):
        join_wavs([a, _wav(tmp_path / "c.wav", loud, rate=44100)], tmp_path / "ac.wav", [0.08])


def _longest_silence(path: Path, start: float, end: float) -> float:
    """Longest run of silence (seconds) between two points of a 16-bit mono WAV."""
    import array

    with wave.open(str(path), "rb") as w:
        rate = w.getframerate()
        samples = array.array("h", w.readframes(w.getnframes()))
    longest = run = 0
    for v in samples[int(start * rate):int(end * rate)]:
        run = run + 1 if abs(v) < SILENCE else 0
        longest = max(longest, run)
    return longest / rate


@needs_espeak
def test_a_prepared_call_is_joined_from_cached_pieces_without_synthesising(tmp_path: Path) -> None:
    player = FilePlayer(tmp_path / "out")
    ann = Announcer(player=player, cache_dir=tmp_path / "cache", gap_s=0, repeat=2).start()
    try:
        for f in [*ann.prepare_windows(["3", "12"]), ann.prepare("A001"), ann.prepare("B007")]:
            f.result(20)
        renders = ann.renderer.renders
        calls = [ann.announce("A001", "3"), ann.announce("B007", "12")]
        assert ann.wait_idle(20)
        assert ann.renderer.renders == renders  # nothing synthesised at call time
        whole = ann.renderer.render(ann.builder.build("A001", "3").spoken, cache_dir=tmp_path / "cache", timeout=20)
    finally:
        ann.stop()
    assert [c.error for c in calls] == [None, None]
    # chime, then each sentence twice, in call order
    assert _sources(player) == ["chime.wav", calls[0].wav.name, calls[0].wav.name,
                                "chime.wav", calls[1].wav.name, calls[1].wav.name]
    joined = calls[0].wav
    assert wav_duration(joined) == pytest.approx(wav_duration(whole), rel=0.1)  # the whole sentence is there
    # no stop mid-sentence longer than espeak-ng's own pauses between words
    assert _longest_silence(joined, 0.2, wav_duration(joined) - 0.5) < 0.25


@needs_espeak
def test_joined_sentences_unused_for_a_day_are_deleted_and_joined_again_when_called(tmp_path: Path) -> None:
    """A gateway runs for months: every number of every queue meets every window, so joined sentences
    are deleted a day after their last use (the pieces stay), and a call after that joins it again."""
    import os

    player = FilePlayer(tmp_path / "out")
    cache = tmp_path / "cache"
    ann = Announcer(player=player, cache_dir=cache, gap_s=0, repeat=1, chime=False).start()
    try:
        old, fresh = ann.announce("A001", "3"), ann.announce("A002", "3")
        assert ann.wait_idle(20) and old.error is None and fresh.error is None
        day_ago = time.time() - 25 * 3600
        os.utime(old.wav, (day_ago, day_ago))
        os.utime(fresh.wav, (day_ago, day_ago))
        recall = ann.announce("A002", "3")  # used again: kept
        assert ann.wait_idle(20) and recall.wav == fresh.wav
        pieces = sorted(p.name for p in cache.glob("*.wav") if not p.name.startswith("joined-"))
        assert ann.prune_joined() == 1
        assert not old.wav.exists() and fresh.wav.exists()
        assert sorted(p.name for p in cache.glob("*.wav") if not p.name.startswith("joined-")) == pieces
        renders = ann.renderer.renders
        again = ann.announce("A001", "3")
        assert ann.wait_idle(20) and again.error is None and again.wav == old.wav and old.wav.exists()
        assert ann.renderer.renders == renders  # joined from the kept pieces, nothing synthesised
    finally:
        ann.stop()
    assert len(_sources(player)) == 4


@needs_espeak
def test_a_template_that_does_not_split_is_still_announced(tmp_path: Path) -> None:
    player = FilePlayer(tmp_path / "out")
    ann = Announcer(player=player, cache_dir=tmp_path, chime=False, gap_s=0, repeat=1,
                    builder=PhraseBuilder("请{number}号到{window}号窗口，{queue}")).start()
    try:
        assert ann.prepare("A001", "社保") is None  # nothing can be rendered ahead
        call = ann.announce("A001", "3", queue="社保")
        assert ann.wait_idle(20)
    finally:
        ann.stop()
    assert call.error is None and _sources(player) == [call.wav.name]
    assert 2.0 < wav_duration(call.wav) < 8.0


class _RecordingEngine:
    """Stands in for the synthesiser: records the order of renders, held until the gate opens."""

    def __init__(self, gate: threading.Event) -> None:
        self.gate = gate
        self.texts: list[str] = []
        self.busy = threading.Event()

    def voice_ids(self) -> set[str]:
        return set()

    def render(self, text: str, path: Path, voice: str, rate: int, timeout: float) -> None:
        self.busy.set()
        assert self.gate.wait(10)
        self.texts.append(text)
        _wav(path, [0] * 2205)


def test_a_call_is_rendered_before_work_done_ahead(tmp_path: Path) -> None:
    gate = threading.Event()
    engine = _RecordingEngine(gate)
    renderer = SpeechRenderer(tmp_path / "cache", engine_factory=lambda: engine)
    ann = Announcer(renderer=renderer, chime=False, gap_s=0).start()
    try:
        ahead = [ann.prepare(f"A{i:03d}") for i in range(1, 11)]  # ten tickets issued
        assert engine.busy.wait(10)  # the first is being rendered
        call = ann.announce("B001", "3")  # a ticket issued a moment ago is called
        again = ann.prepare("A002")  # asked again: not rendered twice
        gate.set()
        assert ann.wait_idle(10)
        assert all(f is not None and f.result(10) for f in ahead)
    finally:
        gate.set()
        ann.stop()
    assert call.error is None
    b = PhraseBuilder()
    # the first prepared ticket was already being rendered; the call's two pieces come next
    assert engine.texts[1:3] == [b.ticket_piece("B001"), b.window_piece("3")]
    assert len(engine.texts) == 12 and again is ahead[1]


@needs_espeak
def test_the_plain_cmn_voice_really_misreads_qing() -> None:
    """Why we use cmn-latn-pinyin: the cmn voice reads 请's pinyin as English."""
    out = subprocess.run(["espeak-ng", "-q", "-x", "-v", "cmn", "请"], capture_output=True, text=True,
                         check=True, timeout=10).stdout
    assert "(en)" in out


# ----------------------------------------------------------------------------------- rendering


@pytest.fixture(scope="module")
def renderer() -> SpeechRenderer:
    # the process's one pyttsx3 engine: every real render in this file goes through it
    return SpeechRenderer.shared()


@needs_espeak
@needs_soxi
@pytest.mark.parametrize(("number", "window"), [("A001", "3"), ("B012", "12")])
def test_wav_is_rendered_22050_mono_and_plausibly_long(renderer: SpeechRenderer, tmp_path: Path,
                                                      number: str, window: str) -> None:
    wav = renderer.render(PhraseBuilder().build(number, window).spoken, cache_dir=tmp_path, timeout=20)
    assert wav.exists() and wav.parent == tmp_path
    assert soxi("-r", wav) == "22050"
    assert soxi("-c", wav) == "1"
    assert 1.0 < float(soxi("-D", wav)) < 8.0


@needs_espeak
def test_rendering_writes_nothing_to_standard_output(renderer: SpeechRenderer, tmp_path: Path, capfd) -> None:  # type: ignore[no-untyped-def]
    """pyttsx3's espeak driver prints a line per WAV; a gateway's operator must not see one per call."""
    before = renderer.renders
    renderer.render(PhraseBuilder().build("Q123", "7").spoken, cache_dir=tmp_path, timeout=20)
    assert renderer.renders == before + 1  # really rendered, not from a cache
    assert "Audio saved" not in capfd.readouterr().out


@needs_espeak
def test_cache_returns_the_same_file_without_rendering_again(renderer: SpeechRenderer, tmp_path: Path) -> None:
    text = PhraseBuilder().build("A002", "5").spoken
    first = renderer.render(text, cache_dir=tmp_path, timeout=20)
    mtime, renders = first.stat().st_mtime_ns, renderer.renders
    time.sleep(0.02)
    again = renderer.render(text, cache_dir=tmp_path, timeout=20)
    assert again == first
    assert first.stat().st_mtime_ns == mtime
    assert renderer.renders == renders
    slower = renderer.render(text, rate=120, cache_dir=tmp_path, timeout=20)  # rate is part of the key
    assert slower != first and renderer.renders == renders + 1
    assert wav_duration(slower) > wav_duration(first)


@needs_espeak
def test_back_to_back_renders_are_complete_and_at_their_own_rate(renderer: SpeechRenderer, tmp_path: Path) -> None:
    """pyttsx3 2.99's espeak driver cancels queued work at the end of runAndWait(): without the
    waiting in Pyttsx3Engine this loses sentences ("interrupted") or a rate change."""
    futures = []
    for i in range(15):
        text = PhraseBuilder().build(f"A{i:03d}", str(i + 1)).spoken
        futures.append((renderer.submit(text, rate=120, cache_dir=tmp_path),
                        renderer.submit(text, rate=180, cache_dir=tmp_path)))
    for slow, fast in futures:
        slow_s, fast_s = wav_duration(slow.result(20)), wav_duration(fast.result(20))
        assert 1.0 < fast_s < slow_s  # both complete, and 120 wpm really is slower than 180
        assert 1.3 < slow_s / fast_s < 1.7  # roughly 180/120


@needs_espeak
def test_unknown_voice_is_a_clear_render_error(renderer: SpeechRenderer, tmp_path: Path) -> None:
    with pytest.raises(RenderError, match="未安装"):
        renderer.render("qing3", voice="sit/no-such-voice", cache_dir=tmp_path, timeout=20)


@needs_soxi
def test_chime_is_a_short_wav_in_the_speech_format(tmp_path: Path) -> None:
    path = make_chime(tmp_path / "chime.wav")
    assert soxi("-r", path) == "22050" and soxi("-c", path) == "1"
    assert 0.5 < float(soxi("-D", path)) < 1.5


# ----------------------------------------------------------------------------------- announcer


def _sources(player: FilePlayer) -> list[str]:
    return [r.source.name for r in player.played]


@needs_espeak
def test_burst_of_ten_is_played_in_order_twice_each_without_overlap(tmp_path: Path) -> None:
    player = FilePlayer(tmp_path / "out", pace=0.01)  # holds each play for 1% of its duration
    ann = Announcer(player=player, cache_dir=tmp_path / "cache", gap_s=0).start()
    try:
        calls = [ann.announce(f"A{i:03d}", str(i % 4 + 1), repeat=2) for i in range(10)]
        assert ann.wait_idle(30)
    finally:
        ann.stop()
    assert [c.error for c in calls] == [None] * 10
    expected: list[str] = []
    for c in calls:
        assert c.wav is not None
        expected += ["chime.wav", c.wav.name, c.wav.name]
    assert _sources(player) == expected
    assert len({c.wav for c in calls}) == 10  # ten different sentences
    for before, after in zip(player.played, player.played[1:]):
        assert after.started >= before.ended  # one playback at a time
    starts = [c.started_at for c in calls]
    assert starts == sorted(starts)  # FIFO
    for c in calls:
        assert c.wav_latency is not None and c.wav_latency < 10
    written = sorted(p.name for p in (tmp_path / "out").glob("0*.wav"))
    assert len(written) == 30 and written[0].startswith("0001-")
    assert ann.health is not None and ann.health.health == Health.ONLINE


class _GatedEngine:
    """Stands in for the synthesiser (SpeechEngine protocol): renders once the test opens the gate."""

    def __init__(self, gate: threading.Event) -> None:
        self.gate = gate

    def voice_ids(self) -> set[str]:
        return set()

    def render(self, text: str, path: Path, voice: str, rate: int, timeout: float) -> None:
        assert self.gate.wait(10)
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(22050)
            w.writeframes(b"\x00\x00" * 2205)


def test_announce_returns_before_rendering(tmp_path: Path) -> None:
    gate = threading.Event()
    renderer = SpeechRenderer(tmp_path / "cache", engine_factory=lambda: _GatedEngine(gate))
    player = FilePlayer(tmp_path / "out")
    ann = Announcer(player=player, renderer=renderer, chime=False, gap_s=0).start()
    try:
        calls = [ann.announce("A001", "1"), ann.announce("A002", "2"), ann.announce("A001", "1")]
        # all three returned while the renderer is stuck on the first: nothing rendered or played
        assert ann.pending == 3
        assert all(c.wav is None for c in calls)
        assert player.played == []
        assert not ann.wait_idle(0.05)
        gate.set()
        assert ann.wait_idle(10)
    finally:
        gate.set()
        ann.stop()
    assert [r.source for r in player.played] == [c.wav for c in calls for _ in range(2)]
    # two pieces per ticket ("请A001号", "到1号窗口办理"); the recall rendered nothing
    assert renderer.renders == 4


@needs_espeak
def test_failing_player_command_reports_offline_with_reason_then_recovers(tmp_path: Path) -> None:
    flag = tmp_path / "speaker-ok"
    player = CommandPlayer(["sh", "-c", f'test -e {flag} || {{ echo "no soundcard" >&2; exit 3; }}', "{file}"])
    ann = Announcer(player=player, cache_dir=tmp_path / "cache", chime=False, gap_s=0)
    events = []
    ann.reporter.subscribe(events.append)
    ann.start()
    try:
        failed = ann.announce("A001", "3")
        assert ann.wait_idle(20)
        assert ann.health is not None and ann.health.health == Health.OFFLINE
        assert "退出码 3" in ann.health.reason and "no soundcard" in ann.health.reason
        assert failed.error == ann.health.reason
        flag.touch()
        ok = ann.announce("A002", "3")
        assert ann.wait_idle(20)
    finally:
        ann.stop()
    assert ok.error is None
    assert [e.health for e in events] == [Health.ONLINE, Health.OFFLINE, Health.ONLINE]


def test_missing_player_program_is_offline_from_start(tmp_path: Path) -> None:
    ann = Announcer(player=CommandPlayer(["/nonexistent/aplay", "-q", "{file}"]),
                    renderer=SpeechRenderer(tmp_path, engine_factory=lambda: _GatedEngine(threading.Event())),
                    chime=False)
    ann.start()
    ann.stop()
    assert ann.health is not None and ann.health.health == Health.OFFLINE
    assert "/nonexistent/aplay" in ann.health.reason and "不存在" in ann.health.reason


@needs_espeak
@pytest.mark.skipif(shutil.which("sox") is None, reason="sox not installed")
def test_real_player_command_plays_to_the_end(tmp_path: Path) -> None:
    # sox decoding to the null device stands in for aplay on a machine without a sound card
    ann = Announcer(player=CommandPlayer(["sox", "-q", "{file}", "-n"]), cache_dir=tmp_path, gap_s=0).start()
    try:
        call = ann.announce("A001", "3", repeat=1)
        assert ann.wait_idle(20)
    finally:
        ann.stop()
    assert call.error is None and ann.health is not None
    assert ann.health.health == Health.ONLINE


def test_player_command_needs_a_file_placeholder() -> None:
    with pytest.raises(ValueError, match="{file}"):
        CommandPlayer(["aplay", "-q"])


def test_from_options_and_registry(tmp_path: Path) -> None:
    assert driver_class("voice") is Announcer
    ann = Announcer.from_options({"player": "file", "folder": str(tmp_path / "o"), "rate": 140,
                                  "template": "请{number}号到{window}号窗口", "cache_dir": str(tmp_path)})
    assert isinstance(ann.player, FilePlayer) and ann.rate == 140 and ann.voice == DEFAULT_VOICE
    assert ann.builder.build("A1", "2").display == "请A1号到2号窗口"
    assert isinstance(Announcer.from_options({}).player, NullPlayer)
    assert Announcer.from_options({"name": "hall1.voice"}).reporter.device == "hall1.voice"
    assert isinstance(Announcer.from_options({"player": ["aplay", "-q", "{file}"]}).player, CommandPlayer)
    with pytest.raises(ValueError, match="'volume'"):
        Announcer.from_options({"volume": 3})
    with pytest.raises(ValueError, match="'folder'"):
        Announcer.from_options({"player": "file"})
    with pytest.raises(ValueError, match="'rate'"):
        Announcer.from_options({"rate": "fast"})
    with pytest.raises(TemplateError, match="{ticket}"):
        Announcer.from_options({"template": "请{ticket}号"})


def test_file_player_reports_an_unwritable_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(PlaybackError, match="无法创建输出目录"):
        FilePlayer(blocker / "out").check()


@needs_espeak
def test_missing_custom_chime_is_degraded_and_calls_still_play(tmp_path: Path) -> None:
    player = FilePlayer(tmp_path / "out")
    ann = Announcer(player=player, cache_dir=tmp_path, chime=tmp_path / "no-chime.wav", gap_s=0).start()
    try:
        call = ann.announce("A001", "3", repeat=1)
        assert ann.wait_idle(20)
    finally:
        ann.stop()
    assert call.error is None and [r.source for r in player.played] == [call.wav]
    assert ann.health is not None and ann.health.health == Health.DEGRADED
    assert "no-chime.wav" in ann.health.reason
