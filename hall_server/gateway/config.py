"""The gateway's own configuration file (TOML), validated at start-up.

The gateway runs on the hall's PC next to the RS-485 adapters, not next to the server, so it has its
own small file: which server and hall, where its token is, which buses with which devices at which
addresses belong to which window, how boards read, and the voice. A bad value is reported with its
place, e.g. ``buses[0].devices[3].address: Input should be less than or equal to 254``.

Tokens (the gateway's, and each evaluation pad's, since only a pad may submit an evaluation) come from
``token`` / a device's ``token``, from ``tokens_file`` (lines ``<device id> <token>``, as
``hall device-token`` prints them), or for the gateway from ``$HALL_GATEWAY_TOKEN``.
"""
from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..config import ConfigError, format_errors

DeviceKind = Literal["led", "composite", "caller", "evalpad"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BusDevice(_Strict):
    id: str = Field(min_length=1, max_length=64, description="the device id in the hall config (health reports)")
    kind: DeviceKind
    address: int = Field(ge=1, le=254)
    window: str | None = None
    token: str | None = Field(default=None, description="evalpad only: its device token")

    @field_validator("window", mode="before")
    @classmethod
    def _window_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) else v

    @model_validator(mode="after")
    def _window_needed(self) -> "BusDevice":
        if self.kind == "composite" and self.window is not None:
            raise ValueError("a composite board belongs to the hall, not to a window; remove window")
        if self.kind != "composite" and self.window is None:
            raise ValueError(f"a {self.kind} belongs to one window; set window")
        return self


class Bus(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    port: str = Field(min_length=1, description="port URL: /dev/ttyUSB0, socket://host:port, hwgrep://...")
    baudrate: int = 9600
    reply_timeout: float = Field(default=0.2, gt=0)
    retries: int = Field(default=3, ge=0)
    poll_interval: float = Field(default=0.2, gt=0)
    heartbeat_interval: float = Field(default=5.0, gt=0)
    offline_retry_interval: float = Field(default=2.0, gt=0)
    log_traffic: bool = False
    devices: list[BusDevice] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> "Bus":
        seen: dict[int, str] = {}
        for d in self.devices:
            if d.address in seen:
                raise ValueError(f"address {d.address} used twice on bus {self.name} ({seen[d.address]}, {d.id})")
            seen[d.address] = d.id
        return self


class Display(_Strict):
    """What the boards and pads say. ``{number}`` and ``{window}`` may be used in the texts."""

    window_label: str = "{window}号窗口"
    idle_text: str = "欢迎光临"
    paused_text: str = "暂停服务"
    closed_text: str = "暂停服务"
    serving_text: str = "{number}号办理中"
    blink_seconds: int = Field(default=10, ge=0, le=255)
    composite_lines: int = Field(default=8, ge=1, le=32)
    composite_title: str | None = None


class GatewayConfig(_Strict):
    server: str = Field(pattern=r"^https?://", description="base URL of the hall server")
    hall: str = Field(min_length=1)
    device: str = Field(default="gateway-1", description="the gateway's device id in the hall config")
    token: str | None = None
    tokens_file: str | None = None
    state_file: str | None = Field(default=None, description="remembers what was announced across restarts")
    report_interval: float = Field(default=30.0, gt=0, description="health is re-sent this often (and on change)")
    request_timeout: float = Field(default=5.0, gt=0)
    action_retry_seconds: float = Field(default=5.0, ge=0, description="a pad key is retried this long while the server is unreachable")
    finish_outcome: Literal["instant", "promised", "returned"] = "instant"
    pause_reason: str = "暂停"
    voice: dict[str, Any] | None = Field(default=None, description="device_drivers.voice.Announcer options; none: no voice")
    display: Display = Display()
    buses: list[Bus] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_ids(self) -> "GatewayConfig":
        ids = [d.id for b in self.buses for d in b.devices]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"device id used twice: {', '.join(dup)}")
        names = [b.name for b in self.buses]
        if len(set(names)) != len(names):
            raise ValueError("two buses with the same name")
        return self

    # ---- tokens ------------------------------------------------------------------------------
    def tokens(self) -> dict[str, str]:
        """device id -> token, from tokens_file, the devices' own ``token`` and $HALL_GATEWAY_TOKEN."""
        out: dict[str, str] = {}
        if self.tokens_file:
            try:
                text = Path(self.tokens_file).read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(self.tokens_file, [f"tokens_file: cannot read: {exc.strerror}"]) from None
            for n, line in enumerate(text.splitlines(), 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                parts = line.split()
                if len(parts) != 2:
                    raise ConfigError(self.tokens_file, [f"line {n}: expected '<device id> <token>'"])
                out[parts[0]] = parts[1]
        for bus in self.buses:
            for d in bus.devices:
                if d.token:
                    out[d.id] = d.token
        if self.token:
            out[self.device] = self.token
        if os.environ.get("HALL_GATEWAY_TOKEN"):
            out[self.device] = os.environ["HALL_GATEWAY_TOKEN"]
        return out

    def gateway_token(self) -> str:
        token = self.tokens().get(self.device)
        if not token:
            raise ConfigError("gateway", [
                f"no token for {self.device!r}: set token, a line '{self.device} <token>' in tokens_file, "
                f"or HALL_GATEWAY_TOKEN (issue one with: hall device-token {self.hall} {self.device})"])
        return token

    def windows(self) -> list[str]:
        """Windows with at least one device on this gateway, in configuration order."""
        out: list[str] = []
        for b in self.buses:
            for d in b.devices:
                if d.window is not None and d.window not in out:
                    out.append(d.window)
        return out


def parse_gateway_config(data: dict[str, Any], source: str = "<gateway config>") -> GatewayConfig:
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, format_errors(exc)) from None


def load_gateway_config(path: str | Path) -> GatewayConfig:
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(str(p), [f"cannot read the file: {exc.strerror}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(p), [f"not valid TOML: {exc}"]) from None
    return parse_gateway_config(data, str(p))
