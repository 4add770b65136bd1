"""The hall configuration file (TOML or YAML), validated with pydantic at start-up.

A bad value is reported as ``halls[0].queues[2].prefix: ...`` so an operator finds the line to fix.
"""
from __future__ import annotations

import datetime as dt
import re
import tomllib
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ID_RE = r"^[A-Za-z0-9][A-Za-z0-9_\-]*$"


class ConfigError(ValueError):
    """The configuration file is missing, unreadable or invalid. ``problems`` lists each one."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: invalid hall configuration:\n  " + "\n  ".join(problems))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Period(Strict):
    start: dt.time
    end: dt.time

    @model_validator(mode="after")
    def _order(self) -> "Period":
        if self.end <= self.start:
            raise ValueError(f"end {self.end} must be after start {self.start}")
        return self


class Zone(Strict):
    id: str = Field(pattern=ID_RE)
    name: str = Field(min_length=1)


class Stage(Strict):
    """The next stage of a ticket's journey, e.g. 出件 after 受理, served from another queue."""

    name: str = Field(min_length=1)
    queue: str


class Queue(Strict):
    id: str = Field(pattern=ID_RE)
    prefix: str = Field(pattern=r"^[A-Z]{1,2}$", description="ticket prefix, one or two capital letters")
    name: str = Field(min_length=1)
    zone: str | None = None
    stage: str = "受理"
    next_stage: Stage | None = None
    daily_cap: int | None = Field(default=None, gt=0)
    hours: list[Period] = Field(default_factory=list, description="empty: open all day")
    target_wait_minutes: float = Field(default=20, gt=0)
    default_handle_minutes: float = Field(default=8, gt=0)
    priority_ratio: int | None = Field(default=None, ge=0)
    max_wait_minutes: float | None = Field(default=None, gt=0)
    max_waiting: int | None = Field(default=None, gt=0, description="alert above this many waiting; default: the hall's alerts.max_queue_length")


class Matter(Strict):
    id: str = Field(pattern=ID_RE)
    name: str = Field(min_length=1)
    department: str = ""
    queue: str
    instant: bool = Field(default=False, description="即办件: handled on the spot")
    needs_identity: bool = False


class Bundle(Strict):
    """一件事: several matters handled together at one window, one ticket."""

    id: str = Field(pattern=ID_RE)
    name: str = Field(min_length=1)
    queue: str
    mandatory: list[str] = Field(min_length=1)
    optional: list[str] = Field(default_factory=list)
    promised_minutes: int | None = Field(default=None, gt=0)


class Window(Strict):
    number: str = Field(pattern=r"^[0-9A-Za-z\-]{1,8}$")
    name: str = ""
    zone: str | None = None
    kind: str = "综合窗口"
    queues: list[str] | Literal["*"] = Field(description='queue ids in order of preference, or "*" for all')
    order: Literal["preference", "longest_wait"] = "preference"

    @field_validator("number", mode="before")
    @classmethod
    def _number_as_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) else v


class PriorityClass(Strict):
    id: str = Field(pattern=ID_RE)
    name: str = Field(min_length=1)
    priority: bool = True


class PriorityRule(Strict):
    ratio: int = Field(default=2, ge=0, description="priority calls allowed in a row while normal tickets wait")
    max_normal_wait_minutes: float | None = Field(default=45, gt=0, description="ageing bound")


class PersonLimits(Strict):
    per_queue_per_day: int | None = Field(default=2, gt=0)
    per_hall_per_day: int | None = Field(default=6, gt=0)


class Appointments(Strict):
    early_minutes: int = Field(default=30, ge=0)
    late_minutes: int = Field(default=15, ge=0)
    late_policy: Literal["refuse", "normal"] = "normal"
    # online booking (hall_server/appointments.py)
    slot_minutes: int = Field(default=30, ge=5, le=240, description="length of a bookable time slot")
    slot_capacity: int = Field(default=4, ge=0, description="bookings per slot per queue")
    queue_capacity: dict[str, int] = Field(default_factory=dict, description="per-queue slot capacity override; 0 = no booking")
    hours: list[Period] = Field(default_factory=list, description="bookable hours; empty: the queue's hours, else 08:30-12:00 and 13:30-17:30")
    days_ahead: int = Field(default=7, ge=0, le=90, description="how many days ahead one may book")
    per_person_per_day: int = Field(default=1, ge=1, description="active bookings per ID card per day per queue")


DEVICE_KINDS = ("kiosk", "caller", "evalpad", "screen", "gateway", "led", "printer", "reader")


class Device(Strict):
    id: str = Field(pattern=ID_RE)
    kind: Literal["kiosk", "caller", "evalpad", "screen", "gateway", "led", "printer", "reader"]
    window: str | None = None
    port: str | None = None
    address: int | None = Field(default=None, ge=0, le=254)
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("window", mode="before")
    @classmethod
    def _window_as_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) else v


