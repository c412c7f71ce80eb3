"""Ray's ray.runtime_env: `RuntimeEnv`, a dict of runtime_env fields checked when it is built."""

from quanta._private.runtime_env import RuntimeEnv

__all__ = ["RuntimeEnv"]
