"""ObjectRef: a reference to an object that exists, or will exist, in the cluster."""

from __future__ import annotations

from quanta._private import serialization


class ObjectRef:
    """A future for a task's result or a `put` value.

    Hashable and comparable by id; picklable (a ref inside a task argument or a stored object
    stays valid and keeps the object alive). While any ObjectRef to an object exists anywhere in
    the cluster, the object is kept; it is freed after the last one goes away.
    """

    __slots__ = ("_id", "_core", "__weakref__")

    def __init__(self, binary: bytes, _core=None):
        if not isinstance(binary, bytes) or len(binary) != 16:
            raise ValueError("ObjectRef ids are 16 bytes; create refs with .remote() or quanta.put()")
        from quanta._private import session

        core = _core if _core is not None else session.current_core()
        self._id = binary
        self._core = core
        if core is not None:
            core.add_ref(binary)

    @classmethod
    def _adopt(cls, core, binary: bytes) -> "ObjectRef":
        # For ids whose first reference the core library already counted (task returns, put).
        ref = cls.__new__(cls)
        ref._id = binary
        ref._core = core
        return ref

    def __del__(self):
        core = getattr(self, "_core", None)  # unset if __init__ refused its arguments
        if core is not None:
            try:
                core.release(self._id)
            except Exception:  # interpreter shutdown: nothing left to release
                pass

    def binary(self) -> bytes:
        return self._id

    def hex(self) -> str:
        return self._id.hex()

    def task_id(self) -> bytes:
        return self._id[:12] + b"\0\0\0\0"

    def __hash__(self):
        return hash(self._id)

    def __eq__(self, other):
        return type(other) is ObjectRef and other._id == self._id

    def __ne__(self, other):
        return not self.__eq__(other)

    def __lt__(self, other):
        if type(other) is not ObjectRef:
            return NotImplemented
        return self._id < other._id

    def __repr__(self):
        return f"ObjectRef({self._id.hex()})"

    def __reduce__(self):
        serialization.note_nested_ref(self._id)
        core = self._core
        return (serialization.rebuild_ref, (self._id, core.cluster_id if core is not None else 0))

    def __await__(self):
        return self.as_future().__await__()

    def as_future(self):
        """An asyncio future that resolves to the object's value."""
        import asyncio

        from quanta._private import api

        loop = asyncio.get_event_loop()
        return loop.run_in_executor(None, api.get, self)

    def future(self):
        """A concurrent.futures.Future that resolves to the object's value."""
        import concurrent.futures
        import threading

        from quanta._private import api

        fut = concurrent.futures.Future()

        def resolve():
            try:
                fut.set_result(api.get(self))
            except BaseException as e:  # noqa: BLE001 - delivered to the future
                fut.set_exception(e)

        threading.Thread(target=resolve, daemon=True).start()
        return fut