class AlertRules(Strict):
    """Thresholds of the manager dashboard's alerts (a queue's wait target is its target_wait_minutes)."""

    max_queue_length: int = Field(default=30, gt=0, description="alert when more tickets than this wait in a queue")
    max_pause_minutes: float = Field(default=15, gt=0, description="alert when a window stays paused longer")
    check_seconds: float = Field(default=10, gt=0, le=600, description="how often the server checks the rules")


class EvaluationRules(Strict):
    """好差评 at this hall: how long the pad waits for a grade, and the follow-up deadline of a 差评."""

    timeout_seconds: int = Field(default=30, ge=5, le=255, description="pad prompt; no answer in time = unrated")
    followup_working_days: int = Field(default=5, ge=1, le=60, description="限期整改: working days to close a case")
    followup_assignee: str | None = Field(default=None, description="manager username; default the hall's first manager")
    holidays: list[dt.date] = Field(default_factory=list, description="public holidays (not working days)")
    workdays: list[dt.date] = Field(default_factory=list, description="weekend days worked (调休上班)")


class Hall(Strict):
    id: str = Field(pattern=ID_RE)
    name: str = Field(min_length=1)
    timezone: str = "Asia/Shanghai"
    midnight: Literal["close", "carry_over"] = "close"
    enforce_hours: bool = True
    allow_call_specific: bool = True
    max_recalls: int = Field(default=3, ge=0)
    no_show_after_recalls: int = Field(default=1, ge=0)
    reactivate_behind: int = Field(default=3, ge=0)
    transfer_keeps_place: bool = True
    elderly_age: int = Field(default=60, ge=40, le=100)
    public_base_url: str = "http://127.0.0.1:5000"
    zones: list[Zone] = Field(default_factory=list)
    queues: list[Queue] = Field(min_length=1)
    matters: list[Matter] = Field(default_factory=list)
    bundles: list[Bundle] = Field(default_factory=list)
    windows: list[Window] = Field(min_length=1)
    priority_classes: list[PriorityClass] = Field(default_factory=list)
    priority: PriorityRule = PriorityRule()
    person_limits: PersonLimits = PersonLimits()
    appointments: Appointments = Appointments()
    devices: list[Device] = Field(default_factory=list)
    evaluation: EvaluationRules = EvaluationRules()
    alerts: AlertRules = AlertRules()

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}; expected an IANA name such as 'Asia/Shanghai'")
        return v

    @model_validator(mode="after")
    def _references(self) -> "Hall":
        problems: list[str] = []

        def unique(kind: str, values: list[str]) -> None:
            seen: set[str] = set()
            for v in values:
                if v in seen:
                    problems.append(f"{kind} {v!r} is defined twice")
                seen.add(v)

        unique("queue id", [q.id for q in self.queues])
        unique("queue prefix", [q.prefix for q in self.queues])
        unique("window number", [w.number for w in self.windows])
        unique("matter id", [m.id for m in self.matters])
        unique("bundle id", [b.id for b in self.bundles])
        unique("device id", [d.id for d in self.devices])
        unique("priority class id", [p.id for p in self.priority_classes])
        queues = {q.id for q in self.queues}
        zones = {z.id for z in self.zones}
        matters = {m.id for m in self.matters}
        windows = {w.number for w in self.windows}
        for i, q in enumerate(self.queues):
            if q.zone and q.zone not in zones:
                problems.append(f"queues[{i}].zone: unknown zone {q.zone!r}")
            if q.next_stage and q.next_stage.queue not in queues:
                problems.append(f"queues[{i}].next_stage.queue: unknown queue {q.next_stage.queue!r}")
        for i, m in enumerate(self.matters):
            if m.queue not in queues:
                problems.append(f"matters[{i}].queue: unknown queue {m.queue!r} (known: {', '.join(sorted(queues))})")
        for i, b in enumerate(self.bundles):
            if b.queue not in queues:
                problems.append(f"bundles[{i}].queue: unknown queue {b.queue!r}")
            for m in [*b.mandatory, *b.optional]:
                if m not in matters:
                    problems.append(f"bundles[{i}]: unknown matter {m!r}")
        for i, w in enumerate(self.windows):
            if w.zone and w.zone not in zones:
                problems.append(f"windows[{i}].zone: unknown zone {w.zone!r}")
            if w.queues != "*":
                if not w.queues:
                    problems.append(f"windows[{i}].queues: a window must serve at least one queue")
                for q in w.queues:
                    if q not in queues:
                        problems.append(f"windows[{i}].queues: unknown queue {q!r}")
        for i, d in enumerate(self.devices):
            if d.window is not None and d.window not in windows:
                problems.append(f"devices[{i}].window: unknown window {d.window!r}")
            if d.kind in ("caller", "evalpad") and d.window is None:
                problems.append(f"devices[{i}].window: a {d.kind} device belongs to one window; set window")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # ---- look-ups used everywhere ------------------------------------------------------------
    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def ticket_url(self, public_token: str) -> str:
        """A ticket's mobile page: the link in its QR code and in every issue answer."""
        return f"{self.public_base_url.rstrip('/')}/t/{public_token}"

    def queue(self, queue_id: str) -> Queue:
        for q in self.queues:
            if q.id == queue_id:
                return q
        raise KeyError(queue_id)

    def window(self, number: str) -> Window:
        for w in self.windows:
            if w.number == number:
                return w
        raise KeyError(number)

    def window_queues(self, number: str) -> list[str]:
        w = self.window(number)
        return [q.id for q in self.queues] if w.queues == "*" else list(w.queues)

    def matter(self, matter_id: str) -> Matter:
        for m in self.matters:
            if m.id == matter_id:
                return m
        raise KeyError(matter_id)

    def bundle(self, bundle_id: str) -> Bundle:
        for b in self.bundles:
            if b.id == bundle_id:
                return b
        raise KeyError(bundle_id)

    def priority_class(self, class_id: str) -> PriorityClass:
        for p in self.priority_classes:
            if p.id == class_id:
                return p
        raise KeyError(class_id)

    def device(self, device_id: str) -> Device:
        for d in self.devices:
            if d.id == device_id:
                return d
        raise KeyError(device_id)


