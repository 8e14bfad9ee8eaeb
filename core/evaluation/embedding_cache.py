"""A disk cache of embeddings, so repeated evaluations do not re-embed a whole corpus."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings


class CachedEmbeddings(Embeddings):
    """Wraps an embedder; vectors are keyed by the model's identity and the text's hash."""

    def __init__(self, inner: Embeddings, path: Path, model_id: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._inner = inner
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB)")
        self._model_id = model_id

    @property
    def dimensions(self) -> int:
        return self._inner.dimensions  # type: ignore[attr-defined]

    def _key(self, text: str) -> str:
        return hashlib.sha256(f"{self._model_id}\x00{text}".encode()).hexdigest()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        keys = [self._key(t) for t in texts]
        found: dict[str, list[float]] = {}
        for start in range(0, len(keys), 500):
            part = keys[start : start + 500]
            marks = ",".join("?" * len(part))
            for key, blob in self._db.execute(
                f"SELECT key, vector FROM vectors WHERE key IN ({marks})", part
            ):
                found[key] = np.frombuffer(blob, dtype=np.float32).tolist()
        missing = [(k, t) for k, t in zip(keys, texts, strict=True) if k not in found]
        if missing:
            vectors = self._inner.embed_documents([t for _, t in missing])
            rows = [
                (k, np.asarray(v, dtype=np.float32).tobytes())
                for (k, _), v in zip(missing, vectors, strict=True)
            ]
            self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)", rows)
            self._db.commit()
            found.update({k: v for (k, _), v in zip(missing, vectors, strict=True)})
        return [found[k] for k in keys]

    def embed_query(self, text: str) -> list[float]:
        return self._inner.embed_query(text)  # queries are timed: never served from the cache
