"""How often each fine-tuned model failed and the base model answered instead, and why (last time).

Counted in Redis per version name (``[models.finetuned]`` for the config file's model),
so every bot process adds to the same figures that ``archivist models list`` shows.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import redis

CONFIG_FINETUNED = "[models.finetuned]"  # how fallbacks of the config file's fine-tuned model are counted
_FALLBACK_COUNTS = "archivist:models:fallbacks"  # hash: version name -> count
_FALLBACK_LAST = "archivist:models:fallbacks:last"  # hash: version name -> {"at", "reason"}


@dataclass(frozen=True)
class FallbackCount:
    count: int
    last_at: float | None
    last_reason: str

    def as_dict(self) -> dict[str, object]:
        return {"count": self.count, "last_at": self.last_at, "last_reason": self.last_reason}


class FallbackCounts:
    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    def record(self, label: str, reason: str) -> None:
        pipe = self._redis.pipeline()
        pipe.hincrby(_FALLBACK_COUNTS, label, 1)
        pipe.hset(_FALLBACK_LAST, label, json.dumps({"at": time.time(), "reason": reason}))
        pipe.execute()

    def all(self) -> dict[str, FallbackCount]:
        counts = self._redis.hgetall(_FALLBACK_COUNTS)
        last = self._redis.hgetall(_FALLBACK_LAST)
        found: dict[str, FallbackCount] = {}
        for raw_label, raw_count in counts.items():
            label = raw_label.decode() if isinstance(raw_label, bytes) else raw_label
            detail = json.loads(last.get(raw_label) or "{}")
            found[label] = FallbackCount(int(raw_count), detail.get("at"), detail.get("reason", ""))
        return found
