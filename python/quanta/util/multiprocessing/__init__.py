"""quanta.util.multiprocessing: a drop-in for the standard library's multiprocessing.Pool whose
processes are Quanta actors (`from quanta.util.multiprocessing import Pool`), as Ray's
ray.util.multiprocessing is. `TimeoutError` is multiprocessing.TimeoutError, raised by
AsyncResult.get(timeout) and by the imap iterators' next(timeout)."""

from multiprocessing import TimeoutError

from quanta.util.multiprocessing.pool import Pool

__all__ = ["Pool", "TimeoutError"]