class User(Strict):
    username: str = Field(pattern=r"^[a-z0-9_.\-]{2,32}$")
    name: str = Field(min_length=1)
    staff_no: str = ""
    role: Literal["clerk", "manager", "admin"] = "clerk"
    halls: list[str] | Literal["*"] = "*"


class Server(Strict):
    database_url: str = "sqlite:///var/hall.db"
    redis_url: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=5000, gt=0, lt=65536)
    secret_file: str = "var/secret.key"
    token_hours: float = Field(default=12, gt=0)
    retention_days: int = Field(default=365, gt=0, description="how long identity hashes are kept")
    prepared_statements: bool = Field(
        default=True, description="PostgreSQL: prepare statements on each connection with generic plans; "
        "false behind PgBouncer in transaction mode (before 1.21)")
    public_rate_limit: str = Field(
        default="30 per minute; 300 per day",
        description="per client address, on online booking and appointment look-up / cancellation")
    trusted_proxies: int = Field(
        default=0, ge=0, le=5,
        description="reverse proxies in front of the server (nginx: 1) whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed; 0 ignores those headers, which any client can forge")

    @field_validator("public_rate_limit")
    @classmethod
    def _rate_limit(cls, v: str) -> str:
        from limits import parse_many

        try:
            parse_many(v)
        except ValueError:
            raise ValueError(f"not a rate limit: {v!r}; expected e.g. '30 per minute; 300 per day'") from None
        return v


class HallConfig(Strict):
    server: Server = Server()
    halls: list[Hall] = Field(min_length=1)
    users: list[User] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> "HallConfig":
        ids = [h.id for h in self.halls]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ValueError(f"hall id defined twice: {', '.join(sorted(dup))}")
        names = [u.username for u in self.users]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"user defined twice: {', '.join(sorted(dup))}")
        for i, u in enumerate(self.users):
            if u.halls != "*":
                for h in u.halls:
                    if h not in ids:
                        raise ValueError(f"users[{i}].halls: unknown hall {h!r}")
        return self

    def hall(self, hall_id: str) -> Hall:
        for h in self.halls:
            if h.id == hall_id:
                return h
        raise KeyError(hall_id)


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.match(r"^[a-z_]+\[", str(part)) or str(part) in ("function-after", "function-before"):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def format_errors(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors():
        msg = err["msg"].removeprefix("Value error, ")
        where = _loc(tuple(p for p in err["loc"] if not str(p).startswith(("function-", "literal[", "list["))))
        got = err.get("input")
        shown = "" if isinstance(got, (dict, list)) or err["type"] == "missing" else f" (got {got!r})"
        problems.append(f"{where}: {msg}{shown}")
    return problems


def parse_config(data: dict[str, Any], source: str = "<config>") -> HallConfig:
    try:
        return HallConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, format_errors(exc)) from None


def load_config(path: str | Path) -> HallConfig:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(str(p), [f"cannot read the file: {exc.strerror}"]) from None
    try:
        if p.suffix.lower() in (".yaml", ".yml"):
            data = yaml.safe_load(raw.decode("utf-8"))
        else:
            data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(str(p), [f"not valid {'YAML' if p.suffix.lower() in ('.yaml', '.yml') else 'TOML'}: {exc}"]) from None
    if not isinstance(data, dict):
        raise ConfigError(str(p), ["the file must hold a table/mapping at the top level"])
    return parse_config(data, str(p))
