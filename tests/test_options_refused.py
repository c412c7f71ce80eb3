"""Ray options that Quanta does not implement are refused with a clear error naming them,
never accepted and ignored; their default values are accepted (they are what Quanta does)."""

import pytest

import quanta


def f():
    return 1


class A:
    pass


@pytest.mark.parametrize("option,value", [
    ("runtime_env", {"env_vars": {"A": "1"}}), ("max_calls", 3),
    ("_metadata", {"k": "v"}),
])
def test_task_options_not_implemented_are_refused(option, value):
    with pytest.raises(ValueError, match=f"option {option}=.* is not supported"):
        quanta.remote(**{option: value})(f)
    with pytest.raises(ValueError, match=option):
        quanta.remote(f).options(**{option: value})


@pytest.mark.parametrize("option,value", [
    ("runtime_env", {"pip": ["x"]}), ("max_pending_calls", 10), ("allow_out_of_order_execution", True),
])
def test_actor_options_not_implemented_are_refused(option, value):
    with pytest.raises(ValueError, match=f"option {option}=.* is not supported"):
        quanta.remote(**{option: value})(A)


@pytest.mark.parametrize("option,value", [
    ("runtime_env", None), ("runtime_env", {}), ("accelerator_type", None), ("max_calls", 0),
    ("enable_task_events", True),
])
def test_defaults_are_accepted(option, value):
    quanta.remote(**{option: value})(f)


def test_actor_defaults_are_accepted():
    quanta.remote(max_pending_calls=-1, allow_out_of_order_execution=False)(A)


@pytest.mark.parametrize("key,value", [
    ("runtime_env", {"working_dir": "."}), ("local_mode", True), ("job_config", object()),
    ("storage", "/tmp/x"), ("logging_format", "%(message)s"),
])
def test_init_arguments_not_implemented_are_refused(no_cluster, key, value):
    with pytest.raises(ValueError, match=rf"quanta.init\({key}=.*\) is not supported"):
        quanta.init(num_cpus=1, **{key: value})
    assert not quanta.is_initialized()
