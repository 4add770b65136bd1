"""Turn a call (number + window) into the text shown and the text spoken.

The two differ on purpose: the screen shows "请A001号到3号窗口办理", while espeak-ng must hear the
ticket digit by digit ("A 零零一"), the window as a natural number (12 -> 十二) and, for the
``cmn-latn-pinyin`` voice, pinyin with tone numbers ("qing3 A ling2 ling2 yi1 hao4 ...").

Why pinyin: that voice reads Han characters through espeak-ng's ``cmn_dict``, which knows one
reading per character and so mispronounces polyphones (银行 -> yin2 xing2, 重新 -> zhong4 xin1).
Pinyin with tone numbers is read exactly as written, so we convert with pypinyin, whose phrase
dictionary picks the right reading. Without pypinyin we fall back to Han characters (and log it).

A template whose ticket fields ({number}, {queue}) and {window} field sit in two separate stretches
splits into a *ticket piece* ("请A001号") and a *window piece* ("到3号窗口办理"), so the first can be
rendered when the ticket is issued and the second once at start-up; :meth:`PhraseBuilder.pieces`
returns None for a template that interleaves them, which is then rendered as one sentence.
"""
from __future__ import annotations

import logging
import re
import string
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger(__name__)

DEFAULT_TEMPLATE = "请{number}号到{window}号窗口办理"

# Fields a hall template may use; anything else is a configuration error found at start-up.
TEMPLATE_FIELDS: dict[str, str] = {
    "number": "票号, 逐位播报 (A001 -> A 零零一)",
    "window": "窗口号, 按数值播报 (12 -> 十二)",
    "queue": "业务/队列名称, 原样播报",
}

SpokenStyle = Literal["pinyin", "han"]

_DIGITS = "零一二三四五六七八九"
_UNITS = ((1000, "千"), (100, "百"), (10, "十"))
_FULLWIDTH_PAUSE = {"，": ",", "、": ",", "；": ",", "：": ",", "。": ".", "！": ".", "？": "."}
_NUMBER_RE = re.compile(r"^[A-Za-z0-9-]+$")
_PAUSE_MARKS = "，、；：。！？,.;:!?"
_ATTACHED = ("号窗口", "窗口", "号")  # words that belong to the field before them, longest first
TICKET_FIELDS = frozenset({"number", "queue"})  # known when the ticket is issued
_TOKEN_RE = re.compile(r"[0-9]+|[A-Za-z]+|[\u3400-\u9fff]+|[，、；：。！？,.;:!?]|\s+|.", re.S)


class TemplateError(ValueError):
    """A hall's announcement template cannot be used; the message names the offending part."""


class PhraseValueError(ValueError):
    """A number or window contains characters that cannot be announced."""


@dataclass(frozen=True)
class Phrase:
    display: str  # what a screen or log shows: "请A001号到3号窗口办理"
    spoken: str  # what the synthesiser receives: "qing3 A ling2 ling2 yi1 hao4 ..."


@dataclass(frozen=True)
class Piece:
    """One separately rendered stretch of a sentence: ``kind`` says what it depends on."""

    kind: Literal["ticket", "window"]
    spoken: str


Parts = list[tuple[str, "str | None"]]


def spell_digits(text: str) -> str:
    """Read a code character by character: digits as 零..九, letters as upper-case letters.

    Letters are separated by spaces because espeak-ng reads "AB" as an English word but "A B"
    as two letter names. Hyphens and spaces are dropped (A-001 is read like A001).
    """
    out: list[str] = []
    for ch in text:
        if ch.isascii() and ch.isdigit():
            out.append(_DIGITS[int(ch)])
        elif ch.isascii() and ch.isalpha():
            out.append(f" {ch.upper()} ")
        elif ch in "- ":
            continue
        else:
            out.append(ch)
    return re.sub(r"\s+", " ", "".join(out)).strip()


def read_number(n: int) -> str:
    """A natural Chinese reading of 0..9999 (3 -> 三, 12 -> 十二, 101 -> 一百零一).

    Larger values are read digit by digit, as halls do with long numbers.
    """
    if n < 0:
        raise PhraseValueError(f"无法播报负数 {n}")
    if n < 10:
        return _DIGITS[n]
    if n >= 10000:
        return spell_digits(str(n))
    out: list[str] = []
    rest = n
    zero_pending = False
    for unit, name in _UNITS:
        q, rest = divmod(rest, unit)
        if q:
            if zero_pending:
                out.append("零")
                zero_pending = False
            # 十二, not 一十二, when ten leads the number
            if not (unit == 10 and q == 1 and not out):
                out.append(_DIGITS[q])
            out.append(name)
        elif out:
            zero_pending = True
    if rest:
        if zero_pending:
            out.append("零")
        out.append(_DIGITS[rest])
    return "".join(out)


