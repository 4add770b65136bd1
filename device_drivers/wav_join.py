"""Join separately rendered WAV pieces into one sentence.

espeak-ng pads every render with about 45 ms of silence before the speech and 390 ms after it, so
pieces laid end to end would stop for almost half a second mid-sentence. Between two pieces we keep
the speech, drop that padding and put back a chosen gap. The pieces are a few seconds of 16-bit PCM:
the stdlib ``wave`` and ``array`` modules do this in about a millisecond.
"""
from __future__ import annotations

import array
import os
import sys
import threading
import wave
from pathlib import Path
from typing import Sequence

SILENCE = 400  # |sample| below this (1.2 % of full scale) counts as silence
MARGIN_S = 0.01  # kept on each side of the speech, so a soft onset or decay is not clipped


class JoinError(ValueError):
    """The pieces cannot be joined (different formats, unreadable file)."""


def _read(path: Path) -> tuple[wave._wave_params, bytes]:
    try:
        with wave.open(str(path), "rb") as w:
            return w.getparams(), w.readframes(w.getnframes())
    except (wave.Error, EOFError, OSError) as exc:
        raise JoinError(f"cannot read {path}: {exc}") from exc


def _speech_bounds(frames: bytes, params: wave._wave_params) -> tuple[int, int]:
    """[start, end) in frames of the audible part; the whole piece if it is silent or not 16-bit."""
    n = params.nframes
    if params.sampwidth != 2 or n == 0:
        return 0, n
    samples = array.array("h", frames)
    if sys.byteorder == "big":
        samples.byteswap()
    ch = params.nchannels
    first = next((i for i, v in enumerate(samples) if abs(v) >= SILENCE), None)
    if first is None:
        return 0, n
    last = next(i for i in range(len(samples) - 1, first - 1, -1) if abs(samples[i]) >= SILENCE)
    margin = int(MARGIN_S * params.framerate)
    return max(0, first // ch - margin), min(n, last // ch + 1 + margin)


def join_wavs(pieces: Sequence[Path], dest: Path, gaps_s: Sequence[float]) -> Path:
    """Write ``pieces`` as one WAV at ``dest`` (atomically), ``gaps_s[i]`` seconds of silence between
    piece i and i+1 in place of their own padding. The first piece keeps its lead-in, the last its tail."""
    if not pieces:
        raise JoinError("nothing to join")
    if len(gaps_s) != len(pieces) - 1:
        raise JoinError(f"{len(pieces)} pieces need {len(pieces) - 1} gaps, not {len(gaps_s)}")
    read = [_read(Path(p)) for p in pieces]
    params = read[0][0]
    fmt = (params.nchannels, params.sampwidth, params.framerate, params.comptype)
    for path, (p, _frames) in zip(pieces, read):
        if (p.nchannels, p.sampwidth, p.framerate, p.comptype) != fmt:
            raise JoinError(f"{path} is {p.nchannels} ch / {p.sampwidth * 8} bit / {p.framerate} Hz, "
                            f"unlike {pieces[0]}")
    frame_bytes = params.nchannels * params.sampwidth
    out: list[bytes] = []
    for i, (p, frames) in enumerate(read):
        start, end = _speech_bounds(frames, p)
        if i == 0:
            start = 0
        if i == len(read) - 1:
            end = p.nframes
        out.append(frames[start * frame_bytes:end * frame_bytes])
        if i < len(gaps_s):
            out.append(b"\x00" * (int(gaps_s[i] * params.framerate) * frame_bytes))
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.stem}.{os.getpid()}.{threading.get_ident()}.join.wav")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(params.nchannels)
        w.setsampwidth(params.sampwidth)
        w.setframerate(params.framerate)
        w.writeframes(b"".join(out))
    os.replace(tmp, dest)  # a reader never sees half a file
    return dest
