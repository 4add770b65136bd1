"""Who may do what. Users (clerk / manager / admin) sign in with a password hashed by Argon2id;
devices carry a per-device token scoped to what that kind of device does. Only SHA-256 digests of
tokens are stored: a token is 256 random bits, so a slow KDF adds nothing there."""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
import threading
import time
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import bindparam, select, update

from . import models as m
from .config import HallConfig
from .db import Database
from .errors import Forbidden, NotFound, Unauthorized
from .offload import off_the_loop

log = logging.getLogger(__name__)
_hasher = PasswordHasher()

READ = "hall:read"
ISSUE = "tickets:issue"
OPERATE = "window:operate"
REACTIVATE = "tickets:reactivate"
CANCEL = "tickets:cancel"
MANAGE = "hall:manage"
EVALUATE = "evaluations:submit"
DEVICE_REPORT = "devices:report"
ADMIN = "admin"

ROLE_SCOPES: dict[str, frozenset[str]] = {
    "clerk": frozenset({READ, ISSUE, OPERATE, REACTIVATE}),
    "manager": frozenset({READ, ISSUE, OPERATE, REACTIVATE, CANCEL, MANAGE}),
    "admin": frozenset({READ, ISSUE, OPERATE, REACTIVATE, CANCEL, MANAGE, ADMIN}),
}
DEVICE_SCOPES: dict[str, frozenset[str]] = {
    "kiosk": frozenset({READ, ISSUE, DEVICE_REPORT}),
    "caller": frozenset({READ, OPERATE}),
    "evalpad": frozenset({EVALUATE}),
    "screen": frozenset({READ}),
    "gateway": frozenset({READ, OPERATE, DEVICE_REPORT}),
    "led": frozenset(),
    "printer": frozenset(),
    "reader": frozenset(),
}
SCOPE_LABELS = {
    READ: "查看大厅", ISSUE: "取号", OPERATE: "窗口操作", REACTIVATE: "过号重排", CANCEL: "取消票号",
    MANAGE: "大厅管理", EVALUATE: "提交评价", DEVICE_REPORT: "上报设备状态", ADMIN: "系统管理",
}


@dataclass(frozen=True)
class Principal:
    kind: str  # "user" or "device"
    name: str  # username or device id
    role: str  # clerk / manager / admin, or the device kind
    scopes: frozenset[str]
    halls: tuple[str, ...] | None  # None: every hall
    window: str | None = None  # a device bound to one window
    must_change_password: bool = False

    def can(self, scope: str) -> bool:
        return scope in self.scopes

    def require(self, scope: str, hall: str | None = None, window: str | None = None) -> None:
        if self.must_change_password:
            raise Forbidden("请先修改初始密码 (change the one-time password first)", code="password_change_required")
        if scope not in self.scopes:
            raise Forbidden(f"无权{SCOPE_LABELS.get(scope, scope)} ({self.kind} {self.name!r} lacks {scope})")
        if hall is not None and self.halls is not None and hall not in self.halls:
            raise Forbidden(f"无权访问大厅 {hall!r} ({self.name!r} is not assigned to this hall)")
        if window is not None and self.window is not None and window != self.window:
            raise Forbidden(f"该设备只属于{self.window}号窗口 (device bound to window {self.window})")

    @property
    def clerk(self) -> str | None:
        """The username a window action must match: clerks act only at their own window."""
        return self.name if self.kind == "user" and self.role == "clerk" else None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str) -> str:
    return off_the_loop(_hasher.hash, password)


def new_password() -> str:
    return secrets.token_urlsafe(12)


