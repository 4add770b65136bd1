"""The kiosk's own settings: which hall server, which device token, which ports its reader and
printer hang on. From a TOML file (``[kiosk]`` table), command-line options and the environment
(``HALL_KIOSK_TOKEN``, ``HALL_KIOSK_SERVER``); validated at start-up, a bad value names its key."""
from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class KioskConfigError(ValueError):
    pass


class ReaderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["sam", "pcsc", "none"] = "sam"
    url: str | None = Field(default=None, description="SAM reader port URL: /dev/ttyUSB0, socket://host:port")
    baudrate: int = 115200
    options: dict[str, Any] = Field(default_factory=dict, description="passed to the reader service")

    @model_validator(mode="after")
    def _url(self) -> "ReaderConfig":
        if self.kind == "sam" and not self.url:
            raise ValueError("a SAM reader needs url (e.g. /dev/ttyUSB0 or socket://10.0.0.5:4001)")
        return self


class PrinterConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="printer port URL: /dev/ttyUSB1, socket://host:port, tcp://host:9100, usb://VID:PID")
    baudrate: int = 9600
    columns: int = Field(default=48, description="48 for 80 mm paper, 32 for 58 mm")
    poll_seconds: float = Field(default=2.0, gt=0, description="how often the paper sensor is asked")
    notes: list[str] = Field(default_factory=lambda: ["请留意大厅叫号屏和语音叫号", "过号请到导服台咨询"])


class KioskConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    server: str = Field(description="hall server base URL, e.g. http://10.0.0.2:5000")
    hall: str
    device: str = Field(description="this kiosk's device id in the hall config, e.g. kiosk-1")
    token: str | None = Field(default=None, description="device token (`hall device-token HALL DEVICE`)")
    token_file: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8700, ge=0, lt=65536, description="the touch UI is served here (0: any free port)")
    reader: ReaderConfig = ReaderConfig(kind="none")
    printer: PrinterConfig | None = None
    state_dir: str | None = Field(default=None, description="keeps unconfirmed requests across restarts")
    request_timeout: float = Field(default=5.0, gt=0)
    issue_retry_seconds: float = Field(default=8.0, ge=0, description="keep retrying an unanswered tap this long")
    abandon_seconds: float = Field(default=60.0, gt=0,
                                   description="a tap the server may have answered but no slip printed is voided after this")
    health_seconds: float = Field(default=2.0, gt=0, description="server reachability check interval")
    status_seconds: float = Field(default=30.0, gt=0, description="device-status heartbeat interval")
    card_seconds: float = Field(default=90.0, gt=0, description="forget a read ID card after this long unused")
    result_seconds: float = Field(default=20.0, gt=0, description="the ticket screen returns home after this")

    @model_validator(mode="after")
    def _token(self) -> "KioskConfig":
        if not self.token and not self.token_file:
            raise ValueError("set token, token_file or HALL_KIOSK_TOKEN (a device token: `hall device-token HALL DEVICE`)")
        return self

    def device_token(self) -> str:
        if self.token:
            return self.token
        assert self.token_file
        return Path(self.token_file).read_text(encoding="utf-8").strip()


def _problems(exc: ValidationError) -> str:
    return "; ".join(".".join(str(p) for p in e["loc"]) + ": " + e["msg"].removeprefix("Value error, ")
                     for e in exc.errors())


def make_config(data: dict[str, Any]) -> KioskConfig:
    data = dict(data)
    if not data.get("token") and not data.get("token_file") and os.environ.get("HALL_KIOSK_TOKEN"):
        data["token"] = os.environ["HALL_KIOSK_TOKEN"]
    if not data.get("server") and os.environ.get("HALL_KIOSK_SERVER"):
        data["server"] = os.environ["HALL_KIOSK_SERVER"]
    try:
        return KioskConfig.model_validate(data)
    except ValidationError as exc:
        raise KioskConfigError(f"取号机配置有误 (invalid kiosk config): {_problems(exc)}") from None


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> KioskConfig:
    try:
        doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise KioskConfigError(f"{path}: {exc}") from None
    data = dict(doc.get("kiosk", doc))
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return make_config(data)
