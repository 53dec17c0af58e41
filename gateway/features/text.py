"""Text space of the posts: TF-IDF + truncated SVD (fit offline, nothing downloaded)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer


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


_TOKEN = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token_pattern


class MoodEncoder:
    """Embeds short free texts (moods) into the posts' TF-IDF + SVD space, per request.

    Reproduces ``TfidfVectorizer(sublinear_tf=True, stop_words="english")`` + the SVD
    projection of the offline build without constructing a vectorizer per call (a test
    checks it against scikit-learn).
    """

    def __init__(self, vocabulary: list[str], idf: np.ndarray, components: np.ndarray) -> None:
        self.index = {word: i for i, word in enumerate(vocabulary)}
        self.idf = np.asarray(idf, dtype=np.float64)
        self.components = np.asarray(components, dtype=np.float64)  # (dims, vocabulary)

    @classmethod
    def load(cls, path) -> MoodEncoder:
        data = np.load(path)
        return cls(data["vocabulary"].tolist(), data["idf"], data["components"])

    def embed(self, text: str) -> np.ndarray:
        """L2-normalised embedding; all zeros when no word of the text is in the vocabulary."""
        counts: dict[int, int] = {}
        for token in _TOKEN.findall(text.lower()):
            if token in ENGLISH_STOP_WORDS:
                continue
            j = self.index.get(token)
            if j is not None:
                counts[j] = counts.get(j, 0) + 1
        if not counts:
            return np.zeros(self.components.shape[0], dtype=np.float32)
        cols = np.fromiter(counts, dtype=np.int64)
        weights = (1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64))) * self.idf[cols]
        weights /= np.linalg.norm(weights)
        vector = self.components[:, cols] @ weights
        norm = np.linalg.norm(vector)
        return (vector / norm if norm > 0 else vector).astype(np.float32)
