"""[cluster] in storage: the tables several instances share (migration 9, the same number in both
engines), and on PostgreSQL what makes their writing safe together. A real server, real connections."""
from __future__ import annotations

import asyncio

import pytest

from probe.config.storage import parse_storage_url
from probe.core.calendar import Calendar
from probe.core.models import ResultRecord, Status
from probe.core.units import now_ms
from probe.storage import StoreError, open_storage
from probe.storage.copy import TABLES
from tests.view.test_stats import _Monitor

CLUSTER_TABLES = ("cluster_instances", "cluster_leader", "location_results")


async def test_both_engines_have_the_cluster_tables_and_sqlite_leaves_them_empty(store, engine):
    for table in CLUSTER_TABLES:
        (count,) = (await store.fetchall(f"SELECT count(*) FROM {table}"))[0]
        assert count == (1 if table == "cluster_leader" else 0), (engine, table)
    # the leader's row starts at term 0, held by no one
    assert await store.fetchall("SELECT term, instance FROM cluster_leader") == [(0, "")]


def test_storage_copy_moves_each_locations_results():
    assert "location_results" in {t.name for t in TABLES}


# ---- PostgreSQL: several instances writing one database -------------------------------------





def cluster_store(url, tmp_path, cluster=True):
    return open_storage(parse_storage_url(url, tmp_path), Calendar("UTC"), flush_interval=0.01, cluster=cluster)


@pytest.fixture
async def database(postgres):
    return postgres.create_database()


async def opened(*stores):
    for s in stores:
        await s.open()
    return stores


async def test_instances_of_a_cluster_take_ids_from_sequences_so_that_they_never_collide(database, tmp_path):
    a, b = await opened(cluster_store(database, tmp_path), cluster_store(database, tmp_path))
    try:
        for table in ("incidents", "incident_updates"):
            ids_a = {a.allocate_id(table) for _ in range(50)}
            ids_b = {b.allocate_id(table) for _ in range(50)}
            assert len(ids_a) == len(ids_b) == 50 and not ids_a & ids_b, table
    finally:
        await a.close()
        await b.close()


async def test_two_instances_writing_the_same_new_reasons_at_once_share_one_row_per_text(database, tmp_path):
    monitor = _Monitor("web", 1)
    stores = await opened(cluster_store(database, tmp_path), cluster_store(database, tmp_path))
    try:
        for location, store in zip("ab", stores):
            await store.sync_monitors([monitor])
            for i in range(20):
                store.submit_result(ResultRecord("web", now_ms() + i, now_ms(), Status.DOWN, f"reason {i}",
                                                 location=location), 1.0)
        await asyncio.gather(*(s.flush() for s in stores))
        rows = await stores[0].fetchall("SELECT count(*), count(DISTINCT text) FROM reasons")
        assert rows == [(20, 20)]
        located = await stores[0].fetchall("SELECT location, count(*) FROM location_results GROUP BY 1 ORDER BY 1")
        assert located == [("a", 20), ("b", 20)]
        # a location's own results are not what the page goes by: those are the confirmed ones
        assert await stores[0].fetchall("SELECT count(*) FROM results") == [(0,)]
    finally:
        for s in stores:
            await s.close()


async def test_a_single_probe_run_and_a_cluster_never_write_one_database_together(database, tmp_path):
    (single,) = await opened(cluster_store(database, tmp_path, cluster=False))
    member = cluster_store(database, tmp_path)
    with pytest.raises(StoreError, match="without \\[cluster\\] is writing to this database"):
        await member.open()
    await single.close()
    (member,) = await opened(cluster_store(database, tmp_path))
    with pytest.raises(StoreError, match="give every instance the same \\[cluster\\] section"):
        await cluster_store(database, tmp_path, cluster=False).open()
    await member.close()
