"""kiosk_client: the self-service kiosk (自助取号机) process.

It runs on the kiosk PC, owns the ID card reader (SAM over a serial port URL, or PC/SC for the 社保卡)
and the ESC/POS ticket printer through :mod:`device_drivers`, serves the touch UI to the kiosk's
full-screen browser on localhost, and talks to the hall server with its device token.

Choices, and why:

- **Printing fails -> the ticket is voided, not reprinted later.** See :mod:`kiosk_client.kiosk`:
  the citizen has been sent to the guide desk (请到导服台取号) and left; a slip printed later at an
  unattended kiosk would be taken by someone else or called to nobody, and a kept ticket would count
  against the citizen's per-person limit when the guide desk issues the replacement. While the
  printer is out the kiosk offers no tickets and reports itself ``degraded`` to the server
  (``POST /api/v1/halls/<hall>/devices/status``, parts ``{"printer": "paper_out"}``).
- **One tap, one ticket.** Each tap has an id; the server request id is ``<device>-<tap>``; retries
  (tenacity, capped backoff) and double taps reuse it. An answer lost to a network cut is voided by
  its request id once the server is back, unless the citizen retried the tap meanwhile.
- **Spoken prompts** in the large-text (长辈模式) mode use the kiosk browser's ``speechSynthesis``
  (zh-CN): no audio files or server round trips, and it works while the server is unreachable.
- **Search** by name or pinyin initials: the server's catalogue carries initials and full pinyin
  (pypinyin) for every matter and bundle; the kiosk filters locally.

Start it with ``hall-kiosk`` / ``python -m kiosk_client`` (see :mod:`kiosk_client.app`).
"""
