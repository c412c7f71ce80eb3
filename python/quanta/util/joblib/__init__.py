"""quanta.util.joblib: run joblib (and so scikit-learn's n_jobs) on Quanta.

    import joblib
    from quanta.util.joblib import register_quanta

    register_quanta()
    with joblib.parallel_backend("quanta"):
        GridSearchCV(model, grid, n_jobs=-1).fit(X, y)   # the fits run in Quanta workers

`register_quanta()` registers the backend under the names "quanta" and "ray";
`register_ray` is the same function, under Ray's name (ray.util.joblib.register_ray).
"""


def register_quanta():
    """Registers the Quanta joblib backend as "quanta" and as "ray"."""
    from joblib.parallel import register_parallel_backend

    from quanta.util.joblib.backend import QuantaBackend

    register_parallel_backend("quanta", QuantaBackend)
    register_parallel_backend("ray", QuantaBackend)


register_ray = register_quanta

__all__ = ["register_quanta", "register_ray"]
