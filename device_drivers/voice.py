"""Mandarin voice announcements: pyttsx3 + espeak-ng render WAVs, a player plays them one at a time.

Three parts, each replaceable:

* :class:`SpeechRenderer` owns the process's only pyttsx3 engine. pyttsx3 caches one engine per
  driver and espeak-ng is initialised once per process and is not thread-safe, so every render goes
  through one worker thread fed by a priority queue: a call being announced goes before work done
  ahead of time. Rendered WAVs are cached on disk under a name derived from (spoken text, voice,
  rate): a repeated call is never synthesised twice, and a cached one never waits for the thread.
* Players: :class:`CommandPlayer` runs e.g. ``["aplay", "-q", "{file}"]``; :class:`FilePlayer` only
  copies each played WAV into a folder and records the order (demo, tests, halls without speakers
  on this host); :class:`NullPlayer` discards.
* :class:`Announcer` ties them together: ``announce()`` returns at once, calls are played in order,
  never overlapping, each repeated N times after an optional chime, and health is published.

Speed: with a template that splits (see :mod:`.voice_phrases`), a call's sentence is two pieces,
"请A001号" rendered by :meth:`Announcer.prepare` when the ticket is issued and "到3号窗口办理"
rendered for every window by :meth:`Announcer.prepare_windows` at start-up; at call time the two
cached WAVs are joined (:mod:`.wav_join`, about a millisecond) instead of synthesising the sentence.
"""
from __future__ import annotations

import array
import contextlib
import hashlib
import itertools
import logging
import math
import os
import shutil
import subprocess
import threading
import time
import wave
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from queue import PriorityQueue, Queue
from typing import Any, Callable, Protocol, Sequence

from .health import Health, HealthEvent, HealthReporter
from .voice_phrases import DEFAULT_TEMPLATE, Phrase, PhraseBuilder, PhraseValueError, Piece
from .wav_join import JoinError, join_wavs

log = logging.getLogger(__name__)

KIND = "voice"
DEFAULT_VOICE = "sit/cmn-latn-pinyin"  # pyttsx3's id for espeak-ng's lang/sit/cmn-Latn-pinyin
DEFAULT_RATE = 150  # words per minute as espeak-ng counts them; 200 (pyttsx3's default) is hurried
SAMPLE_RATE = 22050  # what pyttsx3's espeak driver writes
URGENT, AHEAD = 0, 1  # render priorities: a call being announced, work done ahead of time
JOIN_GAP_S = 0.08  # silence between joined pieces, in place of espeak-ng's own padding
# A joined sentence ("请A001号" + "到3号窗口办理") is kept while it is in use, then deleted: over
# months every number of every queue meets every window (15 queues x 999 x 30 windows, ~90 KB each),
# and joining it again takes a millisecond. Pieces (one per number, one per window) are kept.
JOINED_KEEP_S = 24 * 3600.0
PRUNE_EVERY_S = 3600.0
PAUSE_GAP_S = 0.25  # ... after a piece that ends with a pause mark (",", ".")


class VoiceError(RuntimeError):
    """Base of voice failures; the message is what the health page shows."""


class RenderError(VoiceError):
    pass


class PlaybackError(VoiceError):
    pass


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hall-queue" / "voice"


def _cached(path: Path) -> bool:
    try:
        return path.stat().st_size > 44  # more than a bare WAV header
    except FileNotFoundError:
        return False


