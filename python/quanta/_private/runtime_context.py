"""quanta.get_runtime_context(): facts about the current process and task."""

from __future__ import annotations

from quanta._private import session


class RuntimeContext:
    def get_node_id(self) -> str:
        return session.current_core().node_id

    def get_job_id(self) -> str:
        return f"{session.job_id():016x}"

    def get_task_id(self):
        tid = getattr(session._task_context, "task_id", None)
        return tid.hex() if tid else None

    @property
    def namespace(self):
        return session.namespace()

    def is_worker(self) -> bool:
        return session.is_worker()
