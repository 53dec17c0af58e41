"""The same world in a real PostgreSQL server (COPY load), identical to the embedded one."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.storage import connect, read_frame
from gateway.world.generate import WorldExistsError, synthesize
from gateway.world.pairs import like_probabilities
from gateway.world.params import SCALES
from tests.conftest import TINY_SEED
from tests.world.test_generate import table_digest

pytestmark = pytest.mark.postgres


def test_postgres_world_equals_sqlite_world(pg_url, tiny_db):
    engine = connect(pg_url)
    report = synthesize(engine, SCALES["tiny"], TINY_SEED)
    assert report.feed_rows == read_frame(engine, "SELECT COUNT(*) AS n FROM feed_data")["n"][0]
    assert table_digest(pg_url) == table_digest(tiny_db)
    with pytest.raises(WorldExistsError):
        synthesize(engine, SCALES["tiny"], TINY_SEED)


def test_truth_reads_the_same_from_both_engines(pg_url, tiny_db):
    synthesize(connect(pg_url), SCALES["tiny"], TINY_SEED)
    pairs = read_frame(
        connect(tiny_db),
        'SELECT user_id, post_id, "timestamp" FROM feed_data ORDER BY user_id, "timestamp" LIMIT 300',
        parse_dates=["timestamp"],
    )
    p_sqlite = like_probabilities(connect(tiny_db), pairs)
    p_pg = like_probabilities(connect(pg_url), pairs)
    np.testing.assert_allclose(p_sqlite, p_pg, rtol=0, atol=1e-12)
