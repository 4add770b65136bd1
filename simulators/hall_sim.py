"""A whole simulated hall: every device simulator from one TOML file, started and stopped together.

::

    hall = SimulatorHall.from_file("examples/simulators.toml").start()
    hall.endpoints["kiosk1.reader"].pty      # "/dev/pts/7": give it to the driver like /dev/ttyUSB0
    hall.get("kiosk1.reader").place_card("wang")
    hall.command("press", "bus1", "101", "call_next")   # what `hall-sim ctl press bus1 101 call_next` does
    hall.stop()

The file lists simulators as ``[[sim]]`` tables (``name``, ``kind``, ``tcp_port``, ``options``); see
``examples/simulators.toml``. It is validated with pydantic before anything starts: every problem is
reported with its location (``sim[2].options.devices[4].address: ...``).

A control socket (JSON lines on 127.0.0.1, :class:`ControlServer`) lets another process inject events:
place a card, run the printer out of paper, press a caller-pad key, grade on an evaluation pad, read
what the LED boards show and what the printer printed. ``hall-sim ctl`` is its client.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import socketserver
import threading
import tomllib
import typing
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .base import SimulatorServer

log = logging.getLogger(__name__)

DEFAULT_CONTROL_PORT = 7290
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"


class ConfigError(ValueError):
    """The simulator file is wrong; ``problems`` holds one ``location: message`` line per problem."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + ("\n  ".join([""] + problems) if len(problems) > 1 else problems[0]))


class SimulatorStartError(RuntimeError):
    """A simulator could not start (e.g. its TCP port is taken); the others were stopped again."""


class CommandError(ValueError):
    """A control command was wrong (unknown simulator, bad argument); the message says what is expected."""


# ---- the file -------------------------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Loose(BaseModel):
    """Known keys are type-checked here; unknown ones are left to the simulator's from_options."""

    model_config = ConfigDict(extra="allow")


class SamOptions(_Loose):
    citizens_file: str | None = None
    sam_id: str | None = None
    place: str | int | None = None
    silent: bool = False
    delay: float = Field(0.0, ge=0)


class EscPosOptions(_Loose):
    paper: Literal["ok", "near_end", "out"] = "ok"
    chinese_default: bool = True
    paper_tickets: int | None = Field(None, ge=0)
    near_end_tickets: int = Field(3, ge=0)
    paper_dots: int = Field(576, gt=0)
    delay: float = Field(0.0, ge=0)
    offline: bool = False
    png_dir: str | None = None


def _bus_types() -> list[str]:
    from .hallbus_sim import _TYPES

    return list(_TYPES)


class BusDeviceSpec(_Strict):
    address: int = Field(ge=1, le=254)
    type: str
    id: str | None = None  # the device id in the hall config (e.g. "led-1"), for the demo and docs
    window: int | None = Field(None, ge=1)
    rows: int | None = Field(None, ge=1, le=16)
    width: int | None = Field(None, ge=8, le=1024)
    model: str = ""

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        known = _bus_types()
        if value not in known:
            raise ValueError(f"unknown device type {value!r}; expected one of {', '.join(known)}")
        return value


class HallBusOptions(_Strict):
    devices: list[BusDeviceSpec] = Field(min_length=1)
    silent: list[int] = Field(default_factory=list)


class PcscCardOptions(_Loose):
    host: str = "127.0.0.1"
    port: int = Field(35963, ge=1, le=65535)
    label: str | None = None


@dataclass(frozen=True)
class SimKind:
    name: str
    summary: str
    options: type[BaseModel]
    build: Callable[[dict[str, Any]], Any]
    served: bool = True  # False: a client of something else (vpcd), no pty or TCP of its own


def _build_sam(opts: dict[str, Any]) -> Any:
    from .sam_sim import SamReaderSimulator

    return SamReaderSimulator.from_options(opts)


def _build_escpos(opts: dict[str, Any]) -> Any:
    from .escpos_sim import EscPosPrinterSimulator

    return EscPosPrinterSimulator.from_options(opts)


def _build_hallbus(opts: dict[str, Any]) -> Any:
    from .hallbus_sim import HallBusSim

    return HallBusSim.from_options(opts)


def _build_pcsc(opts: dict[str, Any]) -> Any:
    from .pcsc_card import VpcdCardClient

    return VpcdCardClient.from_options(opts)


