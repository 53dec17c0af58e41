"""Synthetic users: demographics of ``user_data`` and their hidden tastes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gateway.world import params as P

_SYLLABLES = [
    "no",
    "vo",
    "ka",
    "ra",
    "li",
    "ma",
    "sa",
    "to",
    "be",
    "re",
    "go",
    "zo",
    "pe",
    "ne",
    "ky",
    "ta",
    "lo",
    "mi",
    "ya",
    "du",
    "so",
    "ro",
    "ve",
    "ni",
    "ko",
    "ga",
]
_SUFFIXES = {
    "Russia": ["sk", "ovo", "evo", "grad", "insk", "ino", "ovka"],
    "Ukraine": ["iv", "ivka", "opil", "ychi"],
    "Belarus": ["ichi", "avichy", "ov"],
    "Kazakhstan": ["tau", "kol", "bek", "ty"],
    "Turkey": ["kale", "ova", "lu", "dag"],
    "Finland": ["la", "nen", "järvi", "koski"],
    "Azerbaijan": ["li", "chay", "abad"],
}


def city_catalogue(rng: np.random.Generator) -> dict[str, tuple[list[str], np.ndarray]]:
    """Cities per country with their share of the country's users (heads fixed, Zipf tail)."""
    counts = np.array(list(P.COUNTRY_COUNTS.values()), dtype=float)
    alloc = counts**0.8 / (counts**0.8).sum() * P.TOTAL_CITIES
    n_cities = np.maximum(np.round(alloc).astype(int), [len(P.CITY_HEADS[c]) for c in P.COUNTRY_COUNTS])
    n_cities[0] += P.TOTAL_CITIES - n_cities.sum()
    used: set[str] = set()
    catalogue = {}
    for country, n in zip(P.COUNTRY_COUNTS, n_cities, strict=True):
        names = list(P.CITY_HEADS[country])
        used.update(names)
        suffixes = _SUFFIXES.get(country, ["", "burg", "ton"])
        while len(names) < n:
            stem = "".join(rng.choice(_SYLLABLES, size=rng.integers(2, 4)))
            name = (stem + rng.choice(suffixes)).capitalize()
            if name not in used:
                used.add(name)
                names.append(name)
        heads = P.CITY_HEAD_SHARES.get(country, [])
        tail = 1.0 / (np.arange(len(heads), n) + 2.0) ** 0.95
        tail = tail / tail.sum() * (1.0 - sum(heads))
        catalogue[country] = (names, np.concatenate([heads, tail]))
    return catalogue


def generate_users(n_users: int, rng: np.random.Generator) -> pd.DataFrame:
    """The ``user_data`` table for ``n_users`` users, ids 200.. with gaps as in the source."""
    span = round(n_users * (168_552 - 200 + 1) / P.FULL_USERS)
    ids = np.sort(rng.choice(np.arange(P.USER_ID_FIRST, P.USER_ID_FIRST + span), n_users, replace=False))
    countries = np.array(list(P.COUNTRY_COUNTS))
    shares = np.array(list(P.COUNTRY_COUNTS.values()), dtype=float)
    country = rng.choice(countries, size=n_users, p=shares / shares.sum())
    catalogue = city_catalogue(rng)
    city = np.empty(n_users, dtype=object)
    for name, (cities, weights) in catalogue.items():
        mask = country == name
        city[mask] = rng.choice(np.array(cities, dtype=object), size=mask.sum(), p=weights)
    age = np.round(P.AGE_MIN + rng.gamma(P.AGE_GAMMA_SHAPE, P.AGE_GAMMA_SCALE, n_users))
    return pd.DataFrame(
        {
            "user_id": ids.astype(np.int64),
            "gender": (rng.random(n_users) < P.GENDER_1_SHARE).astype(np.int64),
            "age": np.clip(age, P.AGE_MIN, P.AGE_MAX).astype(np.int64),
            "country": country,
            "city": city,
            "exp_group": rng.integers(0, 5, n_users).astype(np.int64),
            "os": np.where(rng.random(n_users) < P.OS_ANDROID_SHARE, "Android", "iOS"),
            "source": np.where(rng.random(n_users) < P.SOURCE_ADS_SHARE, "ads", "organic"),
        }
    )


# Topic taste that demographics explain: (per 10 years of age above 27, gender 1 shift).
_TASTE_DEMOGRAPHICS = {
    "business": (0.08, 0.05),
    "covid": (0.06, -0.05),
    "entertainment": (-0.10, -0.12),
    "movie": (-0.06, -0.02),
    "politics": (0.12, 0.04),
    "sport": (-0.04, 0.22),
    "tech": (-0.02, 0.18),
}


def generate_user_truth(users: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Hidden per-user truth: propensity, topic tastes, latent taste vector z."""
    n = len(users)
    age10 = (users["age"].to_numpy() - 27.0) / 10.0
    gender = (
        users["gender"].to_numpy().astype(float) - P.GENDER_1_SHARE
    )  # centred: tastes keep marginal rates
    frame = {"user_id": users["user_id"].to_numpy(), "propensity": rng.normal(0, P.USER_PROPENSITY_SD, n)}
    for topic in P.TOPICS:
        a_age, a_gender = _TASTE_DEMOGRAPHICS[topic]
        frame[f"taste_{topic}"] = a_age * age10 + a_gender * gender + rng.normal(0, P.TOPIC_TASTE_NOISE_SD, n)
    # Latent taste: partly driven by age and gender, mostly individual.
    demo_loading = rng.normal(0, 0.45, (P.LATENT_DIM, 2))
    z = rng.normal(0, 1.0, (n, P.LATENT_DIM)) + np.column_stack([age10, gender]) @ demo_loading.T
    for k in range(P.LATENT_DIM):
        frame[f"z_{k}"] = z[:, k]
    return pd.DataFrame(frame)
