"""The hall device gateway (`hall gateway gateway.toml`): a process of its own.

It owns the hall's serial buses (window LED boards, the composite board, caller pads, evaluation pads)
and the voice announcer, and talks to the hall server only as a client: Socket.IO for what happens in
the hall (snapshot first, then ticket / window / queues events), REST with its device token for what
the pads do, and a device-status report for the health of every device.

Why a separate process, not a thread of the server:

* **One master per bus.** An RS-485 bus allows exactly one host. The server runs as several
  processes behind a load balancer (and restarts for upgrades); the gateway is the single process
  that opens each port.
* **Where the wires are.** The RS-485 adapters and the amplifier's line-in are on a PC in the hall,
  usually not the server's machine (a county server serves many town halls). The gateway needs only
  the network to reach the server, like a kiosk.
* **Fault isolation.** A server restart, deploy or database hiccup does not blank the boards: they
  keep the last content and the gateway resynchronises from the next snapshot. A hung serial
  adapter or a crashing speech engine does not take the API down.
* **One speech engine per process.** pyttsx3/espeak-ng keeps one engine per process and is not
  thread-safe; a dedicated process has one render thread and one playback queue for the whole hall,
  so announcements never overlap and are never reordered, whichever server process committed the call.
* **Least privilege.** It holds a device token (scopes hall:read, window:operate, devices:report),
  and each evaluation pad's own token, never a database URL or the personal-data key.

Modules: :mod:`.config` (its TOML file), :mod:`.state` (pure: events in, what to show and announce
out), :mod:`.link` (Socket.IO and REST), :mod:`.core` (:class:`Gateway`: buses, boards, pads, voice,
health), :mod:`.run` (the command).
"""
from __future__ import annotations

from .config import GatewayConfig, load_gateway_config, parse_gateway_config
from .core import Gateway

__all__ = ["Gateway", "GatewayConfig", "load_gateway_config", "parse_gateway_config"]
