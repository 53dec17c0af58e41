"""Team-draft interleaving: every merge is a valid interleaving, for any rankings and coins."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.interleaving import TEAM_A, TEAM_B, coin_flips, interleave, team_draft


@st.composite
def two_rankings(draw):
    """Two rankings of one candidate set (as the gateway's rankers rank the same catalogue), a k
    and a coin sequence long enough for every round."""
    items = draw(st.lists(st.integers(0, 60), min_size=0, max_size=25, unique=True))
    a = draw(st.permutations(items))
    b = draw(st.permutations(items))
    k = draw(st.integers(0, len(items) + 2))
    coins = draw(st.lists(st.booleans(), min_size=k + 1, max_size=k + 1))
    return list(a), list(b), k, coins


def _check_valid(a, b, k, merged):
    items, teams = merged.items, merged.teams
    assert len(items) == len(teams) == min(k, len(set(a) | set(b)))
    assert len(set(items)) == len(items)  # no duplicates
    assert set(teams) <= {TEAM_A, TEAM_B}
    for depth in range(1, len(items) + 1):  # every prefix: team sizes differ by at most one
        prefix = teams[:depth]
        assert abs(prefix.count(TEAM_A) - prefix.count(TEAM_B)) <= 1
    for team, ranking in ((TEAM_A, a), (TEAM_B, b)):
        picks = [item for item, t in zip(items, teams, strict=True) if t == team]
        assert picks == sorted(picks, key=ranking.index)  # each ranker's picks keep its own order
        for position, (item, t) in enumerate(zip(items, teams, strict=True)):
            if t == team:  # ...and each pick is its ranker's best post not yet in the list
                assert item == next(x for x in ranking if x not in items[:position])


@settings(max_examples=400, deadline=None)
@given(two_rankings())
def test_every_merge_is_a_valid_team_draft_interleaving(case):
    a, b, k, coins = case
    _check_valid(a, b, k, team_draft(a, b, k, coins))


@settings(max_examples=200, deadline=None)
@given(two_rankings(), st.text(min_size=1, max_size=64))
def test_the_merge_is_deterministic_for_a_request_id(case, request_id):
    a, b, k, _ = case
    first = interleave(a, b, k, request_id)
    assert interleave(a, b, k, request_id) == first
    _check_valid(a, b, k, first)


def test_top_k_lists_of_different_posts_always_fill_k():
    """The gateway passes each ranker's top k only: a team's next pick is within its first k."""
    for a, b in [
        ([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]),
        ([1, 2, 3, 4, 5], [1, 2, 3, 4, 5]),
        ([1, 2, 3], [3, 2, 1]),
    ]:
        for coins in itertools.product((True, False), repeat=3):
            merged = team_draft(a, b, len(a), coins)
            assert len(merged.items) == len(a)


def test_a_worked_example_coin_by_coin():
    a, b = [1, 2, 3, 4], [2, 5, 1, 6]
    # round 1: A first (coin True) takes 1, B takes 2; round 2: B first (False) takes 5, A takes 3.
    merged = team_draft(a, b, 4, [True, False])
    assert merged.items == (1, 2, 5, 3) and merged.teams == (TEAM_A, TEAM_B, TEAM_B, TEAM_A)
    # round 1: B first takes 2, A takes 1; round 2: A first takes 3, B takes 5; round 3: B takes 6.
    merged = team_draft(a, b, 5, [False, True, False])
    assert merged.items == (2, 1, 3, 5, 6) and merged.teams == (TEAM_B, TEAM_A, TEAM_A, TEAM_B, TEAM_B)


def test_coins_are_fair_and_differ_between_requests():
    first = [next(coin_flips(f"req-{i}")) for i in range(4000)]
    assert abs(sum(first) - 2000) < 4 * (4000 * 0.25) ** 0.5
    stream = coin_flips("one request")
    assert [next(stream) for _ in range(600)] == list(itertools.islice(coin_flips("one request"), 600))
    a, b = list(range(10)), list(range(10))[::-1]
    merges = {interleave(a, b, 10, f"r{i}") for i in range(200)}
    assert len(merges) > 1  # the coin matters


def test_the_first_pick_goes_to_each_team_half_of_the_time():
    firsts = [interleave([1, 2], [3, 4], 2, f"x{i}").teams[0] for i in range(4000)]
    assert abs(firsts.count(TEAM_A) - 2000) < 4 * (4000 * 0.25) ** 0.5
