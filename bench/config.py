"""The benchmark hall: six queues, 24 windows (20 of them staffed by the benchmark), 4 kiosks.

Built in code (no file) so the server process and the driver agree on it; ``enforce_hours`` is off
so the benchmark runs at any time of day.
"""
from __future__ import annotations

from typing import Any

from hall_server.config import HallConfig, parse_config

HALL = "bench"
QUEUES = [("biz", "A", "企业开办"), ("soc", "B", "社保医保"), ("tax", "C", "税务办理"),
          ("prop", "D", "不动产登记"), ("pol", "E", "公安户政"), ("gen", "F", "综合受理")]
WINDOWS = 20          # staffed windows, one clerk each
CLERKS = [f"clerk{i:02d}" for i in range(1, WINDOWS + 1)]
KIOSKS = [f"kiosk{i}" for i in range(1, 5)]
PASSWORD = "bench-password-1"
SECRET = b"bench-secret-key-not-for-production"


def _window_queues(n: int) -> list[str] | str:
    """Realistic preference lists: most windows serve two or three queues, a few serve all."""
    ids = [q[0] for q in QUEUES]
    if n % 7 == 0:
        return "*"
    first = (n - 1) % len(ids)
    return [ids[first], ids[(first + 1) % len(ids)], ids[(first + 3) % len(ids)]][: 2 + n % 2]


def bench_config(database_url: str) -> HallConfig:
    data: dict[str, Any] = {
        "server": {"database_url": database_url, "secret_file": "var/bench/secret.key"},
        "halls": [{
            "id": HALL, "name": "基准测试政务服务中心", "enforce_hours": False,
            "queues": [{"id": i, "prefix": p, "name": n} for i, p, n in QUEUES],
            "windows": [{"number": n, "queues": _window_queues(n),
                         **({"order": "longest_wait"} if n % 5 == 0 else {})} for n in range(1, 25)],
            "priority_classes": [{"id": "elderly", "name": "老年人优先"}, {"id": "appointment", "name": "预约"}],
            "devices": [{"id": k, "kind": "kiosk"} for k in KIOSKS],
        }],
        "users": [{"username": c, "name": f"窗口人员{i + 1}", "role": "clerk"} for i, c in enumerate(CLERKS)],
    }
    return parse_config(data, "<bench>")
