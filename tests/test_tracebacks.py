"""Remote tracebacks name the user's files and show their source lines, even for functions
and classes shipped by value (cloudpickle replaces their file names)."""

import os

import pytest

import quanta


def test_task_traceback_shows_file_and_source_line(cluster):
    @quanta.remote
    def outer():
        def inner():
            raise ValueError("boom from inner")

        return inner()

    with pytest.raises(ValueError) as info:
        quanta.get(outer.remote())
    text = str(info.value)
    assert os.path.basename(__file__) in text, text
    assert 'raise ValueError("boom from inner")' in text, text
    assert "in inner" in text and "in outer" in text, text
    assert "<dynamic-code>" not in text, text


def test_actor_constructor_traceback_shows_file(cluster):
    @quanta.remote
    class Broken:
        def __init__(self):
            raise KeyError("no config")

        def ping(self):
            return 1

    with pytest.raises(quanta.exceptions.ActorDiedError) as info:
        quanta.get(Broken.remote().ping.remote())
    text = str(info.value)
    assert os.path.basename(__file__) in text and 'raise KeyError("no config")' in text, text
