"""The supervisor of one submitted job: `python -m quanta.job_submission.supervisor JOB_DIR SESSION_DIR`.

Started by the job manager (in the dashboard process on the head) for each job; it

1. waits, if the job asked for entrypoint resources (entrypoint_num_cpus, ...), until a
   placeholder actor holding them runs on the head node (the job is PENDING until then), and
   holds them while the entrypoint runs;
2. runs the entrypoint (a shell command) in its own session, with QUANTA_ADDRESS naming the
   head so that its `quanta.init()` joins this cluster, in the job's working_dir if it has one,
   with runtime_env["env_vars"] added and the cluster's Python first on PATH;
3. copies its stdout and stderr into output.log, bounded: past MAX_LOG_BYTES
   (QUANTA_JOB_LOG_MAX_BYTES) the file becomes output.log.1 (replacing the older one), so a job
   never holds more than twice that;
4. records the entrypoint's processes (drivers among them, so the jobs table can link them) and
   the outcome: SUCCEEDED on exit code 0, FAILED otherwise (with the last lines of output),
   STOPPED after SIGTERM (sent by stop_job), which it passes to the entrypoint's whole session,
   then SIGKILL after STOP_GRACE_S.

It dies with the dashboard (PR_SET_PDEATHSIG), stopping the job.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import time

from quanta.job_submission import common
from quanta.job_submission.common import JobStatus

MAX_LOG_BYTES = int(os.environ.get("QUANTA_JOB_LOG_MAX_BYTES", str(32 << 20)))
STOP_GRACE_S = float(os.environ.get("QUANTA_JOB_STOP_GRACE_S", "3"))
MAX_DRIVER_PIDS = 64
FAILURE_TAIL_LINES = 20


def _now_ms() -> int:
    return int(time.time() * 1000)


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class BoundedLog:
    """Appends to `path`; past `max_bytes` the file moves to `path`.1 and a new one starts."""

    def __init__(self, path: str, max_bytes: int):
        self.path = path
        self.max_bytes = max(1024, max_bytes)
        self._open()

    def _open(self):
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        self.size = os.fstat(self.fd).st_size

    def write(self, data: bytes) -> None:
        while data:
            room = self.max_bytes - self.size
            if room <= 0:
                os.close(self.fd)
                os.replace(self.path, self.path + ".1")
                self._open()
                continue
            chunk = data[:room]
            os.write(self.fd, chunk)
            self.size += len(chunk)
            data = data[room:]

    def tail_lines(self, n: int) -> str:
        text = b""
        for p in (self.path + ".1", self.path):
            try:
                with open(p, "rb") as f:
                    f.seek(0, 2)
                    f.seek(max(0, f.tell() - 64 * 1024))
                    text += f.read()
            except OSError:
                pass
        return b"\n".join(text.splitlines()[-n:]).decode("utf-8", "replace")


def _session_members(sid: int) -> list:
    """Pids of the processes in session `sid` (the entrypoint and everything it started)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid:
                out.append(int(name))
        except (OSError, IndexError, ValueError):
            continue
    return sorted(out)


