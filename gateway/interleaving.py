"""Team-draft interleaving (Radlinski, Kurup & Joachims 2008): pure functions, no I/O.

Two rankers, A and B, each rank the same candidates. The merged list is built in rounds: the
team with fewer picks so far picks next; when both have picked equally often (the start of
every round) a coin decides who picks first. A team picks its ranker's best post that is not
in the list yet. Every position remembers the team that picked it, so a like on it credits
that ranker. With each ranker's top ``k`` as input the merge always fills ``k`` positions
(a team's next pick lies within the first ``len(merged) + 1`` of its own list).

The coins of a request come from its id (SHA-256 bits): the same request id always gives the
same merge, in every process and on every replica.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

TEAM_A, TEAM_B = 0, 1


@dataclass(frozen=True)
class Interleaving:
    """The merged list and, per position, the team (``TEAM_A`` or ``TEAM_B``) that picked it."""

    items: tuple[int, ...]
    teams: tuple[int, ...]


def coin_flips(request_id: str) -> Iterator[bool]:
    """An endless, deterministic stream of fair coins for ``request_id`` (True: A picks first)."""
    block = 0
    while True:
        digest = hashlib.sha256(f"{request_id}\x00{block}".encode()).digest()
        for byte in digest:
            for bit in range(8):
                yield bool((byte >> bit) & 1)
        block += 1


def team_draft(a: Sequence[int], b: Sequence[int], k: int, coins: Iterable[bool]) -> Interleaving:
    """Merge rankings ``a`` and ``b`` (best first, no duplicates within each) into ``k`` items.

    ``coins`` is consumed once per round in which the teams are equal. When one ranking has
    nothing left to give, the other picks (only possible when their items differ and are short).
    """
    coins = iter(coins)
    rankings = (a, b)
    position = [0, 0]
    picks = [0, 0]
    chosen: set[int] = set()
    items: list[int] = []
    teams: list[int] = []
    while len(items) < k:
        for team in (TEAM_A, TEAM_B):  # skip what the other team already took
            ranking = rankings[team]
            while position[team] < len(ranking) and ranking[position[team]] in chosen:
                position[team] += 1
        left = [position[t] < len(rankings[t]) for t in (TEAM_A, TEAM_B)]
        if not any(left):
            break
        if picks[TEAM_A] < picks[TEAM_B]:
            team = TEAM_A
        elif picks[TEAM_B] < picks[TEAM_A]:
            team = TEAM_B
        else:
            team = TEAM_A if next(coins) else TEAM_B
        if not left[team]:
            team = 1 - team
        item = rankings[team][position[team]]
        chosen.add(item)
        items.append(item)
        teams.append(team)
        picks[team] += 1
    return Interleaving(tuple(items), tuple(teams))


def interleave(a: Sequence[int], b: Sequence[int], k: int, request_id: str) -> Interleaving:
    """``team_draft`` with the request's own coins."""
    return team_draft(a, b, k, coin_flips(request_id))

