"""How alike two ranked lists are: Jaccard and rank-biased overlap. Pure functions.

* **Jaccard**: |S ∩ T| / |S ∪ T| of the lists as sets; order is ignored.
* **Rank-biased overlap** (Webber, Moffat & Zobel 2010, "A similarity measure for indefinite
  rankings"): the agreement ``A_d = |S[:d] ∩ T[:d]| / d`` at every depth, weighted
  geometrically by ``p`` so the top counts most. For lists known only to depth k this is the
  extrapolated point estimate ``RBO_EXT`` (their eq. 32, which also takes lists of different
  lengths): 1 for identical lists, 0 for disjoint ones. ``p = 0.9`` puts 86 % of the weight on
  the first 10 ranks.
"""

from __future__ import annotations

from collections.abc import Sequence


def jaccard(s: Sequence[int], t: Sequence[int]) -> float:
    """Set overlap of two lists; 1.0 for two empty lists."""
    a, b = set(s), set(t)
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def rank_biased_overlap(s: Sequence[int], t: Sequence[int], p: float = 0.9) -> float:
    """``RBO_EXT(S, T, p)`` for two rankings without duplicates (Webber et al. 2010, eq. 32)."""
    if not 0 < p < 1:
        raise ValueError("p must be in (0, 1)")
    short, long = (list(s), list(t)) if len(s) <= len(t) else (list(t), list(s))
    k_short, k_long = len(short), len(long)
    if k_short == 0:
        return 1.0 if k_long == 0 else 0.0
    seen_short: set[int] = set()
    seen_long: set[int] = set()
    overlap = 0  # X_d: items common to both prefixes of depth d
    total = 0.0
    overlap_at_short = 0
    for d in range(1, k_long + 1):
        item = long[d - 1]
        if d <= k_short:
            other = short[d - 1]
            if item == other:
                overlap += 1
            else:
                overlap += (item in seen_short) + (other in seen_long)
            seen_short.add(other)
            seen_long.add(item)
            if d == k_short:
                overlap_at_short = overlap
        else:
            seen_long.add(item)
            overlap += item in seen_short
        total += overlap / d * p**d
        if d > k_short:  # the short list's unseen part agrees at its observed rate (eq. 32)
            total += overlap_at_short * (d - k_short) / (k_short * d) * p**d
    tail = ((overlap - overlap_at_short) / k_long + overlap_at_short / k_short) * p**k_long
    return (1 - p) / p * total + tail