KINDS: dict[str, SimKind] = {
    k.name: k for k in (
        SimKind("sam", "身份证阅读器 ID card reader (GA 467)", SamOptions, _build_sam),
        SimKind("escpos", "小票打印机 ticket printer (ESC/POS)", EscPosOptions, _build_escpos),
        SimKind("hallbus", "RS-485 总线：LED屏、呼叫器、评价器 hall bus", HallBusOptions, _build_hallbus),
        SimKind("pcsc_card", "社保卡 virtual card in pcscd's vpcd reader", PcscCardOptions, _build_pcsc,
                served=False),
    )
}


class SimSpec(_Strict):
    name: str = Field(pattern=NAME_PATTERN, max_length=64)
    kind: str
    tcp_port: int = Field(0, ge=0, le=65535)  # 0: any free port
    tcp: bool = True
    pty: bool = True
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value not in KINDS:
            raise ValueError(f"unknown simulator kind {value!r}; known kinds: {', '.join(KINDS)}")
        return value


class HallSimConfig(_Strict):
    hall: str | None = None  # the hall id this device set belongs to (informational)
    host: str = "127.0.0.1"  # where the simulators' TCP endpoints listen
    control_port: int = Field(DEFAULT_CONTROL_PORT, ge=0, le=65535)  # 0: any free port
    sim: list[SimSpec] = Field(min_length=1)


