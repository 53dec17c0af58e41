"""``recsys data stats``: the world's statistics next to the source facts."""

from __future__ import annotations

from gateway.storage import connect
from gateway.world.stats import compute_stats


def test_stats_report_every_section(tiny_db):
    stats = compute_stats(connect(tiny_db))
    names = {s.name for s in stats}
    for expected in (
        "gender=1 share",
        "like rate on views",
        "repeated (user, post) views",
        "like rate by exp_group 0..4",
        "peak hour (views)",
    ):
        assert expected in names
    value = {s.name: s.value for s in stats}
    assert 8 <= value["countries"] <= 11  # the rarest countries hold ~0.1 % of users
    assert value["likes == views with target 1"] is True