class Auth:
    def __init__(self, config: HallConfig, db: Database, clock=None) -> None:  # type: ignore[no-untyped-def]
        self.config = config
        self.db = db
        self.clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        # token digest -> (principal, monotonic expiry): saves a database read on every request.
        # Revocations in this process clear it at once; other processes see them within CACHE_SECONDS.
        self._cache: dict[str, tuple[Principal, float]] = {}
        self._cache_lock = threading.Lock()

    CACHE_SECONDS = 5.0

    def _forget(self) -> None:
        with self._cache_lock:
            self._cache.clear()

    # ---- users -------------------------------------------------------------------------------
    def sync_users(self) -> str | None:
        """Create configured users (without a password) and, on first run, an admin with a one-time
        password, which is returned so the caller can print it once."""
        with self.db.write() as s:
            for u in self.config.users:
                row = s.get(m.User, u.username)
                if row is None:
                    s.add(m.User(username=u.username, name=u.name, staff_no=u.staff_no, role=u.role,
                                 halls=u.halls, password_hash=None, must_change_password=True))
                else:
                    row.name, row.staff_no, row.role, row.halls = u.name, u.staff_no, u.role, u.halls
            has_admin = s.scalar(select(m.User).where(m.User.role == "admin", m.User.password_hash.is_not(None)))
            if has_admin is None:
                password = new_password()
                admin = s.get(m.User, "admin")
                if admin is None:
                    admin = m.User(username="admin", name="系统管理员", role="admin", halls="*")
                    s.add(admin)
                admin.password_hash, admin.must_change_password = hash_password(password), True
                return password
        return None

    def set_password(self, username: str, password: str | None = None, *, one_time: bool = True) -> str:
        password = password or new_password()
        if len(password) < 8:
            raise ValueError("密码至少8位 (password must have at least 8 characters)")
        with self.db.write() as s:
            u = s.get(m.User, username)
            if u is None:
                raise NotFound(f"没有用户 {username!r} (unknown user)", code="unknown_user")
            u.password_hash, u.must_change_password = hash_password(password), one_time
            s.execute(update(m.AuthToken).where(m.AuthToken.username == username).values(revoked=True))
        self._forget()
        return password

    def login(self, username: str, password: str) -> tuple[str, m.User]:
        # the hash is checked outside any transaction (it takes tens of milliseconds: SQLite's one
        # writer would wait for it) and off the gevent loop (every request would wait for it)
        with self.db.read() as s:
            u = s.get(m.User, username)
            stored = u.password_hash if u is not None and u.active else None
        ok = False
        if stored:
            try:
                ok = off_the_loop(_hasher.verify, stored, password)
            except (VerificationError, InvalidHashError):
                ok = False
        if not ok:
            log.info("failed sign-in for %r", username)
            raise Unauthorized("用户名或密码错误 (wrong username or password)", code="bad_credentials")
        rehashed = hash_password(password) if _hasher.check_needs_rehash(stored) else None
        with self.db.write() as s:
            u = s.get(m.User, username)
            if u is None or not u.active or u.password_hash != stored:  # changed while the hash was checked
                log.info("sign-in for %r raced a password change", username)
                raise Unauthorized("用户名或密码错误 (wrong username or password)", code="bad_credentials")
            if rehashed is not None:
                u.password_hash = rehashed
            token = secrets.token_urlsafe(32)
            now = self.clock()
            s.add(m.AuthToken(token_hash=_digest(token), username=username, created_at=now,
                              expires_at=now + dt.timedelta(hours=self.config.server.token_hours)))
            s.expunge(u)
            return token, u

    def change_password(self, principal: Principal, old: str, new: str) -> None:
        if principal.kind != "user":
            raise Forbidden("设备没有密码 (devices have no password)")
        if len(new) < 8:
            raise Unauthorized("新密码至少8位 (new password must have at least 8 characters)", code="weak_password")
        self.login(principal.name, old)
        self.set_password(principal.name, new, one_time=False)

    def logout(self, token: str) -> None:
        with self.db.write() as s:
            s.execute(update(m.AuthToken).where(m.AuthToken.token_hash == _digest(token)).values(revoked=True))
        self._forget()

    # ---- devices -----------------------------------------------------------------------------
    def device_token(self, hall_id: str, device_id: str) -> str:
        """Issue a new token for a configured device; its earlier tokens are revoked."""
        hall = self.config.hall(hall_id)
        device = hall.device(device_id)
        if not DEVICE_SCOPES[device.kind]:
            raise ValueError(f"device kind {device.kind!r} does not talk to the server; it needs no token")
        token = secrets.token_urlsafe(32)
        with self.db.write() as s:
            s.execute(update(m.AuthToken).where(m.AuthToken.hall_id == hall_id, m.AuthToken.device_id == device_id)
                      .values(revoked=True))
            s.add(m.AuthToken(token_hash=_digest(token), hall_id=hall_id, device_id=device_id, created_at=self.clock()))
        self._forget()
        return token

    # ---- checking ----------------------------------------------------------------------------
    def principal(self, token: str | None) -> Principal:
        if not token:
            raise Unauthorized("请先登录 (missing bearer token)", code="unauthenticated")
        digest = _digest(token)
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        p = self._load_principal(token)
        with self._cache_lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (p, time.monotonic() + self.CACHE_SECONDS)
        return p

    # the token and its user in one statement, read as plain rows (no ORM objects): every request whose
    # token left the cache pays this, so it is built once
    _T, _U = m.AuthToken.__table__, m.User.__table__
    _LOAD = (select(_T.c.revoked, _T.c.expires_at, _T.c.hall_id, _T.c.device_id, _T.c.username,
                    _U.c.active, _U.c.role, _U.c.halls, _U.c.must_change_password)
             .select_from(_T.outerjoin(_U, _U.c.username == _T.c.username))
             .where(_T.c.token_hash == bindparam("digest")))

    def _load_principal(self, token: str) -> Principal:
        with self.db.read() as s:
            row = s.connection().execute(self._LOAD, {"digest": _digest(token)}).one_or_none()
        now = self.clock()
        if row is None or row.revoked or (row.expires_at is not None and row.expires_at < now):
            raise Unauthorized("登录已失效，请重新登录 (invalid or expired token)", code="bad_token")
        if row.device_id is not None:
            assert row.hall_id is not None
            try:
                device = self.config.hall(row.hall_id).device(row.device_id)
            except KeyError:
                raise Unauthorized("设备已不在配置中 (device no longer configured)", code="bad_token") from None
            return Principal("device", device.id, device.kind, DEVICE_SCOPES[device.kind], (row.hall_id,),
                             window=device.window)
        if row.role is None or not row.active:  # no such user any more, or disabled
            raise Unauthorized("账号已停用 (account disabled)", code="bad_token")
        halls = None if row.halls == "*" else tuple(row.halls)
        return Principal("user", row.username, row.role, ROLE_SCOPES[row.role], halls,
                         must_change_password=row.must_change_password)