def wav_duration(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / float(w.getframerate())


def make_chime(path: Path, tones: Sequence[tuple[float, float]] = ((784.0, 0.28), (523.3, 0.45))) -> Path:
    """Write a two-tone "ding-dong" (G5 then C5, bell-like decay) as 22,050 Hz mono 16-bit PCM.

    Generated rather than shipped so nothing is downloaded and the format matches the speech.
    """
    samples = array.array("h")
    for freq, seconds in tones:
        n = int(SAMPLE_RATE * seconds)
        for i in range(n):
            t = i / SAMPLE_RATE
            attack = min(1.0, i / (0.005 * SAMPLE_RATE))  # 5 ms attack avoids a click
            env = attack * math.exp(-3.5 * t / seconds)
            v = math.sin(2 * math.pi * freq * t) + 0.3 * math.sin(4 * math.pi * freq * t)
            samples.append(int(0.45 * 32767 * env * v / 1.3))
    samples.extend([0] * int(SAMPLE_RATE * 0.15))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(samples.tobytes())
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------------------------------- rendering


class SpeechEngine(Protocol):
    """What the renderer needs from a synthesiser; :class:`Pyttsx3Engine` is the real one."""

    def voice_ids(self) -> set[str]:
        """Installed voice ids, lower-case."""

    def render(self, text: str, path: Path, voice: str, rate: int, timeout: float) -> None:
        """Write ``text`` spoken as a WAV at ``path``; raise RenderError on failure or timeout."""


def _quiet_espeak_driver() -> None:
    """pyttsx3's espeak driver print()s "Audio saved to <file>" to standard output for every WAV, which
    would fill an operator's terminal or log with a line per rendered phrase: its messages go to our
    log at DEBUG instead (only that module's print is replaced)."""
    try:
        from pyttsx3.drivers import espeak
    except ImportError:
        return

    def to_log(*args: object, **_kw: object) -> None:
        log.debug("pyttsx3: %s", " ".join(str(a) for a in args))

    espeak.print = to_log  # type: ignore[attr-defined]


class Pyttsx3Engine:
    """pyttsx3's engine, used so that its espeak driver's races cannot bite.

    pyttsx3 2.99 runs espeak-ng in AUDIO_OUTPUT_RETRIEVAL mode, where synthesis *and* parameter
    changes (``setProperty("rate")``) are queued to espeak-ng's own thread. Two consequences, both seen
    here under load: ``runAndWait()`` may return before the WAV is written, and the driver's
    ``stop()``, run at the end of every ``runAndWait()``, cancels whatever espeak-ng still has queued
    (a rate change, or the previous sentence) and leaves a flag that aborts the next sentence
    (``finished-utterance`` with ``completed=False``). So we wait for espeak-ng to be idle
    (``espeak_Synchronize``) before ``runAndWait()``, and after it for pyttsx3's
    ``finished-utterance`` notification (sent once the file is closed) and idle again.
    """

    def __init__(self) -> None:
        import pyttsx3  # imported here so the package imports on a machine without pyttsx3/espeak-ng

        self._engine = pyttsx3.init()  # cached per process by pyttsx3; only the render thread uses it
        _quiet_espeak_driver()
        self._finished = threading.Event()
        self._completed = False
        self._engine.connect("finished-utterance", self._on_finished)
        try:
            from pyttsx3.drivers import _espeak

            self._synchronize: Callable[[], Any] = _espeak.Synchronize
        except (ImportError, AttributeError):  # another pyttsx3 driver or version: nothing to wait for
            self._synchronize = lambda: None
        self._voice: str | None = None
        self._rate: int | None = None
        # The proxy starts "busy", so properties set now would only be applied inside runAndWait(),
        # right before its stop(). An empty run, on an idle espeak-ng, leaves the proxy idle.
        self._synchronize()
        self._engine.runAndWait()

    def _on_finished(self, name: object = None, completed: bool = True, **_: object) -> None:
        self._completed = bool(completed)
        self._finished.set()

    def voice_ids(self) -> set[str]:
        return {v.id.lower() for v in self._engine.getProperty("voices")}

    def render(self, text: str, path: Path, voice: str, rate: int, timeout: float) -> None:
        if voice != self._voice:
            self._engine.setProperty("voice", voice)
            self._voice = voice
        if rate != self._rate:
            self._engine.setProperty("rate", rate)
            self._rate = rate
        self._synchronize()  # property changes applied; nothing left for stop() to cancel
        self._finished.clear()
        self._engine.save_to_file(text, str(path))
        self._engine.runAndWait()
        if not self._finished.wait(timeout):
            raise RenderError(f"语音合成超时 ({timeout:.0f} s): {text!r}")
        self._synchronize()  # espeak-ng's thread has left the callback
        if not self._completed:
            raise RenderError(f"语音合成被中断: {text!r}")


@dataclass
class _RenderJob:
    text: str
    voice: str
    rate: int
    path: Path
    future: Future[Path]
    on_ready: list[Callable[[Path], None]] = field(default_factory=list)
    priority: int = URGENT


class SpeechRenderer:
    """The one thread that talks to pyttsx3; share it (``SpeechRenderer.shared()``) within a process."""

    _shared: "SpeechRenderer | None" = None
    _shared_lock = threading.Lock()

    def __init__(self, cache_dir: Path | None = None,
                 engine_factory: Callable[[], SpeechEngine] = Pyttsx3Engine) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._engine_factory = engine_factory
        self._engine: SpeechEngine | None = None
        self._voice_ids: set[str] = set()
        self.synth_timeout = 30.0
        self._jobs: PriorityQueue[tuple[int, int, _RenderJob]] = PriorityQueue()
        self._order = itertools.count()  # FIFO within a priority
        self._inflight: dict[Path, _RenderJob] = {}  # queued or rendering, by cache path
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.renders = 0  # sentences actually synthesised
        self.cache_hits = 0  # requests answered from the on-disk cache

    @classmethod
    def shared(cls) -> "SpeechRenderer":
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    @staticmethod
    def cache_name(text: str, voice: str, rate: int) -> str:
        digest = hashlib.sha256(f"{voice}\0{rate}\0{text}".encode()).hexdigest()[:24]
        return f"{digest}.wav"

    def submit(self, text: str, voice: str = DEFAULT_VOICE, rate: int = DEFAULT_RATE,
               cache_dir: Path | None = None, on_ready: Callable[[Path], None] | None = None,
               *, priority: int = URGENT) -> Future[Path]:
        """Queue a render and return at once; the future resolves to the cached WAV's path.

        A cached WAV resolves at once, in the caller's thread. A sentence already queued or being
        rendered is not queued twice: the same future is returned (moved ahead if now URGENT).
        ``on_ready`` runs *before* the future resolves, so whoever waits on the future already sees
        its effects (a done-callback would run after waiters wake up).
        """
        if not text.strip():
            raise RenderError("没有可播报的文字")
        folder = Path(cache_dir) if cache_dir is not None else self.cache_dir
        path = folder / self.cache_name(text, voice, rate)
        with self._lock:
            job = self._inflight.get(path)
            cached = job is None and _cached(path)
            if cached:
                self.cache_hits += 1
        if cached:
            fut: Future[Path] = Future()
            if on_ready is not None:
                on_ready(path)
            fut.set_result(path)
            return fut
        with self._lock:
            job = self._inflight.get(path)
            if job is None:
                job = self._inflight[path] = _RenderJob(text, voice, int(rate), path, Future(), priority=priority)
            elif priority < job.priority and not job.future.running():
                job.priority = priority  # a second entry jumps the queue; the first is then skipped
            else:
                priority = -1  # already queued at this priority or higher
            if on_ready is not None:
                job.on_ready.append(on_ready)
        self._ensure_thread()
        if priority >= 0:
            self._jobs.put((priority, next(self._order), job))
        return job.future

    def render(self, text: str, voice: str = DEFAULT_VOICE, rate: int = DEFAULT_RATE,
               cache_dir: Path | None = None, timeout: float = 30.0) -> Path:
        return self.submit(text, voice, rate, cache_dir).result(timeout)

    @property
    def backlog(self) -> int:
        return self._jobs.qsize()

    @property
    def pending(self) -> int:
        """Sentences queued or being rendered (each counted once however often it was asked for)."""
        with self._lock:
            return len(self._inflight)

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="voice-render", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            _priority, _n, job = self._jobs.get()
            if job.future.running() or job.future.done():
                continue  # the same job queued again at a higher priority, and done already
            if not job.future.set_running_or_notify_cancel():
                continue
            try:
                path = self._render_one(job)
            except Exception as exc:  # reported through the future to whoever waits on it
                log.warning("voice render of %r failed: %s", job.text, exc)
                err = exc if isinstance(exc, RenderError) else RenderError(f"语音合成失败: {exc}")
                with self._lock:
                    self._inflight.pop(job.path, None)
                job.future.set_exception(err)
                continue
            with self._lock:
                self._inflight.pop(job.path, None)
                callbacks = list(job.on_ready)
            for cb in callbacks:
                try:
                    cb(path)
                except Exception:
                    log.exception("voice: on_ready callback failed")
            job.future.set_result(path)

    def _engine_for(self, voice: str) -> SpeechEngine:
        if self._engine is None:
            engine = self._engine_factory()
            self._voice_ids = engine.voice_ids()
            self._engine = engine
        if self._voice_ids and voice.lower() not in self._voice_ids:
            cmn = ", ".join(sorted(i for i in self._voice_ids if "cmn" in i)) or "none"
            raise RenderError(f"语音 {voice!r} 未安装 (espeak-ng); 可用普通话语音: {cmn}")
        return self._engine

    def _render_one(self, job: _RenderJob) -> Path:
        if _cached(job.path):  # written meanwhile (by another process sharing the cache)
            self.cache_hits += 1
            return job.path
        engine = self._engine_for(job.voice)
        job.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = job.path.with_name(f".{job.path.stem}.{os.getpid()}.tmp.wav")
        engine.render(job.text, tmp, job.voice, job.rate, self.synth_timeout)
        try:
            with wave.open(str(tmp), "rb") as w:
                frames = w.getnframes()
        except FileNotFoundError:
            frames = 0
        except (wave.Error, EOFError) as exc:
            raise RenderError(f"语音合成输出无效: {exc}") from exc
        if frames == 0:
            tmp.unlink(missing_ok=True)
            raise RenderError(f"语音合成没有输出 (voice {job.voice!r}): {job.text!r}")
        os.replace(tmp, job.path)  # atomic: a reader never sees half a cached file
        self.renders += 1
        log.debug("rendered %r -> %s (%d frames)", job.text, job.path, frames)
        return job.path


# ----------------------------------------------------------------------------------------- playback


class Player(Protocol):
    def check(self) -> None:
        """Raise PlaybackError if this player cannot work at all (missing program, unwritable folder)."""

    def play(self, path: Path) -> None:
        """Play one WAV to the end; raise PlaybackError on failure."""


class NullPlayer:
    """Plays nothing: for a hall without speakers on this host."""

    def check(self) -> None:
        return None

    def play(self, path: Path) -> None:
        return None


class CommandPlayer:
    """Runs a player program per file; ``{file}`` in the argv is replaced by the WAV's path."""

    def __init__(self, argv: Sequence[str], timeout_margin: float = 10.0) -> None:
        argv = [str(a) for a in argv]
        if not argv or not any("{file}" in a for a in argv):
            raise ValueError(f"player command {argv!r} must contain a '{{file}}' argument")
        self.argv = argv
        self.timeout_margin = timeout_margin

    def check(self) -> None:
        if shutil.which(self.argv[0]) is None:
            raise PlaybackError(f"播放程序 {self.argv[0]!r} 不存在")

    def play(self, path: Path) -> None:
        argv = [a.replace("{file}", str(path)) for a in self.argv]
        try:
            timeout = wav_duration(path) + self.timeout_margin
        except (wave.Error, OSError):
            timeout = 60.0
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, timeout=timeout, check=False)
        except FileNotFoundError:
            raise PlaybackError(f"播放程序 {argv[0]!r} 不存在") from None
        except subprocess.TimeoutExpired:
            raise PlaybackError(f"播放超时 ({timeout:.0f} s): {' '.join(argv)}") from None
        except OSError as exc:
            raise PlaybackError(f"无法启动播放程序 {argv[0]!r}: {exc}") from None
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            detail = err[-1] if err else "no output"
            raise PlaybackError(f"播放失败: {argv[0]} 退出码 {proc.returncode}: {detail}")


