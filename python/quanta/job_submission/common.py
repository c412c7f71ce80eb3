"""What a submitted job is: its status, its record on the head, and where its files live.

A job submitted through the jobs API lives in `<head session>/jobs/<submission_id>/`: `info.json`
(its record, 0600, replaced atomically by whoever changes it: the job manager in the dashboard
creates it, the job's supervisor updates it), and `output.log` (+ `output.log.1`): the
entrypoint's stdout and stderr, bounded (see supervisor.py).
"""

from __future__ import annotations

import enum
import json
import os
import re
import secrets
from dataclasses import asdict, dataclass, field, fields


class JobStatus(str, enum.Enum):
    """Ray's job states: PENDING (waiting for its entrypoint resources or starting), RUNNING,
    STOPPED (by stop_job), SUCCEEDED (exit code 0), FAILED (anything else)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"

    def __str__(self) -> str:
        return self.value

    def is_terminal(self) -> bool:
        return self in (JobStatus.STOPPED, JobStatus.SUCCEEDED, JobStatus.FAILED)


@dataclass
class JobInfo:
    """A submitted job's record (Ray's JobDetails/JobInfo fields where they apply)."""

    submission_id: str
    entrypoint: str
    status: JobStatus = JobStatus.PENDING
    message: str | None = None
    start_time: int | None = None      # ms since the epoch
    end_time: int | None = None
    metadata: dict | None = None
    runtime_env: dict | None = None
    entrypoint_num_cpus: float | None = None
    entrypoint_num_gpus: float | None = None
    entrypoint_resources: dict | None = None
    driver_exit_code: int | None = None
    supervisor_pid: int | None = None
    entrypoint_pid: int | None = None
    driver_pids: list = field(default_factory=list)  # processes of the entrypoint's session (drivers among them)
    node_index: int | None = None      # the head node, where the entrypoint runs
    job_id: str | None = None          # the driver's job id, once known (filled in by readers)
    type: str = "SUBMISSION"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["status"] = str(self.status)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "JobInfo":
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        d["status"] = JobStatus(d.get("status", "PENDING"))
        return cls(**d)


SUBMISSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def new_submission_id() -> str:
    return "quantasubmit_" + secrets.token_hex(8)


def check_submission_id(submission_id: str) -> str:
    if not isinstance(submission_id, str) or not SUBMISSION_ID.match(submission_id):
        raise ValueError(f"invalid submission_id {submission_id!r}: use 1-128 letters, digits, '_', '-' or '.', "
                         "starting with a letter or digit")
    return submission_id


def jobs_dir(session_dir: str) -> str:
    return os.path.join(session_dir, "jobs")


def job_dir(session_dir: str, submission_id: str) -> str:
    return os.path.join(jobs_dir(session_dir), check_submission_id(submission_id))


def read_info(path: str) -> JobInfo | None:
    """The record in job folder `path`, or None if it is missing or unreadable."""
    try:
        fd = os.open(os.path.join(path, "info.json"), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        with os.fdopen(fd) as f:
            return JobInfo.from_dict(json.load(f))
    except (ValueError, TypeError, OSError):
        return None


def write_info(path: str, info: JobInfo) -> None:
    from quanta._private import runtime_dir

    runtime_dir.write_private(os.path.join(path, "info.json"), json.dumps(info.to_dict(), indent=1))


def list_infos(session_dir: str) -> list:
    root = jobs_dir(session_dir)
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return []
    out = []
    for name in names:
        if SUBMISSION_ID.match(name):
            info = read_info(os.path.join(root, name))
            if info is not None:
                out.append(info)
    return out
