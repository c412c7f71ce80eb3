"""quanta.get_runtime_context(): facts about the current process and the task or actor it runs
(Ray's RuntimeContext). In a driver the task and actor facts are None; inside a task they are
the task's; inside an actor's methods (and its constructor) they are the actor's."""

from __future__ import annotations

from quanta._private import session


def _executor():
    from quanta._private import executor

    return executor


class RuntimeContext:
    def get(self) -> dict:
        """A dict of the main facts (Ray's deprecated get())."""
        out = {"job_id": self.get_job_id(), "node_id": self.get_node_id(), "namespace": self.namespace}
        if session.is_worker():
            out["task_id"] = self.get_task_id()
            out["actor_id"] = self.get_actor_id()
        return out

    def get_job_id(self) -> str:
        return f"{session.job_id():016x}"

    def get_node_id(self) -> str:
        return session.current_core().node_id

    def get_worker_id(self) -> str:
        """This process's id on its node (a driver's or a worker's), hex."""
        return f"{session.current_core().client_id:016x}"

    def get_task_id(self):
        """The running task's id (hex), or None in a driver."""
        tid = session.current_task_id()
        return tid.hex() if tid else None

    def get_actor_id(self):
        """The id (hex) of the actor this process hosts, or None outside an actor."""
        if not session.is_worker():
            return None
        aid = _executor().current_actor_id()
        return aid.hex() if aid else None

    def get_actor_name(self):
        """The actor's registered name, or None (not named, or not in an actor)."""
        info = self._actor_info()
        return (info.get("name") or None) if info else None

    @property
    def was_current_actor_reconstructed(self) -> bool:
        """True if this actor has been restarted (its process died and it was created again)."""
        info = self._actor_info()
        return bool(info and info.get("restarts", 0) > 0)

    def _actor_info(self):
        aid = self.get_actor_id()
        if aid is None:
            return None
        from quanta._private import control

        ok, _, _, _, error, items = control.call(control.GET_ACTORS, arg=bytes.fromhex(aid))
        if not ok:
            raise ConnectionError(f"the control service did not answer about actor {aid}: {error}")
        for item in items:
            info = control.decode_actor(item)
            if info.get("actor_id") == aid:
                return info
        return None

    @property
    def current_actor(self):
        """The handle of the actor this code runs in (it does not keep the actor alive)."""
        ex = _executor()
        aid = ex.current_actor_id() if session.is_worker() else None
        if aid is None or ex._actor is None:
            raise RuntimeError("current_actor is only available inside an actor's methods")
        from quanta.actor import ActorHandle, _method_table

        runtime = ex._actor
        groups = tuple(g for g in runtime.limits if g)
        return ActorHandle(aid, runtime.class_name, _method_table(type(runtime.instance)),
                           runtime.loop is not None, None, 0, groups)

    def get_assigned_resources(self) -> dict:
        """{resource: amount} the running task (or the actor) holds; {} in a driver."""
        if not session.is_worker():
            return {}
        return _executor().assigned_resources()

    def get_accelerator_ids(self) -> dict:
        """{"GPU": [device ids as strings]} of the running task or actor."""
        ids = _executor().gpu_ids() if session.is_worker() else []
        return {"GPU": [str(i) for i in ids]}

    @property
    def namespace(self) -> str:
        from quanta.actor import _current_namespace

        return _current_namespace()

    @property
    def gcs_address(self) -> str:
        """Where the cluster's control service is: HOST:PORT, or its Unix socket for a local
        cluster without TCP."""
        from quanta._private import runtime_dir

        core = session.current_core()
        record = runtime_dir.read_record(core.session_dir) or {}
        return record.get("control_address") or record.get("control_socket") or core.session_dir

    def is_worker(self) -> bool:
        return session.is_worker()

    # Ray's deprecated properties.
    @property
    def job_id(self):
        return self.get_job_id()

    @property
    def node_id(self):
        return self.get_node_id()

    @property
    def task_id(self):
        return self.get_task_id()

    @property
    def actor_id(self):
        return self.get_actor_id()