@dataclass(frozen=True)
class PlayRecord:
    seq: int
    source: Path  # the cached WAV that was "played"
    written: Path  # its copy in the output folder
    started: float  # time.monotonic()
    ended: float


class FilePlayer:
    """"Plays" by copying each WAV into a folder as NNNN-name.wav and recording the order.

    ``pace`` > 0 holds each play for pace x the WAV's duration, so timing behaves like a speaker
    (pace=1 is real time) without one.
    """

    def __init__(self, folder: Path, pace: float = 0.0) -> None:
        self.folder = Path(folder)
        self.pace = pace
        self.played: list[PlayRecord] = []
        self._seq = 0

    def check(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PlaybackError(f"无法创建输出目录 {self.folder}: {exc}") from None
        if not os.access(self.folder, os.W_OK):
            raise PlaybackError(f"输出目录 {self.folder} 不可写")

    def play(self, path: Path) -> None:
        started = time.monotonic()
        self._seq += 1
        dest = self.folder / f"{self._seq:04d}-{path.name}"
        try:
            shutil.copyfile(path, dest)
            if self.pace > 0:
                time.sleep(self.pace * wav_duration(path))
            with open(self.folder / "played.log", "a", encoding="utf-8") as f:
                f.write(f"{self._seq}\t{dest.name}\t{path}\n")
        except OSError as exc:
            raise PlaybackError(f"写入 {dest} 失败: {exc}") from None
        self.played.append(PlayRecord(self._seq, path, dest, started, time.monotonic()))


def player_from_option(value: Any, folder: Path | None = None, pace: float = 0.0) -> Player:
    """Config value -> player: "null", "file" (needs folder) or an argv list with "{file}"."""
    if value in (None, "null"):
        return NullPlayer()
    if value == "file":
        if folder is None:
            raise ValueError("voice option 'folder' is required when player = 'file'")
        return FilePlayer(folder, pace=pace)
    if isinstance(value, (list, tuple)) and all(isinstance(a, str) for a in value):
        return CommandPlayer(value)
    raise ValueError(
        f"voice option 'player' must be 'null', 'file' or a command list with '{{file}}', not {value!r}"
    )


# ---------------------------------------------------------------------------------------- announcer


@dataclass
class Announcement:
    """One call to announce(); filled in as it moves through rendering and playback."""

    number: str
    window: str
    repeat: int
    phrase: Phrase
    requested_at: float = field(default_factory=time.monotonic)
    wav: Path | None = None
    wav_ready_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def wav_latency(self) -> float | None:
        """Seconds from announce() to the WAV being ready (cache hits are near zero)."""
        return None if self.wav_ready_at is None else self.wav_ready_at - self.requested_at


_STOP = object()


def _copy_outcome(src: Future[Path], dst: Future[Path]) -> None:
    exc = src.exception()
    if exc is not None:
        dst.set_exception(exc)
    else:
        dst.set_result(src.result())


class Announcer:
    """Non-blocking, ordered, non-overlapping announcements with health reporting.

    ``announce()`` only queues; one playback thread plays calls in FIFO order. A recall is just
    another ``announce()``.
    """

    def __init__(
        self,
        name: str = "voice",
        *,
        player: Player | None = None,
        builder: PhraseBuilder | None = None,
        renderer: SpeechRenderer | None = None,
        voice: str = DEFAULT_VOICE,
        rate: int = DEFAULT_RATE,
        cache_dir: Path | None = None,
        chime: bool | Path = True,
        repeat: int = 2,
        gap_s: float = 0.6,
        render_timeout: float = 30.0,
    ) -> None:
        self.name = name
        self.player: Player = player if player is not None else NullPlayer()
        self.builder = builder or PhraseBuilder()
        self.renderer = renderer or SpeechRenderer.shared()
        self.voice = voice
        self.rate = int(rate)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else self.renderer.cache_dir
        self.chime = chime
        self.repeat = repeat
        self.gap_s = gap_s
        self.render_timeout = render_timeout
        self.reporter = HealthReporter(name, KIND)
        self._queue: Queue[Any] = Queue()
        self._pending = 0
        self._idle = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._chime_path: Path | None = None
        self._chime_problem = ""  # kept so a good call reports degraded, not online
        self._joiner = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"voice-join-{name}")
        self._joined_lock = threading.Lock()  # a joined WAV is not deleted between its reuse and its touch
        self._next_prune = 0.0

    @classmethod
    def from_options(cls, options: dict[str, Any], name: str | None = None) -> "Announcer":
        """Build from a hall config section; unknown keys and bad values name the key."""
        known = {"name", "player", "folder", "pace", "template", "voice", "rate", "cache_dir", "chime",
                 "repeat", "gap_s", "spoken_style"}
        unknown = set(options) - known
        if unknown:
            raise ValueError(f"unknown voice option(s) {sorted(unknown)}; expected some of {sorted(known)}")
        for key in ("rate", "repeat"):
            if key in options and (not isinstance(options[key], int) or options[key] < 1):
                raise ValueError(f"voice option {key!r} must be a positive integer, not {options[key]!r}")
        folder = Path(options["folder"]) if "folder" in options else None
        chime = options.get("chime", True)
        if isinstance(chime, str):
            chime = Path(chime)
        return cls(
            name or str(options.get("name", "voice")),
            player=player_from_option(options.get("player", "null"), folder, float(options.get("pace", 0.0))),
            builder=PhraseBuilder(options.get("template", DEFAULT_TEMPLATE), options.get("spoken_style")),
            voice=options.get("voice", DEFAULT_VOICE),
            rate=options.get("rate", DEFAULT_RATE),
            cache_dir=Path(options["cache_dir"]) if "cache_dir" in options else None,
            chime=chime,
            repeat=options.get("repeat", 2),
            gap_s=float(options.get("gap_s", 0.6)),
        )

    @property
    def health(self) -> HealthEvent | None:
        """The last published health event (subscribe through ``reporter``)."""
        return self.reporter.current

    # -- lifecycle

    def start(self) -> "Announcer":
        try:
            self.player.check()
        except PlaybackError as exc:
            self.reporter.report(Health.OFFLINE, str(exc))
        else:
            self.reporter.report(Health.ONLINE)
        if self.chime:
            self._chime_path = self._prepare_chime()
        self._thread = threading.Thread(target=self._run, name=f"voice-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the announcement being played; queued ones are dropped (drain first if needed)."""
        self._stop.set()
        self._queue.put(_STOP)
        if self._thread is not None:
            self._thread.join(timeout)
        self._joiner.shutdown(wait=False, cancel_futures=True)

    def _prepare_chime(self) -> Path | None:
        if isinstance(self.chime, Path):
            if not self.chime.exists():
                self._chime_problem = f"提示音文件 {self.chime} 不存在"
                if self.reporter.current is not None and self.reporter.current.health == Health.ONLINE:
                    self.reporter.report(Health.DEGRADED, self._chime_problem)
                return None
            return self.chime
        path = self.cache_dir / "chime.wav"
        if not path.exists():
            make_chime(path)
        return path

    # -- rendering ahead of the call

    def prepare(self, number: str, queue: str = "") -> Future[Path] | None:
        """Render a ticket's piece ("请A001号") now, before it is called: call this when it is issued.

        Behind any call being announced; None when the template does not split or the number
        cannot be spoken (the call will say why).
        """
        try:
            text = self.builder.ticket_piece(number, queue)
        except PhraseValueError:
            return None
        return None if text is None else self._render(text, AHEAD)

    def prepare_windows(self, windows: Sequence[str | int]) -> list[Future[Path]]:
        """Render each window's piece ("到3号窗口办理"); done once at start-up."""
        out = []
        for window in windows:
            try:
                text = self.builder.window_piece(window)
            except PhraseValueError as exc:
                log.warning("%s: window %r: %s", self.name, window, exc)
                continue
            if text is not None:
                out.append(self._render(text, AHEAD))
        return out

    def _render(self, text: str, priority: int = URGENT,
                on_ready: Callable[[Path], None] | None = None) -> Future[Path]:
        return self.renderer.submit(text, self.voice, self.rate, self.cache_dir, on_ready, priority=priority)

    # -- calling

    def announce(
        self, number: str, window: str | int, repeat: int | None = None, *, queue: str = ""
    ) -> Announcement:
        """Queue a call and return at once; rendering starts now, playback in FIFO order."""
        phrase = self.builder.build(number, window, queue)
        times = self.repeat if repeat is None else repeat
        if times < 1:
            raise ValueError(f"repeat must be at least 1, not {times}")
        item = Announcement(str(number), str(window), times, phrase)
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + PRUNE_EVERY_S
            with contextlib.suppress(RuntimeError):  # stopped
                self._joiner.submit(self.prune_joined)
        pieces = self.builder.pieces(number, window, queue)
        if pieces is None or len(pieces) == 1:
            text = phrase.spoken if pieces is None else pieces[0].spoken
            future = self._render(text, URGENT, lambda path, a=item: self._wav_ready(a, path))
        else:
            future = self._joined(item, pieces)
        with self._idle:
            self._pending += 1
        self._queue.put((item, future))
        return item

    def _joined(self, item: Announcement, pieces: list[Piece]) -> Future[Path]:
        """The call's WAV made of its pieces' WAVs; each piece comes from the cache if it was
        prepared, else is rendered now, ahead of anything prepared."""
        gaps = [PAUSE_GAP_S if p.spoken.endswith((",", ".")) else JOIN_GAP_S for p in pieces[:-1]]
        key = "\x1f".join([*(p.spoken for p in pieces), *(f"{g:g}" for g in gaps)])
        dest = self.cache_dir / ("joined-" + self.renderer.cache_name(key, self.voice, self.rate))
        result: Future[Path] = Future()
        with self._joined_lock:
            reused = _cached(dest)  # a recall, or the same number called to the same window again
            try:
                if reused:
                    os.utime(dest)  # in use: kept by prune_joined
            except FileNotFoundError:  # deleted meanwhile by another process sharing the cache
                reused = False
        if reused:
            self._wav_ready(item, dest)
            result.set_result(dest)
            return result
        parts = [self._render(p.spoken, URGENT) for p in pieces]
        remaining = [len(parts)]
        lock = threading.Lock()

        def part_done(_f: Future[Path]) -> None:
            with lock:
                remaining[0] -= 1
                if remaining[0]:
                    return
            try:
                self._joiner.submit(self._join, item, parts, dest, gaps, result)
            except RuntimeError:  # stopped
                result.set_exception(RenderError("已停止"))

        for f in parts:
            f.add_done_callback(part_done)
        return result

    def prune_joined(self, keep_s: float = JOINED_KEEP_S) -> int:
        """Delete joined sentences not used for ``keep_s`` seconds (see JOINED_KEEP_S); the number
        deleted. Runs on the joining thread once an hour while calls are announced."""
        cutoff = time.time() - keep_s
        gone = 0
        for path in self.cache_dir.glob("joined-*.wav"):
            with self._joined_lock:
                try:
                    if path.stat().st_mtime < cutoff:
                        path.unlink()
                        gone += 1
                except FileNotFoundError:
                    pass
        if gone:
            log.info("%s: deleted %d joined announcement(s) unused for %.0f h", self.name, gone, keep_s / 3600)
        return gone

    def _join(self, item: Announcement, parts: list[Future[Path]], dest: Path, gaps: list[float],
              result: Future[Path]) -> None:
        try:
            join_wavs([f.result() for f in parts], dest, gaps)
        except JoinError as exc:
            # pieces in different formats (another synthesiser?): say the sentence whole instead
            log.warning("%s: cannot join the pieces of %s (%s); rendering it whole", self.name,
                        item.phrase.display, exc)
            whole = self._render(item.phrase.spoken, URGENT, lambda path: self._wav_ready(item, path))
            whole.add_done_callback(lambda f: _copy_outcome(f, result))
            return
        except Exception as exc:  # a piece failed to render: the call reports it
            result.set_exception(exc if isinstance(exc, RenderError) else RenderError(f"语音合成失败: {exc}"))
            return
        self._wav_ready(item, dest)
        result.set_result(dest)

    @staticmethod
    def _wav_ready(item: Announcement, path: Path) -> None:
        item.wav_ready_at = time.monotonic()
        item.wav = path

    @property
    def pending(self) -> int:
        """Announcements accepted and not yet finished (queued or playing)."""
        with self._idle:
            return self._pending

    def wait_idle(self, timeout: float) -> bool:
        """Block until every queued announcement has been played (or failed); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    # -- worker

    def _run(self) -> None:
        while not self._stop.is_set():
            entry = self._queue.get()
            if entry is _STOP:
                break
            item, future = entry
            try:
                self._play(item, future)
            finally:
                item.finished_at = time.monotonic()
                item.done.set()
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()
        # release anyone waiting on calls that will never be played
        while not self._queue.empty():
            entry = self._queue.get_nowait()
            if entry is not _STOP:
                entry[0].error = "已停止"
                entry[0].done.set()
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def _play(self, item: Announcement, future: Future[Path]) -> None:
        try:
            wav = future.result(self.render_timeout)
        except Exception as exc:
            item.error = str(exc) or "语音合成超时"
            self.reporter.report(Health.OFFLINE, item.error)
            log.warning("%s: cannot announce %s: %s", self.name, item.phrase.display, item.error)
            return
        item.started_at = time.monotonic()
        try:
            if self._chime_path is not None:
                self.player.play(self._chime_path)
            for i in range(item.repeat):
                if i and self.gap_s > 0:
                    self._stop.wait(self.gap_s)
                self.player.play(wav)
        except PlaybackError as exc:
            item.error = str(exc)
            self.reporter.report(Health.OFFLINE, item.error)
            log.warning("%s: playback of %s failed: %s", self.name, item.phrase.display, exc)
            return
        if self._chime_problem:
            self.reporter.report(Health.DEGRADED, self._chime_problem)
        else:
            self.reporter.report(Health.ONLINE)
        log.info("%s: announced %s x%d", self.name, item.phrase.display, item.repeat)
