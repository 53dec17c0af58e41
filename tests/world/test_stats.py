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


def test_a_world_built_with_posts_has_that_many_posts_and_the_usual_statistics(tmp_path):
    from typer.testing import CliRunner

    from gateway.cli import app

    url = f"sqlite:///{tmp_path / 'posts.db'}"
    result = CliRunner().invoke(app, ["data", "synth", "--scale", "tiny", "--posts", "1234", "--db", url])
    assert result.exit_code == 0, result.output
    assert "1,234 posts" in result.output
    value = {s.name: s.value for s in compute_stats(connect(url))}
    assert value["posts"] == 1234
    assert value["users"] == 1500  # the scale's users
    counts = dict(part.split(":") for part in str(value["topic counts"]).split())
    assert sum(map(int, counts.values())) == 1234 and int(counts["movie"]) > int(counts["covid"]) > int(
        counts["tech"]
    )
    assert 0.10 <= value["like rate on views"] <= 0.14  # the calibrated like rate
    assert value["likes == views with target 1"] is True
    bad = CliRunner().invoke(
        app, ["data", "synth", "--scale", "tiny", "--posts", "5", "--db", url, "--replace"]
    )
    assert bad.exit_code == 2 and "Traceback" not in bad.output
