"""Worker output (print, stderr, logging) is streamed to the driver as ``(task_name pid=N) text``.

One driver program runs all the printing tasks; the tests read its merged stdout/stderr.
"""

import re

import pytest

from conftest import Driver, descendants, run_driver, strip_ansi

pytestmark = pytest.mark.subprocess_driver

PRINTING_DRIVER = """
import logging, os, sys, quanta
quanta.init(num_cpus=2)

@quanta.remote
def say_hello(n):
    print("hello from task", n)
    return os.getpid()

@quanta.remote
def to_stderr():
    print("complaint on stderr", file=sys.stderr)
    return os.getpid()

@quanta.remote
def uses_logging():
    logging.getLogger("user.module").warning("a logged warning")
    return os.getpid()

@quanta.remote
def two_lines():
    print("first line\\nsecond line")
    return os.getpid()

@quanta.remote
def tagged(tag):
    import time
    time.sleep(1)
    print("tagged output", tag)
    return os.getpid()

print("PID say_hello", quanta.get(say_hello.remote(7)), flush=True)
print("PID to_stderr", quanta.get(to_stderr.remote()), flush=True)
print("PID uses_logging", quanta.get(uses_logging.remote()), flush=True)
print("PID two_lines", quanta.get(two_lines.remote()), flush=True)
a, b = quanta.get([tagged.remote("A"), tagged.remote("B")])
print("PID tagged_A", a, flush=True)
print("PID tagged_B", b, flush=True)
print("DRIVER-DONE", flush=True)
sys.stdin.readline()
"""

EXPECTED = {
    "say_hello": ("say_hello", "hello from task 7"),
    "to_stderr": ("to_stderr", "complaint on stderr"),
    "uses_logging": ("uses_logging", "a logged warning"),
    "two_lines": ("two_lines", "second line"),
    "tagged_A": ("tagged", "tagged output A"),
    "tagged_B": ("tagged", "tagged output B"),
}


@pytest.fixture(scope="module")
def streamed():
    """Run the printing driver; return (task pids by key, driver output lines without colour)."""
    d = Driver(PRINTING_DRIVER)
    try:
        d.wait_for("DRIVER-DONE", timeout=120)
        d.tracked |= descendants(d.pid)
        pids = {}
        for key, (task, text) in EXPECTED.items():
            pids[key] = int(d.wait_for(rf"PID {key} (\d+)", timeout=5).group(1))
        # Output is streamed asynchronously: give every expected line up to 20 s to arrive.
        for key, (task, text) in EXPECTED.items():
            try:
                d.wait_for(rf"\({task} pid={pids[key]}\) .*{re.escape(text)}", timeout=20)
            except AssertionError:
                pass  # the individual test reports it
        d.send("bye")
        d.wait_exit(timeout=60)
        return pids, [strip_ansi(line) for line in d.lines]
    finally:
        d.close()


def _prefixed_lines(lines, task, pid):
    prefix = f"({task} pid={pid}) "
    return [line[line.index(prefix) + len(prefix) :] for line in lines if prefix in line]


@pytest.mark.parametrize("key", ["say_hello", "to_stderr", "uses_logging"])
def test_output_line_is_prefixed_with_task_name_and_pid(streamed, key):
    pids, lines = streamed
    task, text = EXPECTED[key]
    got = _prefixed_lines(lines, task, pids[key])
    assert any(text in line for line in got), (
        f"expected a line '({task} pid={pids[key]}) ...{text}' in driver output:\n" + "\n".join(lines)
    )


def test_print_output_is_exact_after_prefix(streamed):
    pids, lines = streamed
    assert "hello from task 7" in _prefixed_lines(lines, "say_hello", pids["say_hello"])


def test_each_line_of_multiline_output_is_prefixed(streamed):
    pids, lines = streamed
    got = _prefixed_lines(lines, "two_lines", pids["two_lines"])
    assert "first line" in got and "second line" in got, "\n".join(lines)


def test_concurrent_tasks_are_told_apart_by_pid(streamed):
    pids, lines = streamed
    assert pids["tagged_A"] != pids["tagged_B"], "the two sleeping tasks should run in parallel"
    assert "tagged output A" in _prefixed_lines(lines, "tagged", pids["tagged_A"])
    assert "tagged output B" in _prefixed_lines(lines, "tagged", pids["tagged_B"])


def test_log_to_driver_false_turns_streaming_off():
    proc = run_driver(
        """
        import time, quanta
        quanta.init(num_cpus=1, log_to_driver=False)

        @quanta.remote
        def chatty():
            print("worker-output-that-must-not-be-streamed")
            return 42

        print("RESULT", quanta.get(chatty.remote()), flush=True)
        time.sleep(2)  # time for any streamed output to show up
        print("DRIVER-DONE", flush=True)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "RESULT 42" in proc.stdout and "DRIVER-DONE" in proc.stdout
    assert "worker-output-that-must-not-be-streamed" not in proc.stdout + proc.stderr