class Supervisor:
    def __init__(self, job_dir: str, session_dir: str):
        self.job_dir = job_dir
        self.session_dir = session_dir
        self.info = common.read_info(job_dir)
        if self.info is None:
            raise SystemExit(f"quanta job supervisor: no job record in {job_dir}")
        self.stopping = False
        self.child: subprocess.Popen | None = None
        self.log = BoundedLog(os.path.join(job_dir, "output.log"), MAX_LOG_BYTES)

    def save(self, **changes) -> None:
        for k, v in changes.items():
            setattr(self.info, k, v)
        common.write_info(self.job_dir, self.info)

    def on_term(self, signum, frame) -> None:
        self.stopping = True

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.on_term)
        signal.signal(signal.SIGINT, self.on_term)
        self.save(supervisor_pid=os.getpid())
        try:
            held = self.reserve()
        except Exception as e:  # the reservation could not be made: the job fails, saying why
            self.save(status=JobStatus.FAILED, end_time=_now_ms(), message=f"entrypoint resources: {e}")
            return 1
        if self.stopping:
            self.save(status=JobStatus.STOPPED, end_time=_now_ms(), message="stopped before it started")
            return 0
        try:
            return self.run_entrypoint()
        finally:
            if held:
                import quanta

                quanta.shutdown()

    def reserve(self) -> bool:
        """Holds the entrypoint's resources on the head node (a placeholder actor) if it asked."""
        i = self.info
        resources = dict(i.entrypoint_resources or {})
        if not (i.entrypoint_num_cpus or i.entrypoint_num_gpus or resources):
            return False
        import quanta
        from quanta.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        quanta.init(address=self.session_dir, log_to_driver=False)
        head = next(n for n in quanta.nodes() if n["IsHeadNode"])

        @quanta.remote
        class EntrypointResources:
            def ready(self):
                return True

        holder = EntrypointResources.options(
            num_cpus=i.entrypoint_num_cpus or 0, num_gpus=i.entrypoint_num_gpus or 0, resources=resources,
            scheduling_strategy=NodeAffinitySchedulingStrategy(head["NodeID"], soft=False)).remote()
        self.save(message="waiting for the entrypoint's resources on the head node")
        ref = holder.ready.remote()
        while not self.stopping:
            ready, _ = quanta.wait([ref], timeout=0.5)
            if ready:
                quanta.get(ref)
                self._holder = holder
                return True
        return True

    def run_entrypoint(self) -> int:
        i = self.info
        env = dict(os.environ)
        env.pop("QUANTA_AUTH_TOKEN", None)  # the driver joins through the local node; it needs no token
        env.update({str(k): str(v) for k, v in ((i.runtime_env or {}).get("env_vars") or {}).items()})
        # "python" in the entrypoint is the interpreter the cluster runs on (its venv, if any).
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", os.defpath)
        env["QUANTA_ADDRESS"] = self.session_dir
        env["QUANTA_JOB_SUBMISSION_ID"] = i.submission_id
        env.setdefault("PYTHONUNBUFFERED", "1")
        cwd = (i.runtime_env or {}).get("_working_dir_path") or os.getcwd()
        # The job's runtime_env is also the default of its tasks and actors: quanta.init() in
        # the entrypoint reads it (its working_dir is the unpacked copy, packed again from there).
        job_env = {k: v for k, v in (i.runtime_env or {}).items() if k in ("env_vars",) and v}
        if (i.runtime_env or {}).get("_working_dir_path"):
            job_env["working_dir"] = i.runtime_env["_working_dir_path"]
        if job_env:
            env["QUANTA_JOB_RUNTIME_ENV"] = json.dumps(job_env)
        read_fd, write_fd = os.pipe()
        try:
            umask = int(env.pop("QUANTA_JOB_UMASK", "-1"))
            self.child = subprocess.Popen(["/bin/sh", "-c", i.entrypoint], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                          stdout=write_fd, stderr=write_fd, start_new_session=True, close_fds=True,
                                          umask=umask)
        except OSError as e:
            os.close(read_fd)
            os.close(write_fd)
            self.save(status=JobStatus.FAILED, end_time=_now_ms(), message=f"cannot start the entrypoint: {e}")
            return 1
        os.close(write_fd)
        self.save(status=JobStatus.RUNNING, entrypoint_pid=self.child.pid, message=None,
                  driver_pids=[self.child.pid])
        killed_at = None
        last_scan = 0.0
        eof = False
        while True:
            if self.stopping and killed_at is None:
                self._signal_session(signal.SIGTERM)
                killed_at = time.monotonic()
            if killed_at is not None and time.monotonic() - killed_at > STOP_GRACE_S:
                self._signal_session(signal.SIGKILL)
            if not eof:
                try:
                    readable, _, _ = select.select([read_fd], [], [], 0.2)
                except InterruptedError:
                    readable = []
                if readable:
                    data = os.read(read_fd, 65536)
                    if data:
                        self.log.write(data)
                    else:
                        eof = True
            else:
                time.sleep(0.05)
            if time.monotonic() - last_scan > 0.5:
                last_scan = time.monotonic()
                self._record_members()
            code = self.child.poll()
            if code is not None and eof:
                break
            if code is not None and killed_at is not None and time.monotonic() - killed_at > STOP_GRACE_S:
                break  # a stopped job's stray process keeps the pipe open: do not wait for it
        os.close(read_fd)
        self._signal_session(signal.SIGKILL)  # nothing of the job outlives it
        code = self.child.returncode
        if self.stopping:
            self.save(status=JobStatus.STOPPED, end_time=_now_ms(), driver_exit_code=code,
                      message="stopped with stop_job()")
        elif code == 0:
            self.save(status=JobStatus.SUCCEEDED, end_time=_now_ms(), driver_exit_code=0,
                      message="the entrypoint exited with code 0")
        else:
            how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
            self.save(status=JobStatus.FAILED, end_time=_now_ms(), driver_exit_code=code,
                      message=f"the entrypoint {how}; its last output:\n{self.log.tail_lines(FAILURE_TAIL_LINES)}")
        return 0

    def _record_members(self) -> None:
        pids = _session_members(self.child.pid)
        known = list(self.info.driver_pids)
        new = [p for p in pids if p not in known]
        if new and len(known) < MAX_DRIVER_PIDS:
            self.save(driver_pids=(known + new)[:MAX_DRIVER_PIDS])

    def _signal_session(self, sig) -> None:
        try:
            os.killpg(self.child.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m quanta.job_submission.supervisor JOB_DIR SESSION_DIR", file=sys.stderr)
        return 2
    _die_with_parent()
    if os.getppid() == 1:
        return 1  # the dashboard is already gone
    return Supervisor(argv[0], argv[1]).run()


if __name__ == "__main__":
    sys.exit(main())
