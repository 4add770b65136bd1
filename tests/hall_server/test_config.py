"""The hall config file: the shipped example is valid, and each kind of mistake names its key."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hall_server.config import ConfigError, load_config, parse_config
from tests.conftest import ROOT

EXAMPLE = ROOT / "examples" / "county.toml"


def test_example_is_a_realistic_county_with_two_town_halls() -> None:
    cfg = load_config(EXAMPLE)
    county, *towns = cfg.halls
    assert len(towns) == 2
    assert len(county.queues) >= 12 and len(county.windows) >= 20
    names = {b.name for b in county.bundles}
    assert any("旅店" in n for n in names) and any("新生儿" in n for n in names)
    kinds = {w.kind for w in county.windows}
    assert any("综合" in k for k in kinds)
    assert any(w.queues == "*" for w in county.windows)
    assert any(q.next_stage for q in county.queues)
    assert {p.id for p in county.priority_classes} >= {"appointment", "elderly"}


def minimal(**hall: object) -> dict[str, object]:
    base: dict[str, object] = {"id": "h", "name": "大厅", "queues": [{"id": "a", "prefix": "A", "name": "综合"}],
                               "windows": [{"number": 1, "queues": ["a"]}]}
    base.update(hall)
    return {"halls": [base]}


@pytest.mark.parametrize("hall, expected", [
    ({"queues": [{"id": "a", "prefix": "a1", "name": "x"}]}, "halls[0].queues[0].prefix"),
    ({"timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
    ({"windows": [{"number": 1, "queues": ["zz"]}]}, "windows[0].queues: unknown queue 'zz'"),
    ({"queues": [{"id": "a", "prefix": "A", "name": "x", "daily_cap": 0}]}, "halls[0].queues[0].daily_cap"),
    ({"midnight": "later"}, "halls[0].midnight"),
    ({"queues": [{"id": "a", "prefix": "A", "name": "x", "hours": [{"start": "12:00:00", "end": "08:00:00"}]}]},
     "must be after start"),
    ({"devices": [{"id": "p", "kind": "caller"}]}, "a caller device belongs to one window"),
    ({"colour": "red"}, "halls[0].colour: Extra inputs are not permitted"),
])
def test_bad_values_name_their_key(hall: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(minimal(**hall), "hall.toml")
    assert expected in str(err.value), str(err.value)


def test_yaml_and_toml_load_the_same(tmp_path: Path) -> None:
    (tmp_path / "h.yaml").write_text(
        "halls:\n  - id: h\n    name: 大厅\n    queues: [{id: a, prefix: A, name: 综合}]\n"
        "    windows: [{number: 1, queues: '*'}]\n", encoding="utf-8")
    cfg = load_config(tmp_path / "h.yaml")
    assert cfg.halls[0].window_queues("1") == ["a"]
    (tmp_path / "bad.toml").write_text("[[halls]\nid=", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path / "bad.toml")
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(tmp_path / "missing.toml")


def test_check_config_command(tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "hall_server.cli", "-c", str(EXAMPLE), "check-config"],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "配置有效" in ok.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('[[halls]]\nid = "h"\nname = "x"\nqueues = []\nwindows = []\n', encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "hall_server.cli", "-c", str(bad), "check-config"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "halls[0].queues" in r.stderr


def test_migrations_match_the_models(tmp_path: Path) -> None:
    """A model change without a migration would break `hall db upgrade` on a real hall."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine

    from hall_server.migrations import upgrade
    from hall_server.models import Base

    url = f"sqlite:///{tmp_path}/m.db"
    upgrade(url)
    with create_engine(url).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_a_bad_public_rate_limit_names_its_key() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({**minimal(), "server": {"public_rate_limit": "lots"}}, "hall.toml")
    assert "server.public_rate_limit" in str(err.value) and "'30 per minute; 300 per day'" in str(err.value)
