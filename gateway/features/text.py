"""Text space of the posts: TF-IDF + truncated SVD (fit offline, nothing downloaded)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer

from gateway.features import artifacts as A
from gateway.features.artifacts import FeatureStoreError, InMemory, NpyRanges, Ranges


@dataclass
class TextSpace:
    vocabulary: list[str]
    idf: np.ndarray
    components: np.ndarray  # (dims, vocabulary)
    centers: np.ndarray  # (clusters, dims)

    def embed(self, texts: list[str]) -> np.ndarray:
        """L2-normalised embeddings of new texts in the fitted space (used for moods later)."""
        vectorizer = TfidfVectorizer(vocabulary=self.vocabulary, sublinear_tf=True, stop_words="english")
        vectorizer.idf_ = self.idf
        return _normalise(vectorizer.transform(texts) @ self.components.T)


def _normalise(matrix: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norm == 0, 1.0, norm)).astype(np.float32)


def fit_text_space(
    texts: list[str], dims: int, clusters: int, seed: int
) -> tuple[TextSpace, np.ndarray, np.ndarray]:
    """Fit on the catalogue; return the space, the posts' embeddings and cluster ids."""
    vectorizer = TfidfVectorizer(sublinear_tf=True, stop_words="english", min_df=2, max_features=30_000)
    tfidf = vectorizer.fit_transform(texts)
    dims = min(dims, max(1, tfidf.shape[1] - 1))
    svd = TruncatedSVD(n_components=dims, random_state=seed)
    embedding = _normalise(svd.fit_transform(tfidf))
    n_clusters = min(clusters, len(texts))
    kmeans = KMeans(n_clusters=n_clusters, n_init=4, random_state=seed).fit(embedding)
    space = TextSpace(
        vocabulary=list(vectorizer.get_feature_names_out()),
        idf=vectorizer.idf_.astype(np.float64),
        components=svd.components_.astype(np.float32),
        centers=kmeans.cluster_centers_.astype(np.float32),
    )
    return space, embedding, kmeans.labels_.astype(np.int64)


TOKEN = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token_pattern


def term_weights(
    index: dict[str, int], idf: np.ndarray, terms: list[str]
) -> tuple[np.ndarray, np.ndarray] | None:
    """Columns and L2-normalised sublinear TF-IDF weights of the known terms (None if none is
    known): what ``TfidfVectorizer(sublinear_tf=True)`` gives a text made of these terms."""
    counts: dict[int, int] = {}
    for token in terms:
        j = index.get(token)
        if j is not None:
            counts[j] = counts.get(j, 0) + 1
    if not counts:
        return None
    cols = np.fromiter(counts, dtype=np.int64)
    weights = (1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64))) * idf[cols]
    return cols, weights / np.linalg.norm(weights)


class TermProjection:
    """Sublinear TF-IDF weights of a few words, projected by a (dims × vocabulary) matrix and
    L2-normalised: the SVD components map words into the posts' 16-d text space; word vectors
    (``features/word_vectors.py``) map them into a model's space the same way.

    Reproduces ``TfidfVectorizer(sublinear_tf=True, stop_words="english")`` + the SVD
    projection of the offline build, without constructing a vectorizer per call (a test checks
    it against scikit-learn).
    """

    def __init__(self, vocabulary: list[str], idf: np.ndarray, components: np.ndarray) -> None:
        self.index = {word: i for i, word in enumerate(vocabulary)}
        self.idf = np.asarray(idf, dtype=np.float64)
        self.components = np.asarray(components)  # (dims, vocabulary); a column is a word's image

    @classmethod
    def load(cls, path) -> TermProjection:
        """The feature store's text space (``text_space.npz``)."""
        data = np.load(path)
        return cls(data["vocabulary"].tolist(), data["idf"], data["components"])

    def knows(self, word: str) -> bool:
        return word in self.index

    def embed(self, text: str) -> np.ndarray:
        """A text cut as scikit-learn cuts it (stop words dropped), embedded by ``embed_terms``."""
        return self.embed_terms([t for t in TOKEN.findall(text.lower()) if t not in ENGLISH_STOP_WORDS])

    def embed_terms(self, terms: list[str]) -> np.ndarray:
        """L2-normalised embedding; all zeros when no term is in the vocabulary."""
        found = term_weights(self.index, self.idf, terms)
        if found is None:
            return np.zeros(self.components.shape[0], dtype=np.float32)
        cols, weights = found
        vector = self.components[:, cols] @ weights
        norm = np.linalg.norm(vector)
        return (vector / norm if norm > 0 else vector).astype(np.float32)


def post_tfidf_columns(vocabulary: list[str], idf: np.ndarray, texts: Iterable[str]) -> dict[str, np.ndarray]:
    """The posts' L2-normalised sublinear TF-IDF in the vocabulary, by word (CSC): ``bounds``
    (word j's entries are ``bounds[j]:bounds[j + 1]``), ``rows`` (the posts that use it) and
    ``values`` (its weight in each, float32). Written by the build, recomputed by a worker
    whose store has no such files."""
    vectorizer = TfidfVectorizer(vocabulary=vocabulary, sublinear_tf=True, stop_words="english")
    vectorizer.idf_ = np.asarray(idf, dtype=np.float64)
    columns = vectorizer.transform(texts).tocsc()
    return {
        "bounds": columns.indptr.astype(np.int64),
        "rows": columns.indices,
        "values": columns.data.astype(np.float32),
    }


