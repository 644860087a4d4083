"""A small thread-safe cache of computed results, least recently used first out."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any


class ComputedCache:
    """At most ``size`` results of ``compute()`` calls, by key.

    ``compute`` runs outside the lock: a slow computation (reading a lazy array, a first
    CUDA use) never makes another thread wait, at the price of an occasional duplicate
    computation of the same key; the first result stored wins.
    """

    def __init__(self, size: int):
        self.size = size
        self._results: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The stored result for ``key``, computed now if there is none."""
        with self._lock:
            if key in self._results:
                self._results.move_to_end(key)
                return self._results[key]
        result = compute()
        with self._lock:
            result = self._results.setdefault(key, result)
            self._results.move_to_end(key)
            while len(self._results) > self.size:
                self._results.popitem(last=False)
        return result
