"""The head's side of the jobs API: creating, listing, stopping and deleting submitted jobs.

Lives in the dashboard process. Each job gets a folder (common.py) and a supervisor process
(supervisor.py) that runs its entrypoint; the manager reaps supervisors and marks a job FAILED
if its supervisor died without recording an outcome. Thread-safety: call from the dashboard's
event loop thread only.
"""

from __future__ import annotations

import numbers
import os
import shutil
import signal
import subprocess
import sys
import time

from quanta._private import runtime_dir
from quanta.job_submission import common, package
from quanta.job_submission.common import JobInfo, JobStatus

RUNTIME_ENV_KEYS = {"working_dir", "env_vars"}


class JobError(ValueError):
    """A request the manager refuses (the message says why); `status` is the HTTP status."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def _amount(name, value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value < 0:
        raise JobError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)


class JobManager:
    def __init__(self, session_dir: str, head_node_index: int):
        self.session_dir = session_dir
        self.head_node_index = head_node_index
        self._supervisors: dict[str, subprocess.Popen] = {}
        root = common.jobs_dir(session_dir)
        if not os.path.isdir(root):
            runtime_dir.make_private_dir(root)

    # ------------------------------------------------------------------ requests

    def submit(self, body: dict) -> str:
        entrypoint = body.get("entrypoint")
        if not isinstance(entrypoint, str) or not entrypoint.strip():
            raise JobError("entrypoint must be a non-empty shell command, e.g. 'python script.py'")
        submission_id = body.get("submission_id") or body.get("job_id") or common.new_submission_id()
        try:
            common.check_submission_id(submission_id)
        except ValueError as e:
            raise JobError(str(e)) from None
        folder = common.job_dir(self.session_dir, submission_id)
        if os.path.lexists(folder):
            raise JobError(f"a job with submission_id {submission_id!r} already exists", status=409)
        runtime_env = self._runtime_env(body.get("runtime_env"))
        metadata = body.get("metadata")
        if metadata is not None and (not isinstance(metadata, dict) or
                                     not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())):
            raise JobError("metadata must be a dict of strings to strings")
        resources = body.get("entrypoint_resources")
        if resources is not None:
            if not isinstance(resources, dict):
                raise JobError("entrypoint_resources must be a dict of resource name -> amount")
            resources = {str(k): _amount(f"entrypoint_resources[{k!r}]", v) for k, v in resources.items()}
            if {"CPU", "GPU"} & set(resources):
                raise JobError("use entrypoint_num_cpus / entrypoint_num_gpus, not entrypoint_resources['CPU'/'GPU']")
        info = JobInfo(
            submission_id=submission_id, entrypoint=entrypoint, status=JobStatus.PENDING,
            start_time=int(time.time() * 1000), metadata=metadata, runtime_env=runtime_env,
            entrypoint_num_cpus=_amount("entrypoint_num_cpus", body.get("entrypoint_num_cpus")),
            entrypoint_num_gpus=_amount("entrypoint_num_gpus", body.get("entrypoint_num_gpus")),
            entrypoint_resources=resources, node_index=self.head_node_index)
        os.mkdir(folder, 0o700)
        common.write_info(folder, info)
        out = os.open(os.path.join(folder, "supervisor.log"),
                      os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            self._supervisors[submission_id] = subprocess.Popen(
                [sys.executable, "-m", "quanta.job_submission.supervisor", folder, self.session_dir],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, close_fds=True)
        except OSError as e:
            info.status, info.message, info.end_time = JobStatus.FAILED, f"cannot start its supervisor: {e}", info.start_time
            common.write_info(folder, info)
        finally:
            os.close(out)
        return submission_id

    def _runtime_env(self, env) -> dict | None:
        if env is None:
            return None
        if not isinstance(env, dict):
            raise JobError("runtime_env must be a dict")
        unknown = set(env) - RUNTIME_ENV_KEYS
        if unknown:
            raise JobError(f"runtime_env fields {sorted(unknown)} are not supported; supported: "
                           f"{sorted(RUNTIME_ENV_KEYS)} (install packages on the cluster's hosts yourself)")
        out = dict(env)
        if "env_vars" in env:
            ev = env["env_vars"]
            if not isinstance(ev, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in ev.items()):
                raise JobError("runtime_env['env_vars'] must be a dict of strings to strings")
        if "working_dir" in env:
            wd = env["working_dir"]
            if not isinstance(wd, str) or not wd.startswith(package.SCHEME):
                raise JobError("runtime_env['working_dir'] must name an uploaded package "
                               f"({package.SCHEME}<sha256>.zip); JobSubmissionClient uploads local folders")
            try:
                path = package.unpacked_path(self.session_dir, wd[len(package.SCHEME):])
            except package.PackageError as e:
                raise JobError(str(e)) from None
            if not os.path.isdir(path):
                raise JobError(f"package {wd} has not been uploaded", status=404)
            out["_working_dir_path"] = path
        return out

    def get(self, submission_id: str) -> JobInfo:
        try:
            folder = common.job_dir(self.session_dir, submission_id)
        except ValueError as e:
            raise JobError(str(e), status=404) from None
        info = common.read_info(folder)
        if info is None:
            raise JobError(f"no job with submission_id {submission_id!r}", status=404)
        return info

    def list(self) -> list:
        self.reap()
        return common.list_infos(self.session_dir)

    def stop(self, submission_id: str) -> bool:
        """True if the job was running (it is being stopped), False if it had already ended."""
        info = self.get(submission_id)
        if info.status.is_terminal():
            return False
        proc = self._supervisors.get(submission_id)
        if proc is None or proc.poll() is not None:
            self.reap()
            return False
        proc.send_signal(signal.SIGTERM)
        return True

    def delete(self, submission_id: str) -> bool:
        info = self.get(submission_id)
        if not info.status.is_terminal():
            raise JobError(f"job {submission_id} is {info.status}; stop it (and let it end) before deleting it")
        self._supervisors.pop(submission_id, None)
        shutil.rmtree(common.job_dir(self.session_dir, submission_id))
        return True

    def log_paths(self, submission_id: str) -> list:
        self.get(submission_id)
        folder = common.job_dir(self.session_dir, submission_id)
        return [os.path.join(folder, "output.log.1"), os.path.join(folder, "output.log")]

    def logs(self, submission_id: str) -> str:
        out = b""
        for p in self.log_paths(submission_id):
            try:
                fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            with os.fdopen(fd, "rb") as f:
                out += f.read()
        return out.decode("utf-8", "replace")

    # ------------------------------------------------------------------ housekeeping

    def reap(self) -> None:
        """Marks FAILED the jobs whose supervisor exited without recording an outcome."""
        for sid, proc in list(self._supervisors.items()):
            if proc.poll() is None:
                continue
            del self._supervisors[sid]
            folder = common.job_dir(self.session_dir, sid)
            info = common.read_info(folder)
            if info is not None and not info.status.is_terminal():
                info.status = JobStatus.FAILED
                info.end_time = int(time.time() * 1000)
                info.message = (f"its supervisor exited (status {proc.returncode}) without an outcome; see "
                                f"{folder}/supervisor.log")
                common.write_info(folder, info)

    def stop_all(self) -> None:
        for proc in self._supervisors.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
