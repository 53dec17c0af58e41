"""A deployer's word-vector model directory: the pluggable space for moods.

The format (documented in README "Moods"; version 1), a directory with two files:

* ``config.json``: ``{"format": "recsys-word-vectors", "version": 1, "dims": D}`` and
  optionally ``"source"`` (free text: where the vectors came from);
* ``vectors.npz``: ``words`` (V strings) and ``vectors`` (V × D floats), row i the vector
  of word i.

Any embedding model can produce it offline: a sentence-embedding model by encoding each word
of a vocabulary (as model2vec distils static vectors), or GloVe/fastText text files with
``recsys mood import-vectors``. Nothing is downloaded. Both the mood and every post are mapped
into that space: a post is the sublinear TF-IDF-weighted sum of its words' unit vectors (IDF
over the catalogue), so a mood word that no post contains ("football") still lands near the
posts whose words the model puts near it ("goal", "striker").
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from gateway.features.text import TOKEN, TermProjection

FORMAT = "recsys-word-vectors"
VERSION = 1
CONFIG = "config.json"
VECTORS = "vectors.npz"


class WordVectorsError(ValueError):
    """The directory is not a usable word-vector model; the message says what is wrong."""


@dataclass(frozen=True)
class WordVectors:
    words: list[str]
    vectors: np.ndarray  # (V, D) float32, rows L2-normalised (zero rows stay zero)
    source: str = ""

    @classmethod
    def load(cls, directory: str | Path) -> WordVectors:
        directory = Path(directory)
        try:
            config = json.loads((directory / CONFIG).read_text(encoding="utf-8"))
            data = np.load(directory / VECTORS, allow_pickle=False)
            words, vectors = data["words"], data["vectors"]
        except OSError as exc:
            raise WordVectorsError(
                f"word vectors {directory}: cannot read {exc.filename or directory}"
            ) from exc
        except (ValueError, KeyError) as exc:
            raise WordVectorsError(f"word vectors {directory}: unreadable ({exc})") from exc
        if not isinstance(config, dict) or config.get("format") != FORMAT or config.get("version") != VERSION:
            raise WordVectorsError(
                f"word vectors {directory}: {CONFIG} must say format {FORMAT!r} and version {VERSION}"
            )
        if vectors.ndim != 2 or len(words) != vectors.shape[0] or vectors.shape[1] != config.get("dims"):
            raise WordVectorsError(
                f"word vectors {directory}: expected {len(words)} vectors of {config.get('dims')} dims "
                f"(config dims), found an array of shape {vectors.shape}"
            )
        if not np.all(np.isfinite(vectors)):
            raise WordVectorsError(f"word vectors {directory}: vectors contain NaN or infinity")
        return cls.from_arrays([str(w) for w in words], vectors, str(config.get("source", "")))

    @classmethod
    def from_arrays(cls, words: list[str], vectors: np.ndarray, source: str = "") -> WordVectors:
        """Lower-cased words as the tokenizer cuts them (others could never match); the first of
        duplicates wins."""
        keep: dict[str, int] = {}
        for i, word in enumerate(words):
            word = word.lower()
            if TOKEN.fullmatch(word) and word not in keep:
                keep[word] = i
        if not keep:
            raise WordVectorsError(
                "word vectors: no usable word (words must be two or more letters or digits)"
            )
        rows = np.asarray(vectors, dtype=np.float32)[list(keep.values())]
        norm = np.linalg.norm(rows, axis=1, keepdims=True)
        return cls(list(keep), rows / np.where(norm == 0, 1.0, norm), source)

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = {
            "format": FORMAT,
            "version": VERSION,
            "dims": int(self.vectors.shape[1]),
            "source": self.source,
        }
        (directory / CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        np.savez(directory / VECTORS, words=np.array(self.words), vectors=self.vectors)
        return directory

    def space(self, texts: Sequence[str]) -> VectorSpace:
        """Moods and posts in this model's space, with IDF fitted on the catalogue's texts (a
        word no post uses gets the highest IDF)."""
        vectorizer = TfidfVectorizer(
            vocabulary=self.words, sublinear_tf=True, stop_words="english", norm=None
        )
        weights = vectorizer.fit_transform(texts)
        posts = np.asarray(weights @ self.vectors, dtype=np.float32)
        norm = np.linalg.norm(posts, axis=1, keepdims=True)
        posts = np.ascontiguousarray(posts / np.where(norm == 0, 1.0, norm))
        return VectorSpace(TermProjection(self.words, vectorizer.idf_, self.vectors.T), posts)


@dataclass(frozen=True)
class VectorSpace:
    """Posts as rows (L2-normalised) and a projection of mood words into the same space."""

    projection: TermProjection
    posts: np.ndarray  # (posts, D)

    def knows(self, word: str) -> bool:
        return self.projection.knows(word)

    def similarity(self, terms: list[str]) -> np.ndarray | None:
        """Cosine of the terms' weighted mean vector with every post; None if no term is known."""
        if not any(self.projection.knows(t) for t in terms):
            return None
        return self.posts @ self.projection.embed_terms(terms)


def import_text_vectors(source: str | Path, directory: str | Path, limit: int | None = None) -> WordVectors:
    """Convert a GloVe / word2vec / fastText text file (``word v1 v2 ...`` per line; a
    fastText ``count dims`` header line is skipped) into the directory format."""
    source = Path(source)
    words: list[str] = []
    rows: list[list[float]] = []
    try:
        with source.open(encoding="utf-8", errors="replace") as lines:
            for number, line in enumerate(lines, 1):
                fields = line.rstrip().split(" ")
                if number == 1 and len(fields) == 2 and all(f.isdigit() for f in fields):
                    continue
                if len(fields) < 2:
                    continue
                try:
                    values = [float(v) for v in fields[1:]]
                except ValueError as exc:
                    raise WordVectorsError(f"{source}:{number}: not `word v1 v2 ...` ({exc})") from exc
                if rows and len(values) != len(rows[0]):
                    raise WordVectorsError(
                        f"{source}:{number}: {len(values)} values, expected {len(rows[0])}"
                    )
                words.append(fields[0])
                rows.append(values)
                if limit and len(words) >= limit:
                    break
    except OSError as exc:
        raise WordVectorsError(f"cannot read {source}: {exc.strerror or exc}") from exc
    if not rows:
        raise WordVectorsError(f"{source}: no vectors found")
    vectors = WordVectors.from_arrays(words, np.array(rows, dtype=np.float32), source=source.name)
    vectors.save(directory)
    return vectors
