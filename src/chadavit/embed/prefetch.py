"""Read images ahead on worker threads, in input order, with a bounded look-ahead."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class Failed:
    """What a worker returns instead of raising: the stage and the exception, reported per image."""

    def __init__(self, stage: str, exc: BaseException) -> None:
        self.stage, self.exc = stage, exc


def prefetch(fn: Callable[[Any], Any], items: Iterable[Any], workers: int, depth: int) -> Iterator[tuple[Any, Any]]:
    """``(item, fn(item) or Failed)`` in input order, at most ``depth`` items ahead, on ``workers`` threads."""

    def safe(item: Any) -> Any:
        try:
            return fn(item)
        except Exception as exc:  # noqa: BLE001 - every bad image is reported and skipped
            return Failed("read", exc)

    if workers <= 0:
        for item in items:
            yield item, safe(item)
        return
    ex = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="embed-read")
    try:
        it = iter(items)
        queue: deque[tuple[Any, Future[Any]]] = deque()
        for item in it:
            queue.append((item, ex.submit(safe, item)))
            if len(queue) >= depth:
                break
        while queue:
            item, fut = queue.popleft()
            nxt = next(it, None)
            if nxt is not None:
                queue.append((nxt, ex.submit(safe, nxt)))
            yield item, fut.result()
    finally:
        ex.shutdown(wait=True, cancel_futures=True)
