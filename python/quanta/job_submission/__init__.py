"""Jobs: run a driver program on the head of a cluster, from anywhere that reaches its
dashboard (Ray's ray.job_submission, same names). See sdk.py for the client, manager.py and
supervisor.py for the head's side, and `quanta job --help` for the command line.

The names are imported on first use, so that the `quanta` command line (which loads cli.py
from here) does not pay for the HTTP client's imports on every call.
"""

_NAMES = {
    "JobInfo": "quanta.job_submission.common",
    "JobDetails": "quanta.job_submission.common",  # Ray's list_jobs record; one type serves both
    "JobStatus": "quanta.job_submission.common",
    "JobSubmissionClient": "quanta.job_submission.sdk",
    "JobSubmissionError": "quanta.job_submission.sdk",
}

__all__ = ["JobSubmissionClient", "JobSubmissionError", "JobStatus", "JobInfo", "JobDetails"]


def __getattr__(name):
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'quanta.job_submission' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), "JobInfo" if name == "JobDetails" else name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