class PostTfidf:
    """The catalogue's posts as L2-normalised sublinear TF-IDF rows in the store's vocabulary,
    for the cosine of a few words with every post: stored by word, so a mood reads the columns
    of its words only (from the store's files with ``os.pread``, nothing mapped or kept per
    post; or in memory when they were computed at start-up from the texts).

    Exact where the 16-d SVD blurs: small sub-topics (elections, markets, startups) have no
    direction of their own among 16, so their words land on a neighbour's posts there.
    """

    def __init__(
        self, vocabulary: list[str], idf: np.ndarray, bounds: np.ndarray, rows: Ranges, values: Ranges, posts: int
    ) -> None:
        if len(bounds) != len(vocabulary) + 1 or int(bounds[-1]) != len(rows) or len(rows) != len(values):
            raise FeatureStoreError("the posts' TF-IDF columns do not match the vocabulary")
        self.index = {word: i for i, word in enumerate(vocabulary)}
        self.idf = np.asarray(idf, dtype=np.float64)
        self.bounds = np.asarray(bounds, dtype=np.int64)
        self.rows, self.values = rows, values
        self.posts = posts

    @classmethod
    def from_texts(cls, vocabulary: list[str], idf: np.ndarray, texts: Sequence[str]) -> PostTfidf:
        columns = post_tfidf_columns(vocabulary, idf, texts)
        return cls(
            vocabulary, idf, columns["bounds"], InMemory(columns["rows"]), InMemory(columns["values"]), len(texts)
        )

    @classmethod
    def load(cls, store_dir: Path, texts: Sequence[str]) -> PostTfidf:
        """The feature store's vocabulary and IDF (``text_space.npz``) with the posts' columns the
        build wrote; a store without them has its ``texts`` tokenised now."""
        data = np.load(store_dir / A.TEXT_SPACE)
        vocabulary, idf = data["vocabulary"].tolist(), data["idf"]
        if not all((store_dir / name).exists() for name in A.POST_TFIDF):
            return cls.from_texts(vocabulary, idf, texts)
        rows, values = NpyRanges(store_dir / A.POST_TFIDF_ROWS), NpyRanges(store_dir / A.POST_TFIDF_VALUES)
        return cls(vocabulary, idf, np.load(store_dir / A.POST_TFIDF_BOUNDS), rows, values, len(texts))

    def knows(self, word: str) -> bool:
        return word in self.index

    def similarity(self, terms: list[str]) -> np.ndarray | None:
        """Cosine of the terms (as one short text) with every post; None if no term is known."""
        found = term_weights(self.index, self.idf, terms)
        if found is None:
            return None
        cols, weights = found[0].tolist(), found[1].tolist()
        spans = [(int(self.bounds[j]), int(self.bounds[j + 1])) for j in cols]
        rows = np.concatenate([self.rows.read(lo, hi) for lo, hi in spans])
        values = np.concatenate([self.values.read(lo, hi) * w for (lo, hi), w in zip(spans, weights, strict=True)])
        return np.bincount(rows, values, minlength=self.posts)


def save_post_tfidf(store_dir: Path, vocabulary: list[str], idf: np.ndarray, texts: Iterable[str]) -> dict:
    """Write the posts' TF-IDF columns (``post_tfidf_columns``) into a store version; return the
    manifest entry."""
    columns = post_tfidf_columns(vocabulary, idf, texts)
    for name, key in zip(A.POST_TFIDF, ("bounds", "rows", "values"), strict=True):
        np.save(store_dir / name, columns[key])
    return {"files": list(A.POST_TFIDF), "words": len(vocabulary), "entries": len(columns["rows"])}


def cluster_within_topics(texts: list[str], topics: np.ndarray, per_topic: int, dims: int, seed: int) -> np.ndarray:
    """Cluster ids: each topic's posts clustered apart (TF-IDF and SVD fitted on that topic's
    texts, k-means into ``per_topic`` clusters), so that a topic's sub-topics, which share its
    words, are told apart by the words they do not share; topic ``k`` owns ids
    ``k * per_topic ..`` (a topic with fewer posts uses fewer of them)."""
    labels = np.zeros(len(texts), dtype=np.int64)
    for k in np.unique(topics):
        rows = np.flatnonzero(topics == k)
        n_clusters = min(per_topic, len(rows))
        if n_clusters > 1:
            vectorizer = TfidfVectorizer(sublinear_tf=True, stop_words="english", min_df=2, max_features=30_000)
            try:
                tfidf = vectorizer.fit_transform([texts[i] for i in rows])
            except ValueError:  # no word in two of the topic's texts: one cluster
                tfidf = None
            if tfidf is not None and tfidf.shape[1] > 1:
                n_dims = min(dims, tfidf.shape[1] - 1, len(rows) - 1)
                embedding = _normalise(TruncatedSVD(n_components=n_dims, random_state=seed).fit_transform(tfidf))
                fitted = KMeans(n_clusters=n_clusters, n_init=4, random_state=seed).fit(embedding)
                labels[rows] = fitted.labels_
        labels[rows] += int(k) * per_topic
    return labels
