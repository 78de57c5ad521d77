"""[cluster] in storage: the tables several instances share (migration 9, the same number in both
engines), and on PostgreSQL what makes their writing safe together. A real server, real connections."""
from __future__ import annotations

from probe.storage.copy import TABLES

CLUSTER_TABLES = ("cluster_instances", "cluster_leader", "location_results")


async def test_both_engines_have_the_cluster_tables_and_sqlite_leaves_them_empty(store, engine):
    for table in CLUSTER_TABLES:
        (count,) = (await store.fetchall(f"SELECT count(*) FROM {table}"))[0]
        assert count == (1 if table == "cluster_leader" else 0), (engine, table)
    # the leader's row starts at term 0, held by no one
    assert await store.fetchall("SELECT term, instance FROM cluster_leader") == [(0, "")]


def test_storage_copy_moves_each_locations_results():
    assert "location_results" in {t.name for t in TABLES}
