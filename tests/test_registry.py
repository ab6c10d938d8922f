"""Registry: integer versions, complete or absent; champion moved atomically by the guard."""

from __future__ import annotations

import json
import os

import pytest

from tasks.core.version_files import Metrics
from tasks.registry.promotion import promotion_decision
from tasks.registry.registry import list_versions, publish_version, read_champion, write_champion


def _fill(tmp, version):
    (tmp / "model.keras").write_text(f"model {version}")


def test_versions_count_up_and_never_overwrite(tmp_path):
    assert [publish_version(tmp_path, "MSFT", _fill) for _ in range(3)] == [1, 2, 3]
    assert list_versions(tmp_path, "MSFT") == [1, 2, 3]
    assert (tmp_path / "MSFT" / "2" / "model.keras").read_text() == "model 2"


def test_failed_fill_leaves_no_directory(tmp_path):
    publish_version(tmp_path, "MSFT", _fill)

    def boom(tmp, version):
        (tmp / "half").write_text("x")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        publish_version(tmp_path, "MSFT", boom)
    assert sorted(p.name for p in (tmp_path / "MSFT").iterdir()) == ["1"]
    assert publish_version(tmp_path, "MSFT", _fill) == 2


def test_leftover_temp_dirs_are_ignored(tmp_path):
    (tmp_path / "MSFT" / ".tmp-dead").mkdir(parents=True)
    assert list_versions(tmp_path, "MSFT") == []
    assert publish_version(tmp_path, "MSFT", _fill) == 1


def test_champion_is_replaced_whole(tmp_path):
    (tmp_path / "MSFT").mkdir()
    write_champion(tmp_path, "MSFT", {"version": 1})
    write_champion(tmp_path, "MSFT", {"version": 2})
    assert read_champion(tmp_path, "MSFT") == {"version": 2}
    assert [p.name for p in (tmp_path / "MSFT").iterdir()] == ["champion.json"]
    assert json.loads((tmp_path / "MSFT" / "champion.json").read_text())["version"] == 2


@pytest.mark.parametrize(("rmse", "champion_rmse", "promoted", "why"), [
    (1.1, None, False, "naive"),
    (0.9, None, True, "no champion"),
    (1.0, None, True, "no champion"),  # ties with naive are allowed (a gated version)
    (0.9, 0.8, False, "champion version 3"),
    (0.7, 0.8, True, "champion version 3"),
])
def test_promotion_guard(rmse, champion_rmse, promoted, why):
    metrics = Metrics(rmse=rmse, naive_rmse=1.0, rmse_vs_naive=rmse)
    champion = {"version": 3} if champion_rmse is not None else None
    decided, reason = promotion_decision(metrics, champion, champion_rmse)
    assert decided is promoted and why in reason


def test_lock_holder_cleans_temp_entries_left_by_a_dead_holder(tmp_path):
    from tasks.registry.registry import symbol_lock

    dead = tmp_path / "MSFT" / ".tmp-dead"
    dead.mkdir(parents=True)
    (dead / "model.keras").write_text("half")
    (tmp_path / "MSFT" / ".champion-dead.json").write_text("{")
    old = 1_000_000_000
    for path in (dead, tmp_path / "MSFT" / ".champion-dead.json"):
        os.utime(path, (old, old))
    with symbol_lock(tmp_path, "MSFT"):
        fresh = tmp_path / "MSFT" / ".tmp-mine"
        fresh.mkdir()  # made by the holder itself: kept
    assert sorted(p.name for p in (tmp_path / "MSFT").iterdir()) == [".lock", ".tmp-mine"]


def test_unreadable_champion_is_a_registry_error(tmp_path):
    from tasks.core.errors import RegistryError

    (tmp_path / "MSFT").mkdir()
    (tmp_path / "MSFT" / "champion.json").write_text('{"version": ')
    with pytest.raises(RegistryError, match="champion.json is unreadable"):
        read_champion(tmp_path, "MSFT")


def test_a_network_saved_again_later_is_the_same_network(tmp_path):
    """Keras stamps every save with its second (metadata.json): the file hashes differ, the
    network's identity (what a retrained candidate is matched by) does not; new weights do."""
    import time

    from tasks.core.hashing import file_sha256
    from tasks.forecaster.network import build_lstm
    from tasks.registry.networks import network_sha256

    model = build_lstm(5, 3, units=(2,), head="hybrid")
    model.save(tmp_path / "a.keras")
    time.sleep(1.1)
    model.save(tmp_path / "b.keras")
    assert file_sha256(tmp_path / "a.keras") != file_sha256(tmp_path / "b.keras")
    assert network_sha256(tmp_path / "a.keras") == network_sha256(tmp_path / "b.keras")
    # a second build of the same network: other Python objects, so other shared_object_ids
    build_lstm(5, 3, units=(2,), head="hybrid").save(tmp_path / "again.keras")
    assert network_sha256(tmp_path / "again.keras") == network_sha256(tmp_path / "a.keras")
    model.set_weights([w + 1.0 for w in model.get_weights()])
    model.save(tmp_path / "c.keras")
    assert network_sha256(tmp_path / "c.keras") != network_sha256(tmp_path / "a.keras")
