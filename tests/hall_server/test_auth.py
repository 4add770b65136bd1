"""Who may do what: every role against every kind of action (401 without a valid token, 403 without
the right)."""
from __future__ import annotations

import pytest

from tests.hall_server.conftest import HallClient

# (method, url, body) -> which principals may do it
ACTIONS = {
    "issue": ("POST", "/api/v1/halls/t/tickets", {"queue": "biz", "request_id": "auth-matrix-1"}),
    "read_windows": ("GET", "/api/v1/halls/t/windows", None),
    "call_next": ("POST", "/api/v1/halls/t/windows/1/call-next", None),
    "cancel": ("POST", "/api/v1/halls/t/tickets/1/cancel", {"reason": "测试"}),
    "move_window": ("PUT", "/api/v1/halls/t/windows/1/queues", {"queues": ["soc"]}),
    "device_token": ("POST", "/api/v1/halls/t/devices/kiosk1/token", None),
}
ALLOWED = {
    "kiosk1": {"issue", "read_windows"},
    "pad1": {"read_windows", "call_next"},
    "screen1": {"read_windows"},
    "eval1": set(),
    "clerk1": {"issue", "read_windows", "call_next"},
    "boss": {"issue", "read_windows", "call_next", "cancel", "move_window"},
    "admin": {"issue", "read_windows", "call_next", "cancel", "move_window", "device_token"},
}


@pytest.fixture
def matrix_hall(hall: HallClient) -> HallClient:
    from hall_server.config import Device

    devices = [*hall.config.halls[0].devices, Device(id="screen1", kind="screen"),
               Device(id="eval1", kind="evalpad", window="1")]
    hall.config.halls[0].__dict__["devices"] = devices  # frozen model: tests add two devices
    hall.device("screen1")
    hall.device("eval1")
    hall.auth.set_password("admin", "admin-pass-123", one_time=False)
    hall.login("admin", "admin-pass-123")
    return hall


@pytest.mark.parametrize("who", sorted(ALLOWED))
def test_role_matrix(matrix_hall: HallClient, who: str) -> None:
    hall = matrix_hall
    hall.issue(queue="biz")  # ticket 1
    hall.act("1", "sign-in")
    for action, (method, url, body) in ACTIONS.items():
        r = hall.req(method, url, who, json=body)
        if action in ALLOWED[who]:
            assert r.status_code not in (401, 403), (who, action, r.get_json())
        else:
            assert r.status_code == 403, (who, action, r.status_code, r.get_json())
            assert r.get_json()["error"]["code"] == "forbidden"
        if action == "call_next" and r.status_code == 200 and r.get_json()["ticket"]:
            hall.act("1", "no-show", who="boss", expect=409)  # leave the window busy: fine for the matrix


def test_missing_wrong_and_revoked_tokens_are_401(hall: HallClient) -> None:
    r = hall.client.post("/api/v1/halls/t/tickets", json={"queue": "biz", "request_id": "no-token-1"})
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "unauthenticated"
    r = hall.client.post("/api/v1/halls/t/tickets", json={"queue": "biz", "request_id": "bad-token-1"},
                         headers={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "bad_token"
    old = hall.tokens["kiosk1"]
    hall.device("kiosk1")  # a new token revokes the old one
    r = hall.client.post("/api/v1/halls/t/tickets", json={"queue": "biz", "request_id": "old-token-1"},
                         headers={"Authorization": f"Bearer {old}"})
    assert r.status_code == 401
    hall.req("POST", "/api/v1/auth/logout", "clerk1")
    assert hall.req("GET", "/api/v1/auth/me", "clerk1").status_code == 401


def test_wrong_password_and_first_run_admin(hall: HallClient) -> None:
    assert hall.admin_password and len(hall.admin_password) >= 12
    r = hall.client.post("/api/v1/auth/login", json={"username": "admin", "password": "wrong"})
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "bad_credentials"
    r = hall.client.post("/api/v1/auth/login", json={"username": "admin", "password": hall.admin_password})
    assert r.status_code == 200 and r.get_json()["must_change_password"] is True
    token = r.get_json()["token"]
    h = {"Authorization": f"Bearer {token}"}
    # the one-time password only lets the admin change it
    r = hall.client.get("/api/v1/halls/t/windows", headers=h)
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "password_change_required"
    r = hall.client.post("/api/v1/auth/password", headers=h,
                         json={"old_password": hall.admin_password, "new_password": "a-much-better-one"})
    assert r.status_code == 200
    r = hall.client.post("/api/v1/auth/login", json={"username": "admin", "password": "a-much-better-one"})
    assert r.get_json()["must_change_password"] is False
    # a user configured without a password cannot sign in at all
    hall.auth.config  # noqa: B018
    r = hall.client.post("/api/v1/auth/login", json={"username": "nobody", "password": "x"})
    assert r.status_code == 401


def test_passwords_are_argon2_hashed(hall: HallClient) -> None:
    import sqlalchemy as sa

    with hall.db.engine.connect() as conn:
        hashes = [h for (h,) in conn.execute(sa.text("SELECT password_hash FROM users WHERE password_hash IS NOT NULL"))]
    assert hashes and all(h.startswith("$argon2id$") for h in hashes)
    assert not any("correct-horse-1" in h for h in hashes)


def test_expired_tokens_and_disabled_accounts_are_401_and_me_tells_who_is_signed_in(hall: HallClient, clock) -> None:  # type: ignore[no-untyped-def]
    import sqlalchemy as sa

    from hall_server import models as m

    hall.auth.CACHE_SECONDS = 0  # every request reads its token from the database
    me = hall.req("GET", "/api/v1/auth/me", "clerk1").get_json()
    assert (me["kind"], me["name"], me["role"], me["halls"], me["must_change_password"]) == (
        "user", "clerk1", "clerk", None, False)  # halls "*" in the database: every hall
    kiosk = hall.req("GET", "/api/v1/auth/me", "kiosk1").get_json()
    assert (kiosk["kind"], kiosk["name"], kiosk["role"], kiosk["halls"]) == ("device", "kiosk1", "kiosk", ["t"])

    with hall.db.write() as s:
        s.execute(sa.update(m.User).where(m.User.username == "clerk2").values(active=False))
    r = hall.req("GET", "/api/v1/auth/me", "clerk2")
    assert r.status_code == 401 and "账号已停用" in r.get_json()["error"]["message"]

    clock.advance(hours=hall.config.server.token_hours, seconds=1)
    r = hall.req("GET", "/api/v1/auth/me", "clerk1")
    assert r.status_code == 401 and "登录已失效" in r.get_json()["error"]["message"]
    assert hall.req("GET", "/api/v1/auth/me", "kiosk1").status_code == 200  # a device's token does not expire
