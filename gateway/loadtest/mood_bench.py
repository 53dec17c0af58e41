"""``recsys mood bench``: the per-request cost of reading a mood, side by side in one run.

Per mood, the best of ``repeat`` rounds of ``number`` calls (as ``timeit`` does), in µs:

* ``before``: the encoder this work replaced: the TF-IDF projection of the raw text plus the
  cosine with every post (which the ranking path used to compute itself);
* ``after (first time)``: emoji names, lexicon, topic indicator and the words' cosine with
  every post, with the encoder's cache of recent moods emptied before every call;
* ``after (repeated)``: the same mood again, answered from that cache (people repeat moods).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from gateway.config import Settings
from gateway.features import artifacts as A
from gateway.features.artifacts import current_store_dir
from gateway.features.text import TermProjection
from gateway.serving.moods import MoodSetup

DEFAULT_MOODS = (
    "football",
    "⚽",
    "want to laugh",
    "sad",
    "😂👍🏽",
    "xyzzy plugh",
    "a long mood: " + "tired after work and i would like something light and funny to read " * 2,
)


def best_us(call: Callable[[], object], number: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(number):
            call()
        best = min(best, (time.perf_counter() - started) / number)
    return round(best * 1e6, 2)


def bench_moods(
    settings: Settings, moods: tuple[str, ...] = DEFAULT_MOODS, number: int = 2000, repeat: int = 5
) -> list[dict]:
    setup = MoodSetup.load(settings)
    encoder, lexicon = setup.encoder, setup.lexicon
    posts = setup.store.post_emb
    old = TermProjection.load(current_store_dir(settings.paths.features_dir) / A.TEXT_SPACE)

    def first_time(text: str) -> object:
        encoder.encode.cache_clear()
        return encoder.encode(text, lexicon)

    rows = []
    for mood in moods:
        rows.append(
            {
                "mood": mood,
                "before_us": best_us(lambda m=mood: posts @ old.embed(m), number, repeat),
                "after_first_us": best_us(lambda m=mood: first_time(m), number, repeat),
                "after_repeated_us": best_us(lambda m=mood: encoder.encode(m, lexicon), number, repeat),
            }
        )
    return rows
