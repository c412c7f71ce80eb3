"""Jobs: run a driver program on the head of a cluster, from anywhere that reaches its
dashboard (Ray's ray.job_submission, same names). See sdk.py for the client, manager.py and
supervisor.py for the head's side, and `quanta job --help` for the command line.
"""

from quanta.job_submission.common import JobInfo, JobStatus
from quanta.job_submission.sdk import JobSubmissionClient, JobSubmissionError

JobDetails = JobInfo  # Ray returns JobDetails from list_jobs; one record type serves both here

__all__ = ["JobSubmissionClient", "JobSubmissionError", "JobStatus", "JobInfo", "JobDetails"]