def read_mixed(text: str) -> str:
    """Read a window label: digit runs as numbers, letters spelled, Han text as is ("B12" -> B 十二)."""
    out: list[str] = []
    for tok in _TOKEN_RE.findall(text):
        if tok.isascii() and tok.isdigit():
            out.append(read_number(int(tok)))
        elif tok.isascii() and tok.isalpha():
            out.append(" " + " ".join(tok.upper()) + " ")
        else:
            out.append(tok)
    return re.sub(r"\s+", " ", "".join(out)).strip()


def read_literal(text: str) -> str:
    """Template text between fields: only digit runs change (2楼 -> 二楼); words stay words."""
    return re.sub(r"[0-9]+", lambda m: read_number(int(m.group())), text)


def parse_template(template: str) -> list[tuple[str, str | None]]:
    """Split a template into (literal, field) pairs, rejecting anything but plain known fields."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise TemplateError(f"语音模板 {template!r} 格式错误 (花括号不成对?): {exc}") from None
    known = ", ".join("{" + f + "}" for f in TEMPLATE_FIELDS)
    seen: set[str] = set()
    out: list[tuple[str, str | None]] = []
    for literal, field, spec, conversion in parts:
        if field is not None:
            if field not in TEMPLATE_FIELDS:
                what = "{" + field + "}" if field else "{}"
                raise TemplateError(f"语音模板 {template!r} 含未知字段 {what}; 可用字段: {known}")
            if spec or conversion:
                raise TemplateError(
                    f"语音模板 {template!r} 的字段 {{{field}}} 不能带格式说明或转换 "
                    f"({'!' + conversion if conversion else ''}{':' + spec if spec else ''})"
                )
            seen.add(field)
        out.append((literal, field))
    if "number" not in seen:
        raise TemplateError(f"语音模板 {template!r} 缺少 {{number}} 字段; 可用字段: {known}")
    return out


def split_template(parts: Parts) -> list[tuple[Literal["ticket", "window"], Parts]] | None:
    """Cut parsed template parts into a ticket stretch and a window stretch, in speaking order.

    The literal between the two stretches is cut after its last pause mark (",", "，"...), else after
    a leading word that belongs to the field before it (the measure word in "A001号" | "到3号", or
    "3号窗口" | "为A001号"), else at its start. None when the fields interleave (ticket, window, ticket) and no such cut exists.
    """
    runs: list[str] = []  # field kinds in order, consecutive duplicates merged
    for _literal, fld in parts:
        if fld is not None:
            kind = "ticket" if fld in TICKET_FIELDS else "window"
            if not runs or runs[-1] != kind:
                runs.append(kind)
    if len(runs) > 2:
        return None
    if len(runs) < 2:
        return [("ticket", parts)]  # no {window}: the whole sentence is known at issue
    kind_of = lambda fld: "ticket" if fld in TICKET_FIELDS else "window"  # noqa: E731
    first: Parts = []
    for i, (literal, fld) in enumerate(parts):
        if fld is not None and kind_of(fld) != runs[0]:
            # parts[i]'s literal lies between the stretches: cut it
            cut = max(literal.rfind(m) for m in _PAUSE_MARKS) + 1
            if cut == 0:
                cut = next((len(w) for w in _ATTACHED if literal.startswith(w)), 0)
            if cut:
                first.append((literal[:cut], None))
            second: Parts = [(literal[cut:], fld), *parts[i + 1:]]
            return [(runs[0], first), (runs[1], second)]  # type: ignore[list-item]
        first.append((literal, fld))
    return None  # not reached: runs says a second stretch exists


def _pinyin_available() -> bool:
    try:
        import pypinyin  # noqa: F401
    except ImportError:
        return False
    return True


def to_pinyin(han: str) -> str:
    """Han text -> space separated pinyin with tone numbers; letters stay letters, punctuation pauses."""
    from pypinyin import Style, lazy_pinyin

    tokens: list[str] = []
    for piece in lazy_pinyin(han, style=Style.TONE3, neutral_tone_with_five=True, errors=lambda s: [s]):
        if piece and piece[-1].isdigit() and piece[:-1].isascii() and piece[:-1].isalpha():
            tokens.append(piece)  # a syllable such as qing3 or lv4
            continue
        for tok in _TOKEN_RE.findall(piece):
            if tok.isspace():
                continue
            if tok in _FULLWIDTH_PAUSE or tok in ",.;:!?":
                mark = _FULLWIDTH_PAUSE.get(tok, tok)
                if tokens:
                    tokens[-1] += "," if mark in ",;:" else "."
            elif tok.isascii() and tok.isdigit():
                tokens.extend(to_pinyin(read_number(int(tok))).split())
            elif tok.isascii() and tok.isalpha():
                # a lone letter is a letter name (espeak-ng's cmn_dict has them); a word stays a word
                tokens.append(tok.upper() if len(tok) == 1 else tok)
            else:
                log.debug("dropping unspeakable text %r", tok)
    return " ".join(tokens)


class PhraseBuilder:
    """Builds display and spoken text from a per-hall template, validated once at construction."""

    def __init__(self, template: str = DEFAULT_TEMPLATE, spoken_style: SpokenStyle | None = None) -> None:
        self.template = template
        self._parts = parse_template(template)
        if spoken_style is None:
            spoken_style = "pinyin" if _pinyin_available() else "han"
            if spoken_style == "han":
                log.warning("pypinyin is not installed: speaking Han characters, polyphones may be misread")
        elif spoken_style == "pinyin" and not _pinyin_available():
            raise TemplateError("spoken_style='pinyin' 需要 pypinyin (pip install pypinyin)")
        elif spoken_style not in ("pinyin", "han"):
            raise TemplateError(f"spoken_style 应为 'pinyin' 或 'han', 而不是 {spoken_style!r}")
        self.spoken_style: SpokenStyle = spoken_style
        self._pieces = split_template(self._parts)

    @property
    def splits(self) -> bool:
        """Whether calls are spoken as a ticket piece and a window piece (see :meth:`pieces`)."""
        return self._pieces is not None

    def build(self, number: str, window: str | int, queue: str = "") -> Phrase:
        number, window = _check(number, window)
        display_values = {"number": number, "window": window, "queue": queue}
        display: list[str] = []
        for literal, field in self._parts:
            display.append(literal)
            if field is not None:
                display.append(display_values[field])
        return Phrase(display="".join(display), spoken=self._speak(self._parts, number, window, queue))

    def pieces(self, number: str, window: str | int, queue: str = "") -> list[Piece] | None:
        """The call's sentence as separately renderable pieces, in speaking order; None if the
        template does not split (render :meth:`build`'s ``spoken`` whole instead)."""
        if self._pieces is None:
            return None
        number, window = _check(number, window)
        return [Piece(kind, self._speak(parts, number, window, queue)) for kind, parts in self._pieces]

    def ticket_piece(self, number: str, queue: str = "") -> str | None:
        """The spoken ticket piece ("qing3 A ling2 ling2 yi1 hao4"), to render ahead of the call."""
        return self._one_piece("ticket", number, "0", queue)

    def window_piece(self, window: str | int) -> str | None:
        """The spoken window piece ("dao4 san1 hao4 chuang1 kou3 ban4 li3"), to render at start-up."""
        return self._one_piece("window", "0", window, "")

    def _one_piece(self, kind: str, number: str, window: str | int, queue: str) -> str | None:
        for piece in self.pieces(number, window, queue) or []:
            if piece.kind == kind:
                return piece.spoken
        return None

    def _speak(self, parts: Parts, number: str, window: str, queue: str) -> str:
        values = {"number": spell_digits(number), "window": read_mixed(window), "queue": queue}
        spoken: list[str] = []
        for literal, field in parts:
            spoken.append(read_literal(literal))
            if field is not None:
                # spaces keep a spelled letter from merging with the literal around it
                spoken.append(f" {values[field]} ")
        han = re.sub(r"\s+", " ", "".join(spoken)).strip()
        return to_pinyin(han) if self.spoken_style == "pinyin" else han


def _check(number: str | int, window: str | int) -> tuple[str, str]:
    number = str(number).strip()
    window = str(window).strip()
    if not number or not _NUMBER_RE.match(number):
        raise PhraseValueError(f"票号 {number!r} 只能包含字母、数字和连字符")
    if not window:
        raise PhraseValueError("窗口号不能为空")
    return number, window
