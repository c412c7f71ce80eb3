"""quanta.util.queue: a first-in first-out queue shared by tasks and actors (Ray's ray.util.queue).

    from quanta.util.queue import Queue, Empty

    q = Queue(maxsize=100)
    consumer.remote(q)      # the Queue object travels to tasks and actors like a handle
    q.put(item)             # blocks while the queue is full (or raises Full after `timeout`)

The items live in one asyncio actor, so any number of producers and consumers can block in it
at once, each woken in turn. `Empty` and `Full` are subclasses of the standard library's
queue.Empty and queue.Full.
"""

from __future__ import annotations

import asyncio
import numbers
import queue as _stdlib_queue
from collections.abc import Iterable

import quanta


class Empty(_stdlib_queue.Empty):
    """get() found no item: non-blocking, or nothing arrived within the timeout."""


class Full(_stdlib_queue.Full):
    """put() found no room: non-blocking, or none was made within the timeout."""


class _QueueActor:
    """Holds the items: an asyncio.Queue inside an async actor."""

    def __init__(self, maxsize):
        self.maxsize = maxsize
        self.queue = asyncio.Queue(maxsize)

    def qsize(self):
        return self.queue.qsize()

    def empty(self):
        return self.queue.empty()

    def full(self):
        return self.queue.full()

    async def put(self, item, timeout=None):
        try:
            await asyncio.wait_for(self.queue.put(item), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    async def get(self, timeout=None):
        try:
            return True, await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            return False, None

    def put_nowait(self, item):
        try:
            self.queue.put_nowait(item)
            return True
        except asyncio.QueueFull:
            return False

    def put_nowait_batch(self, items):
        if self.maxsize > 0 and len(items) + self.qsize() > self.maxsize:
            return (f"Cannot add {len(items)} items to queue of size {self.qsize()} and "
                    f"maxsize {self.maxsize}.")
        for item in items:
            self.queue.put_nowait(item)
        return None

    def get_nowait(self):
        try:
            return True, self.queue.get_nowait()
        except asyncio.QueueEmpty:
            return False, None

    def get_nowait_batch(self, num_items):
        if num_items > self.qsize():
            return False, f"Cannot get {num_items} items from queue of size {self.qsize()}."
        return True, [self.queue.get_nowait() for _ in range(num_items)]

    async def exit(self):
        quanta.exit_actor()


class Queue:
    """A FIFO queue usable from the driver, tasks and actors alike.

    `maxsize` <= 0 means unbounded. `actor_options` are options for the actor holding the items
    (e.g. `{"name": "jobs", "lifetime": "detached"}`); by default it holds no CPU, so that a
    queue can always be created, even while tasks use every CPU.
    """

    def __init__(self, maxsize=0, actor_options=None):
        if isinstance(maxsize, bool) or not isinstance(maxsize, int):
            raise TypeError(f"maxsize must be an int, got {maxsize!r}")
        if actor_options is not None and not isinstance(actor_options, dict):
            raise TypeError(f"actor_options must be a dict of actor options, got "
                            f"{type(actor_options).__name__}")
        self.maxsize = maxsize
        options = {"num_cpus": 0, **(actor_options or {})}
        self.actor = _actor_class().options(**options).remote(self.maxsize)

    def __len__(self):
        return self.size()

    def size(self):
        """The number of items in the queue."""
        return quanta.get(self._actor().qsize.remote())

    def qsize(self):
        """The number of items in the queue (the standard library's name)."""
        return self.size()

    def empty(self):
        return quanta.get(self._actor().empty.remote())

    def full(self):
        return quanta.get(self._actor().full.remote())

    def put(self, item, block=True, timeout=None):
        """Adds an item. With block=True (default) waits for room, at most `timeout` seconds
        (None: forever), then raises Full; with block=False raises Full at once if full."""
        if not block:
            return self.put_nowait(item)
        if not quanta.get(self._actor().put.remote(item, _check_timeout(timeout))):
            raise Full(f"the queue stayed full (maxsize {self.maxsize}) for {timeout} s")

    async def put_async(self, item, block=True, timeout=None):
        """put() for asyncio code: `await q.put_async(item)`."""
        if not block:
            return self.put_nowait(item)
        if not await self._actor().put.remote(item, _check_timeout(timeout)):
            raise Full(f"the queue stayed full (maxsize {self.maxsize}) for {timeout} s")

    def get(self, block=True, timeout=None):
        """Removes and returns the oldest item. With block=True (default) waits for one, at
        most `timeout` seconds (None: forever), then raises Empty; with block=False raises
        Empty at once if there is none."""
        if not block:
            return self.get_nowait()
        ok, item = quanta.get(self._actor().get.remote(_check_timeout(timeout)))
        if not ok:
            raise Empty(f"no item arrived within {timeout} s")
        return item

    async def get_async(self, block=True, timeout=None):
        """get() for asyncio code: `item = await q.get_async()`."""
        if not block:
            return self.get_nowait()
        ok, item = await self._actor().get.remote(_check_timeout(timeout))
        if not ok:
            raise Empty(f"no item arrived within {timeout} s")
        return item

    def put_nowait(self, item):
        """put(item, block=False)."""
        if not quanta.get(self._actor().put_nowait.remote(item)):
            raise Full(f"the queue is full (maxsize {self.maxsize})")

    def put_nowait_batch(self, items):
        """Adds all of `items` at once, or none of them (raising Full) if they do not fit."""
        if not isinstance(items, Iterable):
            raise TypeError("Argument 'items' must be an Iterable")
        error = quanta.get(self._actor().put_nowait_batch.remote(list(items)))
        if error is not None:
            raise Full(error)

    def get_nowait(self):
        """get(block=False)."""
        ok, item = quanta.get(self._actor().get_nowait.remote())
        if not ok:
            raise Empty("the queue is empty")
        return item

    def get_nowait_batch(self, num_items):
        """Removes and returns `num_items` items, or none of them (raising Empty) if there are
        fewer."""
        if isinstance(num_items, bool) or not isinstance(num_items, int):
            raise TypeError("Argument 'num_items' must be an int")
        if num_items < 0:
            raise ValueError("'num_items' must be nonnegative")
        ok, value = quanta.get(self._actor().get_nowait_batch.remote(num_items))
        if not ok:
            raise Empty(value)
        return value

    def shutdown(self, force=False, grace_period_s=5):
        """Ends the queue's actor; items still in it are lost, and callers blocked in put/get
        raise ActorDiedError. Without force the actor exits on its own, and is killed if it has
        not within `grace_period_s` seconds; with force=True it is killed at once."""
        actor, self.actor = self.actor, None
        if actor is None:
            return
        if not force:
            ready, _ = quanta.wait([actor.exit.remote()], timeout=_check_timeout(grace_period_s))
            if ready:
                return
        quanta.kill(actor)

    def _actor(self):
        if self.actor is None:
            raise RuntimeError("this Queue was shut down; create a new Queue")
        return self.actor


def _check_timeout(timeout):
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
        raise TypeError(f"'timeout' must be a number of seconds or None, got {timeout!r}")
    if timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")
    return timeout


_ACTOR = None


def _actor_class():
    global _ACTOR
    if _ACTOR is None:
        _ACTOR = quanta.remote(_QueueActor)
    return _ACTOR


__all__ = ["Queue", "Empty", "Full"]
