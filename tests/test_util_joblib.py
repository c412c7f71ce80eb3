"""quanta.util.joblib: scikit-learn's n_jobs work on Quanta through joblib.

Real scikit-learn model selection (cross_validate, GridSearchCV) under
`joblib.parallel_backend("quanta")`: the answers must equal a sequential run, and every fit must
have run in a Quanta worker process (not the driver, not a loky worker). Also the "ray" alias,
n_jobs and ray_remote_args limits, errors, and refused options.
"""

import os
import time

import joblib
import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_validate

import quanta
from quanta.util.joblib import register_quanta, register_ray


class PidRecordingClassifier(ClassifierMixin, BaseEstimator):
    """A logistic regression that remembers which process fitted it."""

    def __init__(self, C=1.0):
        self.C = C

    def fit(self, X, y):
        self.model_ = LogisticRegression(C=self.C, max_iter=1000).fit(X, y)
        # Long enough that joblib's auto-batching keeps one fit per task (it groups tasks that
        # finish in under 0.2 s), so the fits can spread over the workers.
        time.sleep(0.25)
        self.classes_ = self.model_.classes_
        self.fit_pid_ = os.getpid()
        return self

    def predict(self, X):
        return self.model_.predict(X)


def fit_pid(estimator, X, y):
    return estimator.fit_pid_


def is_quanta_worker(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return b"quanta._private.worker_main" in f.read()


@quanta.remote
class Tracker:
    def __init__(self):
        self.running = self.peak = 0

    def enter(self):
        self.running += 1
        self.peak = max(self.peak, self.running)

    def leave(self):
        self.running -= 1

    def get_peak(self):
        return self.peak


def tracked_sleep(tracker, seconds):
    import time

    # No get() here: a task blocked in get() lends its CPU to other tasks, which would let more
    # of them run at once than the CPUs allow.
    tracker.enter.remote()
    time.sleep(seconds)
    tracker.leave.remote()
    return os.getpid()


def fail_on_three(x):
    if x == 3:
        raise ArithmeticError("three is not allowed")
    return x


@pytest.fixture
def data():
    return load_iris(return_X_y=True)


@pytest.fixture
def backend(cluster):
    register_quanta()


def test_cross_validate_fits_run_in_quanta_workers(backend, data):
    X, y = data
    with joblib.parallel_backend("quanta", n_jobs=2):
        out = cross_validate(PidRecordingClassifier(), X, y, cv=4, return_estimator=True)
    pids = {est.fit_pid_ for est in out["estimator"]}
    assert os.getpid() not in pids
    assert all(is_quanta_worker(p) for p in pids)
    sequential = cross_validate(PidRecordingClassifier(), X, y, cv=4)
    assert np.allclose(out["test_score"], sequential["test_score"])


def test_grid_search_gives_the_sequential_answer_from_quanta_workers(backend, data):
    X, y = data
    grid = {"C": [0.01, 0.1, 1.0, 10.0]}
    scoring = {"acc": "accuracy", "pid": fit_pid}
    with joblib.parallel_backend("quanta"):
        search = GridSearchCV(PidRecordingClassifier(), grid, cv=3, n_jobs=-1, scoring=scoring,
                              refit="acc").fit(X, y)
    plain = GridSearchCV(PidRecordingClassifier(), grid, cv=3, scoring="accuracy").fit(X, y)
    assert search.best_params_ == plain.best_params_
    assert np.allclose(search.cv_results_["mean_test_acc"], plain.cv_results_["mean_test_score"])
    pids = {int(search.cv_results_[f"split{i}_test_pid"][j]) for i in range(3) for j in range(4)}
    assert os.getpid() not in pids and all(is_quanta_worker(p) for p in pids)
    assert len(pids) >= 2  # 12 fits spread over several workers


def test_the_ray_name_and_register_ray_work_too(cluster):
    register_ray()
    with joblib.parallel_backend("ray"):
        pids = joblib.Parallel()(joblib.delayed(os.getpid)() for _ in range(16))
    assert os.getpid() not in pids and all(is_quanta_worker(p) for p in set(pids))
    with joblib.parallel_backend("quanta", n_jobs=-1) as (backend, n_jobs):
        assert backend.effective_n_jobs(-1) == 4 and backend.effective_n_jobs(-2) == 3


def test_n_jobs_and_ray_remote_args_bound_how_many_run_at_once(backend):
    for options, n_jobs, expected in (({}, 2, 2), ({"ray_remote_args": {"num_cpus": 2}}, 4, 2)):
        tracker = Tracker.remote()
        with joblib.parallel_backend("quanta", n_jobs=n_jobs, **options):
            pids = joblib.Parallel()(joblib.delayed(tracked_sleep)(tracker, 1.0) for _ in range(6))
        assert quanta.get(tracker.get_peak.remote()) == expected
        assert all(is_quanta_worker(p) for p in set(pids))


def test_an_error_in_one_call_is_raised_by_parallel(backend):
    with joblib.parallel_backend("quanta", n_jobs=2):
        with pytest.raises(ArithmeticError, match="three is not allowed"):
            joblib.Parallel()(joblib.delayed(fail_on_three)(i) for i in range(8))
        # the backend is usable again afterwards
        assert joblib.Parallel()(joblib.delayed(abs)(-i) for i in range(4)) == [0, 1, 2, 3]


def test_unknown_backend_options_are_refused(backend):
    with pytest.raises(TypeError, match="only option is ray_remote_args"):
        with joblib.parallel_backend("quanta", num_workers=3):
            pass
    with pytest.raises(TypeError, match="ray_remote_args must be a dict"):
        with joblib.parallel_backend("quanta", ray_remote_args=2):
            pass
