"""Ray options that Quanta does not implement are refused with a clear error naming them,
never accepted and ignored; their default values are accepted (they are what Quanta does)."""

import pytest

import quanta


def f():
    return 1


class A:
    pass


@pytest.mark.parametrize("option,value", [
    ("max_calls", 3), ("_metadata", {"k": "v"}),
])
def test_task_options_not_implemented_are_refused(option, value):
    with pytest.raises(ValueError, match=f"option {option}=.* is not supported"):
        quanta.remote(**{option: value})(f)
    with pytest.raises(ValueError, match=option):
        quanta.remote(f).options(**{option: value})


@pytest.mark.parametrize("option,value", [
    ("max_pending_calls", 10), ("allow_out_of_order_execution", True),
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


@pytest.mark.parametrize("env", [{"conda": "env"}, {"container": {"image": "x"}}, {"image_uri": "x"},
                                 {"uv": ["x"]}, {"my_plugin": 1}])
def test_runtime_env_fields_not_implemented_are_refused(no_cluster, env):
    with pytest.raises(ValueError, match=r"runtime_env field\(s\) .* are not supported; Quanta supports"):
        quanta.remote(runtime_env=env)(f)
    with pytest.raises(ValueError, match="not supported"):
        quanta.remote(runtime_env=env)(A)
    with pytest.raises(ValueError, match="not supported"):
        quanta.init(num_cpus=1, runtime_env=env)
    assert not quanta.is_initialized()


def test_actor_defaults_are_accepted():
    quanta.remote(max_pending_calls=-1, allow_out_of_order_execution=False)(A)


@pytest.mark.parametrize("key,value", [
    ("local_mode", True), ("job_config", object()),
    ("storage", "/tmp/x"), ("logging_format", "%(message)s"),
])
def test_init_arguments_not_implemented_are_refused(no_cluster, key, value):
    with pytest.raises(ValueError, match=rf"quanta.init\({key}=.*\) is not supported"):
        quanta.init(num_cpus=1, **{key: value})
    assert not quanta.is_initialized()
