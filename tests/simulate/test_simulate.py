"""`hall simulate`: a small hall day runs through the real queue engine on SQLite and PostgreSQL,
every citizen is called, and the wait statistics and the estimator's error are reported."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from hall_server.simulate import Options, generate_config, simulate


def test_generated_hall_gives_windows_to_queues_by_workload() -> None:
    cfg = generate_config(301)
    hall = cfg.halls[0]
    assert len(hall.windows) == 301
    per_queue = {q.id: sum(q.id in hall.window_queues(w.number) for w in hall.windows) for q in hall.queues}
    assert all(n >= 1 for n in per_queue.values())
    assert per_queue["estate"] > per_queue["pickup"]  # 16-minute cases need more windows than 3-minute pick-ups
    assert sum(len(hall.window_queues(w.number)) > 1 for w in hall.windows) == 75  # a quarter are general windows


def test_a_small_day_runs_through_the_queue_engine(db_url: str) -> None:
    result = simulate(Options(windows=6, tickets=90, seed=3, db_url=db_url))
    assert result.tickets == 90 and result.served + result.no_shows == 90
    o = result.overall
    assert 0 <= o["wait_mean_min"] <= o["wait_p90_min"] <= o["wait_max_min"]
    assert o["mae_min"] >= 0 and 0 <= o["within_target"] <= 1
    assert sum(q["tickets"] for q in result.per_queue.values()) == 90
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:  # the engine's own rows: every ticket issued, called and closed
        kinds = dict(conn.execute(sa.text("SELECT kind, count(*) FROM ticket_events GROUP BY kind")).all())
        open_tickets = conn.execute(sa.text(
            "SELECT count(*) FROM tickets WHERE status NOT IN ('finished', 'no_show')")).scalar()
    engine.dispose()
    assert kinds["issued"] == 90 and kinds["called"] == 90
    assert kinds["finished"] == result.served and kinds.get("no_show", 0) == result.no_shows
    assert open_tickets == 0


def test_the_command_prints_the_table_and_writes_json(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "hall_server.cli", "simulate", "--windows", "4", "--tickets", "40",
                          "--json", str(tmp_path / "r.json")], capture_output=True, text=True, timeout=300,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "全厅" in out.stdout and "预估误差" in out.stdout
    assert "已取号" in out.stderr  # the progress line
    data = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert data["tickets"] == 40 and data["windows"] == 4
