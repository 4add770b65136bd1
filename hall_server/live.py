"""Live events over Socket.IO.

Rooms: ``hall:<id>`` (public: numbers only), ``hall:<id>:window:<no>`` (a window's console, pad
and board), ``hall:<id>:role:manager``. A client connects with ``auth = {"hall": id, "window": no,
"token": bearer}`` (token optional for the public room) and is sent a ``snapshot`` before any other
event, on every connect and reconnect, followed by any ticket event that committed while the snapshot
was being sent (events carry ``seq``; a client drops a seq it has already applied).

Events are published in the order their transactions committed in this process (``PublishOrder``),
so call events reach clients in order. Without a message queue the request that committed emits them
itself; for a call it then yields once (``offload.pause``), so the websocket writers put the frames on
the wire before the request's own HTTP answer: a board shows a call no later than the clerk's console
does. (Other events, such as a kiosk's issued tickets, go when the request next waits.)
With a Redis message queue configured, every process's clients receive every process's events, and
emitting waits on the network: one dispatcher thread per process does it, never a request.
Publishing never touches the database: ``queues`` payloads, which need a query, are built by a
separate thread and coalesced to at most one per hall every ``QUEUES_INTERVAL`` seconds, so a slow
query or a busy connection pool delays the waiting figures, never a call.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

from flask import request
from flask_socketio import SocketIO, join_room
from socketio import PubSubManager
from socketio.packet import Packet

from .auth import MANAGE, OPERATE, READ, Auth
from .errors import HallError
from .events import Outbox
from .offload import pause
from .service import QueueService

log = logging.getLogger(__name__)
QUEUES_INTERVAL = 0.5
QUEUES_RETRIES = 3
_CALLS = ("called", "recalled")  # the events a citizen waits for on a board and a loudspeaker


class JsonPacket(Packet):
    """Socket.IO packets of JSON only. Every event this server emits is a pydantic model dumped in
    JSON mode, never bytes, but python-socketio walks each outgoing payload, value by value, looking
    for bytes to send as binary attachments: 2 % of the server's CPU samples under the benchmark's
    paced calls. Bytes emitted by mistake fail in ``json.dumps`` with a TypeError instead. Packets
    received are decoded as before (attachments included)."""

    @classmethod
    def data_is_binary(cls, data: Any) -> bool:
        return False


class Publisher:
    def __init__(self, socketio: SocketIO, service: QueueService) -> None:
        self.socketio = socketio
        self.service = service
        # Without a message queue emitting only hands frames to this process's websocket writers: the
        # committing request does it (no queue). With one, a dispatcher thread takes the queue.
        inline = not isinstance(socketio.server.manager, PubSubManager)
        self._q: queue.Queue[Outbox | None] | None = None if inline else queue.Queue()
        self._dirty: set[str] = set()
        self._dirty_changed = threading.Condition()
        self._last_queues: dict[str, float] = {}
        self._published = 0  # outboxes handed over after their commit: tells a query it was overtaken
        if self._q is not None:
            threading.Thread(target=self._loop, args=(self._q,), name="live-publisher", daemon=True).start()
        self._queues_thread = threading.Thread(target=self._queues_loop, name="live-queues", daemon=True)
        self._queues_thread.start()

    def __call__(self, outbox: Outbox) -> None:
        """Called after the commit, in commit order (``PublishOrder``), by the request that committed."""
        if not (outbox.items or outbox.touched_halls):
            return
        self._published += 1
        if self._q is not None:
            self._q.put(outbox)
            return
        self._emit(outbox)
        if any(name == "ticket" and payload.type in _CALLS for name, _h, payload, _r in outbox.items):
            pause()  # the writers send a call's frames now, before this request's answer

    def _loop(self, q: queue.Queue[Outbox | None]) -> None:
        while not self.service.db.closed:
            try:
                item = q.get(timeout=QUEUES_INTERVAL)
            except queue.Empty:
                continue
            if item is not None:
                self._emit(item)

    def _emit(self, item: Outbox) -> None:
        for name, _hall, payload, rooms in item.items:
            try:
                self.socketio.emit(name, payload.model_dump(mode="json"), to=[*rooms, f"hall:{_hall}:role:manager"])
            except Exception:  # committed already: a broken message queue or payload must not fail the request
                log.exception("could not publish %s", name)
        if item.touched_halls:
            with self._dirty_changed:
                self._dirty |= item.touched_halls
                self._dirty_changed.notify()

    def _queues_loop(self) -> None:
        while not self.service.db.closed:
            with self._dirty_changed:
                now = time.monotonic()
                due = [h for h in self._dirty if now - self._last_queues.get(h, 0.0) >= QUEUES_INTERVAL]
                if not due:
                    # nothing changed, or changed halls were published less than QUEUES_INTERVAL ago
                    turns = [self._last_queues.get(h, 0.0) + QUEUES_INTERVAL - now for h in self._dirty]
                    self._dirty_changed.wait(min(turns, default=QUEUES_INTERVAL))
                    continue
                self._dirty.difference_update(due)
            for hall in due:
                self._last_queues[hall] = now
                try:
                    # A commit during the query may be missing from it while its events go out before
                    # this payload: query again (a few times; under a steady stream, publish anyway:
                    # those commits marked the hall dirty, so a fresh payload follows).
                    for _ in range(QUEUES_RETRIES):
                        before = self._published
                        payload = self.service.queues_payload(hall)
                        if self._published == before:
                            break
                    self.socketio.emit("queues", payload.model_dump(mode="json"), to=f"hall:{hall}")
                except Exception:
                    log.exception("could not publish queue snapshot of %s", hall)


def register_socket_handlers(socketio: SocketIO, service: QueueService, auth: Auth) -> None:
    @socketio.on("connect")
    def on_connect(data: dict[str, Any] | None = None) -> bool | None:
        data = data or {}
        hall = str(data.get("hall") or request.args.get("hall") or "")
        try:
            service.hall(hall)
        except HallError:
            log.info("socket refused: unknown hall %r", hall)
            return False
        rooms = [f"hall:{hall}"]
        token = data.get("token")
        window = data.get("window")
        if token:
            try:
                p = auth.principal(str(token))
                p.require(READ, hall)
                if window is not None:
                    p.require(OPERATE, hall, str(window))
                    rooms.append(f"hall:{hall}:window:{window}")
                if p.can(MANAGE):
                    rooms.append(f"hall:{hall}:role:manager")
            except HallError as exc:
                log.info("socket refused: %s", exc.message)
                return False
        elif window is not None:
            return False  # a window's room is for its clerk, pad and board only
        # The snapshot goes straight to this client (not through the message queue), then the client
        # joins its rooms, then it is sent whatever committed after the snapshot was read: every event
        # with seq > snapshot.last_seq arrives at least once; clients drop seqs they have seen.
        snap = service.snapshot(hall)
        socketio.emit("snapshot", snap.model_dump(mode="json"), to=request.sid, ignore_queue=True)
        for room in rooms:
            join_room(room)
        for ev in service.events_since(hall, snap.last_seq):
            socketio.emit("ticket", ev.model_dump(mode="json"), to=request.sid, ignore_queue=True)
        return None