def _loc(parts: tuple[Any, ...]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _model_at(root: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that holds the key at ``loc`` (for "unknown key; expected one of ...")."""
    model: Any = root
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return None
        model = _inner_model(model.model_fields[part].annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _problems(exc: ValidationError, root: type[BaseModel], prefix: str = "") -> list[str]:
    """One ``location: message (got value)`` line per pydantic error."""
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        where = _loc(loc)
        if prefix:
            where = f"{prefix}.{where}" if loc else prefix
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
            model = _model_at(root, loc)
            if model is not None:
                msg += f"; expected one of {', '.join(model.model_fields)}"
        elif err["type"] not in ("missing", "value_error") and "input" in err and not isinstance(err["input"], (dict, list)):
            msg += f" (got {err['input']!r})"
        lines.append(f"{where}: {msg}")
    return lines


def _resolve(options: dict[str, Any], keys: tuple[str, ...], base_dir: Path) -> dict[str, Any]:
    out = dict(options)
    for key in keys:
        value = out.get(key)
        if isinstance(value, str) and value and not os.path.isabs(value):
            out[key] = str(base_dir / value)
    return out


def parse_config(data: dict[str, Any], *, source: str = "<config>",
                 base_dir: Path | None = None) -> tuple[HallSimConfig, list[Any]]:
    """Validate ``data`` and build every simulator object (nothing is started).

    Returns the config and the built devices, in file order; raises :class:`ConfigError` listing every
    problem found.
    """
    base_dir = base_dir or Path.cwd()
    try:
        config = HallSimConfig.model_validate(data)
    except ValidationError as exc:
        problems = _problems(exc, HallSimConfig)
        sims = data.get("sim") if isinstance(data, dict) else None
        for i, raw in enumerate(sims if isinstance(sims, list) else []):  # report the options' too
            if isinstance(raw, dict) and raw.get("kind") in KINDS and isinstance(raw.get("options", {}), dict):
                model = KINDS[raw["kind"]].options
                try:
                    model.model_validate(raw.get("options", {}))
                except ValidationError as sub:
                    problems.extend(_problems(sub, model, f"sim[{i}].options"))
        raise ConfigError(source, problems) from None
    problems: list[str] = []
    names: dict[str, int] = {}
    ports: dict[int, str] = {}
    if config.control_port:
        ports[config.control_port] = "control_port"
    devices: list[Any] = []
    for i, spec in enumerate(config.sim):
        where = f"sim[{i}]"
        if spec.name in names:
            problems.append(f"{where}.name: {spec.name!r} is already used by sim[{names[spec.name]}]")
        names.setdefault(spec.name, i)
        kind = KINDS[spec.kind]
        if kind.served and spec.tcp and spec.tcp_port:
            if spec.tcp_port in ports:
                problems.append(f"{where}.tcp_port: {spec.tcp_port} is already used by {ports[spec.tcp_port]}")
            ports.setdefault(spec.tcp_port, f"sim[{i}] ({spec.name})")
        if kind.served and not (spec.tcp or spec.pty):
            problems.append(f"{where}: a {spec.kind} simulator needs tcp or pty (both are false)")
        try:
            checked = kind.options.model_validate(spec.options)
        except ValidationError as exc:
            problems.extend(_problems(exc, kind.options, f"{where}.options"))
            devices.append(None)
            continue
        opts = dict(spec.options)
        if spec.kind == "sam":
            opts = _resolve(opts, ("citizens_file",), base_dir)
        elif spec.kind == "escpos":
            opts = _resolve(opts, ("png_dir",), base_dir)
        elif spec.kind == "hallbus":
            # from_options takes plain dicts; our extra keys (id, window) are for readers of the file
            opts = {"devices": [d.model_dump(exclude_none=True) for d in checked.devices],  # type: ignore[attr-defined]
                    "silent": list(checked.silent)}  # type: ignore[attr-defined]
        try:
            devices.append(kind.build(opts))
        except (ValueError, KeyError, TypeError, OSError) as exc:
            text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            problems.append(f"{where}.options ({spec.name}): {text}")
            devices.append(None)
    if problems:
        raise ConfigError(source, problems)
    return config, devices


def load_config(path: str | Path) -> tuple[HallSimConfig, list[Any]]:
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(str(path), ["file not found"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [f"TOML syntax error: {exc}"]) from None
    return parse_config(data, source=str(path), base_dir=path.resolve().parent)


# ---- the running hall -----------------------------------------------------------------------------
@dataclass
class Endpoint:
    """Where one simulator can be reached. ``status``: running, skipped (pcsc card without vpcd),
    stopped."""

    name: str
    kind: str
    pty: str | None = None
    tcp: str | None = None  # socket://127.0.0.1:PORT, a pyserial port URL
    tcp_port: int | None = None
    status: str = "stopped"
    detail: str = ""
    devices: list[dict[str, Any]] = field(default_factory=list)  # hallbus: address, type, id, window

    @property
    def url(self) -> str | None:
        """The port URL to configure a driver with (the TCP one: it survives restarts on fixed ports)."""
        return self.tcp or self.pty


class SimulatorHall:
    """Every simulator of one file; :meth:`start` / :meth:`stop` them together."""

    def __init__(self, config: HallSimConfig, devices: list[Any], *, source: str = "<config>") -> None:
        self.config = config
        self.source = source
        self.specs = {spec.name: spec for spec in config.sim}
        self.devices: dict[str, Any] = {spec.name: dev for spec, dev in zip(config.sim, devices)}
        self.servers: dict[str, SimulatorServer] = {}
        self.endpoints: dict[str, Endpoint] = {}
        for spec in config.sim:
            bus_devices = ([d.model_dump(exclude_none=True, exclude_defaults=True) | {"address": d.address,
                                                                                       "type": d.type}
                            for d in HallBusOptions.model_validate(spec.options).devices]
                           if spec.kind == "hallbus" else [])
            self.endpoints[spec.name] = Endpoint(spec.name, spec.kind, devices=bus_devices)
        self.control: ControlServer | None = None
        self._lock = threading.RLock()
        self._started = False

    @classmethod
    def from_file(cls, path: str | Path) -> "SimulatorHall":
        config, devices = load_config(path)
        return cls(config, devices, source=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, base_dir: str | Path | None = None) -> "SimulatorHall":
        config, devices = parse_config(data, base_dir=Path(base_dir) if base_dir else None)
        return cls(config, devices)

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self, *, control: bool = True, control_port: int | None = None) -> "SimulatorHall":
        """Start every simulator (and the control socket unless ``control=False``; ``control_port``
        overrides the file's, 0 = any free port). On failure everything started is stopped again and
        :class:`SimulatorStartError` names the simulator."""
        with self._lock:
            if self._started:
                return self
            try:
                for spec in self.config.sim:
                    self._start_one(spec)
                if control:
                    port = self.config.control_port if control_port is None else control_port
                    try:
                        self.control = ControlServer(self, "127.0.0.1", port).start()
                    except OSError as exc:
                        raise SimulatorStartError(f"control socket: cannot listen on 127.0.0.1:{port}: {exc}") from exc
            except BaseException:
                self._started = True
                self.stop()
                raise
            self._started = True
        return self

    def _start_one(self, spec: SimSpec) -> None:
        ep = self.endpoints[spec.name]
        device = self.devices[spec.name]
        if spec.kind == "pcsc_card":
            try:
                device.insert(timeout=2.0)
            except ConnectionError as exc:
                ep.status, ep.detail = "skipped", f"{exc}; start pcscd with vpcd: scripts/pcscd-test.sh"
                log.warning("%s: skipped (pcsc_card): %s", spec.name, ep.detail)
                return
            ep.status, ep.detail = "running", f"vpcd {device.host}:{device.port}"
            return
        server = SimulatorServer(device, name=spec.name, pty=spec.pty, tcp_host=self.config.host,
                                 tcp_port=spec.tcp_port if spec.tcp else None)
        try:
            server.start()
        except OSError as exc:
            server.stop()
            where = f"TCP port {spec.tcp_port}" if spec.tcp else "a pty"
            raise SimulatorStartError(f"{spec.name}: cannot open {where}: {exc}") from exc
        self.servers[spec.name] = server
        ep.pty = server.pty_path
        if server.tcp_port:
            ep.tcp, ep.tcp_port = server.tcp_url, server.tcp_port
        ep.status = "running"

    def stop(self) -> None:
        """Stop the control socket and every simulator; safe to call twice."""
        with self._lock:
            if not self._started:
                return
            self._started = False
            if self.control is not None:
                self.control.stop()
                self.control = None
            for name, server in reversed(list(self.servers.items())):
                try:
                    server.stop()
                except Exception:
                    log.exception("%s: stop failed", name)
            self.servers.clear()
            for name, spec in self.specs.items():
                if spec.kind == "pcsc_card" and self.endpoints[name].status == "running":
                    self.devices[name].remove()
            for ep in self.endpoints.values():
                if ep.status == "running":
                    ep.status = "stopped"

    def __enter__(self) -> "SimulatorHall":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- lookup ------------------------------------------------------------------------------
    def get(self, name: str) -> Any:
        """The simulator object: SamReaderSimulator, EscPosPrinterSimulator, HallBusSim, VpcdCardClient."""
        try:
            return self.devices[name]
        except KeyError:
            raise KeyError(f"no simulator {name!r}; configured: {', '.join(self.devices)}") from None

    def server(self, name: str) -> SimulatorServer:
        return self.servers[name]

    @property
    def control_address(self) -> tuple[str, int] | None:
        return (self.control.host, self.control.port) if self.control else None

    def endpoints_doc(self) -> dict[str, Any]:
        """What ``--endpoints FILE`` holds, for other processes (demo, gateway, tests)."""
        return {
            "config": self.source,
            "hall": self.config.hall,
            "pid": os.getpid(),
            "control": ({"host": self.control.host, "port": self.control.port} if self.control else None),
            "sims": {name: {k: v for k, v in asdict(ep).items() if k != "name"}
                     for name, ep in self.endpoints.items()},
        }

    def write_endpoints(self, path: str | Path) -> Path:
        """Write :meth:`endpoints_doc` as JSON atomically (readers never see half a file)."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.endpoints_doc(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path

    def table(self) -> str:
        """The endpoints as a text table with Chinese and English headers."""
        rows = [("名称 Name", "类型 Kind", "串口 PTY", "TCP / 状态 status")]
        for ep in self.endpoints.values():
            if ep.status == "running" and ep.kind != "pcsc_card":
                last = ep.tcp or "-"
            elif ep.status == "running":
                last = ep.detail
            else:
                last = f"{ep.status}: {ep.detail}" if ep.detail else ep.status
            rows.append((ep.name, ep.kind, ep.pty or "-", last))
        widths = [max(_width(r[i]) for r in rows) for i in range(3)]
        out = []
        for n, row in enumerate(rows):
            out.append("  ".join(_pad(cell, widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3])
            if n == 0:
                out.append("  ".join("-" * w for w in widths) + "  " + "-" * _width(row[3]))
        if self.control:
            out.append(f"控制 control: 127.0.0.1:{self.control.port}  (hall-sim ctl --port {self.control.port} help)")
        return "\n".join(out)

    # ---- commands (the control socket and `hall-sim ctl` use these) --------------------------
    def command(self, cmd: str, *args: str) -> tuple[Any, str]:
        """Run one control command; returns (JSON-able result, text for a person).
        Raises :class:`CommandError` with a message saying what was expected."""
        handler = COMMANDS.get(cmd)
        if handler is None:
            raise CommandError(f"unknown command {cmd!r}; commands: {', '.join(COMMANDS)}")
        func, usage, _ = handler
        try:
            return func(self, *args)
        except TypeError as exc:
            if "positional argument" in str(exc):
                raise CommandError(f"usage: {cmd} {usage}") from None
            raise

    def _sim(self, name: str, *kinds: str) -> tuple[SimSpec, Any]:
        spec = self.specs.get(name)
        if spec is None:
            raise CommandError(f"no simulator {name!r}; configured: {', '.join(self.specs)}")
        if kinds and spec.kind not in kinds:
            raise CommandError(f"{name} is a {spec.kind} simulator; this command needs "
                               f"{' or '.join(kinds)}")
        return spec, self.devices[name]


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


# ---- control commands -----------------------------------------------------------------------------
def _on_off(value: str) -> bool:
    v = value.lower()
    if v in ("on", "true", "1", "yes"):
        return True
    if v in ("off", "false", "0", "no"):
        return False
    raise CommandError(f"expected on or off, got {value!r}")


def _int(value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise CommandError(f"{what} must be a number, got {value!r}") from None


def _bus_device(hall: SimulatorHall, name: str, address: str, getter: str) -> tuple[Any, Any]:
    _, bus = hall._sim(name, "hallbus")
    addr = _int(address, "address")
    try:
        return bus, getattr(bus, getter)(addr)
    except KeyError:
        have = ", ".join(f"{a}:{type(d).__name__}" for a, d in sorted(bus.devices.items()))
        raise CommandError(f"{name}: no {getter} at address {addr}; devices: {have}") from None


def cmd_list(hall: SimulatorHall) -> tuple[Any, str]:
    return hall.endpoints_doc(), hall.table()


def cmd_place_card(hall: SimulatorHall, name: str, who: str = "0") -> tuple[Any, str]:
    spec, dev = hall._sim(name, "sam", "pcsc_card")
    if spec.kind == "pcsc_card":
        try:
            dev.insert(timeout=2.0)
        except ConnectionError as exc:
            raise CommandError(str(exc)) from None
        hall.endpoints[name].status = "running"
        return {"inserted": True}, f"{name}: card {dev.card.holder.name} inserted into vpcd"
    which: int | str = int(who) if who.isdigit() and len(who) < 18 else who
    try:
        card = dev.place_card(which)
    except (KeyError, IndexError):
        keys = ", ".join(f"{k}={c.name}" for k, c in dev.citizens)
        raise CommandError(f"{name}: no fake citizen {who!r}; citizens: {keys}") from None
    return {"name": card.name, "id_number": card.id_number}, f"{name}: card of {card.name} placed"


def cmd_remove_card(hall: SimulatorHall, name: str) -> tuple[Any, str]:
    spec, dev = hall._sim(name, "sam", "pcsc_card")
    if spec.kind == "pcsc_card":
        dev.remove()
    else:
        dev.remove_card()
    return {"removed": True}, f"{name}: card removed"


def cmd_paper(hall: SimulatorHall, name: str, state: str) -> tuple[Any, str]:
    from .escpos_sim import PaperState

    _, dev = hall._sim(name, "escpos")
    try:
        dev.paper = PaperState(state)
    except ValueError:
        raise CommandError(f"paper state must be one of {', '.join(p.value for p in PaperState)}, "
                           f"got {state!r}") from None
    dev.paper_status_override = None
    return {"paper": dev.paper.value}, f"{name}: paper {dev.paper.value}"


def cmd_offline(hall: SimulatorHall, name: str, on: str, address: str | None = None) -> tuple[Any, str]:
    spec, dev = hall._sim(name)
    flag = _on_off(on)
    if address is not None:
        if spec.kind != "hallbus":
            raise CommandError(f"{name}: an address only makes sense on a hallbus simulator")
        addr = _int(address, "address")
        if addr not in dev.devices:
            raise CommandError(f"{name}: no device at address {addr}; addresses: {sorted(dev.devices)}")
        dev.set_silent(addr, flag)
        return {"address": addr, "offline": flag}, f"{name}.{addr}: {'offline' if flag else 'online'}"
    target = dev.card if spec.kind == "pcsc_card" else dev
    target.silent = flag
    return {"offline": flag}, f"{name}: {'offline (answers nothing)' if flag else 'online'}"


def cmd_delay(hall: SimulatorHall, name: str, seconds: str) -> tuple[Any, str]:
    spec, dev = hall._sim(name)
    try:
        value = float(seconds)
    except ValueError:
        raise CommandError(f"delay must be seconds, got {seconds!r}") from None
    if not 0 <= value <= 60:
        raise CommandError(f"delay must be 0..60 seconds, got {value}")
    (dev.card if spec.kind == "pcsc_card" else dev).delay = value
    return {"delay": value}, f"{name}: answers after {value:g} s"


SAM_FAULTS = ("read_failure", "bad_checksum", "truncate", "corrupt_id_check", "foreign_card")


def cmd_fault(hall: SimulatorHall, name: str, fault: str, on: str = "on", count: str = "1") -> tuple[Any, str]:
    spec, dev = hall._sim(name, "sam", "hallbus")
    if spec.kind == "sam":
        if fault not in SAM_FAULTS:
            raise CommandError(f"sam faults: {', '.join(SAM_FAULTS)}; got {fault!r}")
        setattr(dev, fault, _on_off(on))
        return {fault: getattr(dev, fault)}, f"{name}: {fault} {'on' if getattr(dev, fault) else 'off'}"
    # hallbus: fault drop|corrupt ADDRESS [COUNT]
    if fault not in ("drop", "corrupt"):
        raise CommandError("hallbus faults: drop ADDRESS [COUNT], corrupt ADDRESS [COUNT]")
    addr, n = _int(on, "address"), _int(count, "count")
    if addr not in dev.devices:
        raise CommandError(f"{name}: no device at address {addr}; addresses: {sorted(dev.devices)}")
    (dev.drop_next if fault == "drop" else dev.corrupt_next)(addr, n)
    return {fault: n, "address": addr}, f"{name}.{addr}: next {n} {'requests lost' if fault == 'drop' else 'replies corrupted'}"


def cmd_drop(hall: SimulatorHall, name: str) -> tuple[Any, str]:
    hall._sim(name)
    server = hall.servers.get(name)
    if server is None:
        raise CommandError(f"{name}: not served over TCP")
    server.drop_clients()
    return {"dropped": True}, f"{name}: TCP connections cut"


def cmd_press(hall: SimulatorHall, name: str, address: str, key: str, target: str | None = None) -> tuple[Any, str]:
    from device_drivers.caller_pad import CallerKey

    _, pad = _bus_device(hall, name, address, "caller")
    try:
        k = CallerKey(key.lower())
    except ValueError:
        raise CommandError(f"caller keys: {', '.join(k.value for k in CallerKey)}; got {key!r}") from None
    try:
        pad.press(k, target)
    except ValueError as exc:
        raise CommandError(f"{name}.{pad.address}: {exc}") from None
    return {"address": pad.address, "key": k.value, "target": target}, \
        f"{name}.{pad.address}: {k.value}{' ' + target if target else ''} pressed (sent at the next poll)"


def _grade(value: str) -> Any:
    from device_drivers.eval_pad import Grade

    v = value.strip().lower()
    if v.isdigit() and 1 <= int(v) <= 5:
        return Grade(int(v))
    aliases = {"basic_satisfied": Grade.BASIC, "basically_satisfied": Grade.BASIC}
    if v in aliases:
        return aliases[v]
    for g in Grade:
        if v in (g.name.lower(), g.label):
            return g
    raise CommandError("grade must be one of " + ", ".join(f"{g.name.lower()} ({g.label}, {g.value})"
                                                           for g in Grade) + f"; or cancel; got {value!r}")


def cmd_grade(hall: SimulatorHall, name: str, address: str, grade: str) -> tuple[Any, str]:
    _, pad = _bus_device(hall, name, address, "evalpad")
    try:
        if grade.lower() == "cancel":
            pad.press_cancel()
            return {"address": pad.address, "cancelled": True}, f"{name}.{pad.address}: 取消 pressed"
        g = _grade(grade)
        pad.press_grade(g)
    except RuntimeError as exc:
        raise CommandError(str(exc)) from None
    return {"address": pad.address, "grade": g.name.lower(), "score": g.value}, \
        f"{name}.{pad.address}: {g.label} pressed"


def _bus_state(dev: Any) -> dict[str, Any]:
    from .hallbus_sim import SimCallerPad, SimEvalPad, SimLedBoard

    d: dict[str, Any] = {"address": dev.address, "type": dev.device_type.name.lower()}
    if isinstance(dev, SimLedBoard):
        d["lines"] = [{"text": l.text, "colour": l.colour.name.lower(), "mode": l.mode.name.lower()}
                      for l in dev.lines]
        d["text"] = dev.describe()
        d["brightness"] = dev.brightness
    elif isinstance(dev, SimCallerPad):
        d["display"] = {"ticket": dev.display.ticket, "waiting": dev.display.waiting,
                        "message": dev.display.message}
        d["pending_events"] = dev.pending_events
        d["text"] = dev.render_text()
    elif isinstance(dev, SimEvalPad):
        p = dev.prompt
        d["prompt"] = None if p is None else {"ticket": p.ticket, "clerk_name": p.clerk_name,
                                              "staff_no": p.staff_no, "matter": p.matter}
        d["pending_events"] = dev.pending_events
        d["text"] = dev.render_text()
    return d


_BUS_LABEL = {"window_led": "LED屏", "composite_led": "综合屏", "caller_pad": "呼叫器", "eval_pad": "评价器"}


def cmd_show(hall: SimulatorHall, name: str, address: str | None = None) -> tuple[Any, str]:
    spec, dev = hall._sim(name)
    if spec.kind == "hallbus":
        items = sorted(dev.devices.items())
        if address is not None:
            addr = _int(address, "address")
            if addr not in dev.devices:
                raise CommandError(f"{name}: no device at address {addr}; addresses: {sorted(dev.devices)}")
            items = [(addr, dev.devices[addr])]
        states = [_bus_state(d) for _, d in items]
        lines = []
        for s in states:
            label = f"{_BUS_LABEL.get(s['type'], s['type'])} {s['address']:>3}"
            if dev._silent and s["address"] in dev._silent:
                label += " (offline)"
            text = s["text"] or "(空白 blank)"
            lines.append(f"{label}: " + text.replace("\n", " / "))
        return {"devices": states}, "\n".join(lines)
    if spec.kind == "sam":
        card = dev.card
        faults = [f for f in SAM_FAULTS if getattr(dev, f)]
        state = {"card": None if card is None else {"name": card.name, "id_number": card.id_number},
                 "offline": dev.silent, "delay": dev.delay, "faults": faults, "requests": len(dev.requests)}
        text = f"{name}: " + (f"card of {card.name} on the reader" if card else "no card")
        text += (" (offline)" if dev.silent else "") + (f" faults: {', '.join(faults)}" if faults else "")
        return state, text
    if spec.kind == "escpos":
        state = {"paper": dev.paper.value, "offline": dev.offline, "delay": dev.delay,
                 "printed": len(dev.printed), "paper_tickets": dev.paper_tickets}
        text = f"{name}: paper {dev.paper.value}, {len(dev.printed)} slips printed" + \
            (" (offline)" if dev.offline else "")
        return state, text
    # pcsc_card
    state = {"inserted": dev.inserted, "holder": dev.card.holder.name, "offline": dev.card.silent}
    return state, f"{name}: card of {dev.card.holder.name} {'in' if dev.inserted else 'not in'} the vpcd reader"


def cmd_printed(hall: SimulatorHall, name: str, index: str = "-1") -> tuple[Any, str]:
    _, dev = hall._sim(name, "escpos")
    if index == "all":
        tickets = list(dev.printed)
        return ({"count": len(tickets), "tickets": [t.text for t in tickets]},
                "\n\n".join(f"--- {i + 1} ---\n{t.text}" for i, t in enumerate(tickets)) or f"{name}: nothing printed")
    i = _int(index, "index")
    tickets = list(dev.printed)
    if not tickets:
        raise CommandError(f"{name}: nothing printed yet")
    try:
        ticket = tickets[i]
    except IndexError:
        raise CommandError(f"{name}: {len(tickets)} slips printed; no slip {i}") from None
    return {"count": len(tickets), "text": ticket.text, "qr": ticket.qr_payloads}, ticket.text


def cmd_png(hall: SimulatorHall, name: str, path: str, address: str | None = None) -> tuple[Any, str]:
    spec, dev = hall._sim(name, "escpos", "hallbus")
    if spec.kind == "escpos":
        if not dev.printed:
            raise CommandError(f"{name}: nothing printed yet")
        out = dev.save_png(path)
    else:
        if address is None:
            raise CommandError("usage: png BUS PATH ADDRESS (an LED board's address)")
        _, board = _bus_device(hall, name, address, "led")
        board.render_png(path)
        out = Path(path)
    return {"path": str(out)}, f"saved {out}"


def cmd_help(hall: SimulatorHall) -> tuple[Any, str]:
    text = "\n".join(f"  {cmd} {usage}".rstrip() + f"\n      {doc}" for cmd, (_, usage, doc) in COMMANDS.items())
    return {"commands": list(COMMANDS)}, "commands:\n" + text


COMMANDS: dict[str, tuple[Callable[..., tuple[Any, str]], str, str]] = {
    "list": (cmd_list, "", "every simulator with its pty and TCP endpoint"),
    "show": (cmd_show, "NAME [ADDRESS]", "state: what each LED board and pad shows, the card, the paper"),
    "place-card": (cmd_place_card, "NAME [CITIZEN]", "put a fake citizen's ID card (key, ID number or index) "
                   "on a SAM reader; on a pcsc_card: insert the card into vpcd"),
    "remove-card": (cmd_remove_card, "NAME", "take the card away"),
    "paper": (cmd_paper, "NAME ok|near_end|out", "printer paper state"),
    "printed": (cmd_printed, "NAME [INDEX|all]", "text of the last (or INDEX-th) printed slip"),
    "png": (cmd_png, "NAME PATH [ADDRESS]", "save the last slip, or an LED board, as a PNG"),
    "offline": (cmd_offline, "NAME on|off [ADDRESS]", "device answers nothing (powered off); "
                "on a hall bus with ADDRESS: only that device"),
    "delay": (cmd_delay, "NAME SECONDS", "answer that much later"),
    "fault": (cmd_fault, "NAME FAULT [on|off|ADDRESS] [COUNT]",
              f"sam: {', '.join(SAM_FAULTS)}; hallbus: drop|corrupt ADDRESS [COUNT]"),
    "drop": (cmd_drop, "NAME", "cut every TCP connection (a rebooting serial device server)"),
    "press": (cmd_press, "BUS ADDRESS KEY [TARGET]", "caller pad key: call_next recall start finish no_show "
              "transfer pause resume"),
    "grade": (cmd_grade, "BUS ADDRESS GRADE", "evaluation pad: very_satisfied satisfied basic dissatisfied "
              "very_dissatisfied (or 5..1), or cancel"),
    "help": (cmd_help, "", "this list"),
}


# ---- control socket -------------------------------------------------------------------------------
class _Handler(socketserver.StreamRequestHandler):
    server: "_TCPServer"

    def handle(self) -> None:
        for raw in self.rfile:
            line = raw.strip()
            if not line:
                continue
            reply = self.server.control.execute_line(line)
            try:
                self.wfile.write(json.dumps(reply, ensure_ascii=False).encode("utf-8") + b"\n")
                self.wfile.flush()
            except OSError:
                return


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    control: "ControlServer"


class ControlServer:
    """JSON lines on 127.0.0.1: ``{"cmd": "press", "args": ["bus1", "101", "call_next"]}`` ->
    ``{"ok": true, "result": {...}, "text": "..."}`` or ``{"ok": false, "error": "..."}``."""

    def __init__(self, hall: SimulatorHall, host: str = "127.0.0.1", port: int = DEFAULT_CONTROL_PORT) -> None:
        self.hall = hall
        self.host = host
        self._server = _TCPServer((host, port), _Handler)
        self._server.control = self
        self.port: int = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    def start(self) -> "ControlServer":
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="hall-sim-control", daemon=True)
        self._thread.start()
        log.info("control socket on %s:%d", self.host, self.port)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def execute_line(self, line: bytes) -> dict[str, Any]:
        try:
            msg = json.loads(line)
            if not isinstance(msg, dict) or not isinstance(msg.get("cmd"), str):
                raise ValueError('expected {"cmd": "...", "args": [...]}')
            args = msg.get("args", [])
            if not isinstance(args, list):
                raise ValueError('"args" must be a list of strings')
        except ValueError as exc:
            return {"ok": False, "error": f"bad request: {exc}"}
        try:
            result, text = self.hall.command(msg["cmd"], *[str(a) for a in args])
        except CommandError as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:  # a bug in a command must not kill the control socket
            log.exception("control command %r failed", msg)
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        log.info("ctl %s %s", msg["cmd"], " ".join(str(a) for a in args))
        return {"ok": True, "result": result, "text": text}


def send_command(cmd: str, args: list[str], *, host: str = "127.0.0.1", port: int = DEFAULT_CONTROL_PORT,
                 timeout: float = 5.0) -> dict[str, Any]:
    """Client side: send one command, return the decoded reply. Raises OSError when nobody listens."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(json.dumps({"cmd": cmd, "args": args}, ensure_ascii=False).encode("utf-8") + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
    if not buf:
        raise ConnectionError(f"control socket {host}:{port} closed without answering")
    return json.loads(buf)
