"""The actor examples of the seed tutorial (seeds/ray-tutorial.md): Counter, and MessageActor with
three worker tasks pushing messages while the driver polls.

The MessageActor runs use fewer rounds and shorter sleeps than the seed (100 x 1 s) to stay fast.
One test runs the examples as a program written for Ray (`import quanta as ray`).
"""

import re
import time

import pytest

import quanta
from conftest import run_driver


def define_message_actor():
    @quanta.remote
    class MessageActor(object):
        def __init__(self):
            self.messages = []

        def add_message(self, message):
            self.messages.append(message)

        def get_and_clear_messages(self):
            messages = self.messages
            self.messages = []
            return messages

    return MessageActor


def parse(message):
    m = re.fullmatch(r"Message (\d+) from worker (\d+)\.", message)
    assert m, f"unexpected message {message!r}"
    return int(m.group(2)), int(m.group(1))


def collect(message_actor, expected, poll_s, timeout=30.0):
    """Poll like the seed's driver loop until ``expected`` messages arrived; return the polls."""
    polls, count = [], 0
    deadline = time.monotonic() + timeout
    while count < expected and time.monotonic() < deadline:
        new_messages = quanta.get(message_actor.get_and_clear_messages.remote())
        assert isinstance(new_messages, list)
        polls.append(new_messages)
        count += len(new_messages)
        time.sleep(poll_s)
    return polls


def assert_each_worker_in_order(polls, workers, rounds):
    per_worker = {j: [] for j in range(workers)}
    for batch in polls:
        for message in batch:
            worker, i = parse(message)
            per_worker[worker].append(i)
    for j in range(workers):
        assert per_worker[j] == list(range(rounds)), f"worker {j}'s messages: {per_worker[j]}"


def test_counter_example(cluster):
    @quanta.remote
    class Counter(object):
        def __init__(self):
            self.x = 0

        def inc(self):
            self.x += 1

        def get_value(self):
            return self.x

    # Create an actor process.
    c = Counter.remote()

    # Check the actor's counter value.
    assert quanta.get(c.get_value.remote()) == 0

    # Increment the counter twice and check the value again.
    c.inc.remote()
    c.inc.remote()
    assert quanta.get(c.get_value.remote()) == 2


def test_message_actor_example(cluster):
    MessageActor = define_message_actor()
    rounds, workers = 5, 3

    # Define a remote function which loops around and pushes messages to the actor.
    @quanta.remote
    def worker(message_actor, j):
        for i in range(rounds):
            time.sleep(0.1)
            message_actor.add_message.remote("Message {} from worker {}.".format(i, j))

    # Create a message actor.
    message_actor = MessageActor.remote()

    # Start 3 tasks that push messages to the actor (fire and forget, as in the seed).
    [worker.remote(message_actor, j) for j in range(workers)]

    # Periodically get the messages.
    polls = collect(message_actor, rounds * workers, poll_s=0.1)

    assert sum(len(p) for p in polls) == rounds * workers, f"polls: {polls}"
    assert_each_worker_in_order(polls, workers, rounds)
    assert len(polls) >= 2, "messages should arrive over several polls while workers push"
    assert quanta.get(message_actor.get_and_clear_messages.remote()) == [], "nothing extra arrives"


def test_message_actor_many_messages_without_sleeps(cluster):
    """Each worker's messages stay in its own order even when they are pushed back to back."""
    MessageActor = define_message_actor()
    rounds, workers = 300, 3

    @quanta.remote
    def worker(message_actor, j):
        for i in range(rounds):
            message_actor.add_message.remote("Message {} from worker {}.".format(i, j))
        return j

    message_actor = MessageActor.remote()
    done = [worker.remote(message_actor, j) for j in range(workers)]
    polls = collect(message_actor, rounds * workers, poll_s=0.01)
    assert quanta.get(done) == list(range(workers))
    assert sum(len(p) for p in polls) == rounds * workers
    assert_each_worker_in_order(polls, workers, rounds)


SEED_PROGRAM = """
import quanta as ray
import time

ray.init(num_cpus=4)

@ray.remote
class Counter(object):
    def __init__(self):
        self.x = 0

    def inc(self):
        self.x += 1

    def get_value(self):
        return self.x

c = Counter.remote()
print("COUNTER", ray.get(c.get_value.remote()))
c.inc.remote()
c.inc.remote()
print("COUNTER", ray.get(c.get_value.remote()))

@ray.remote
class MessageActor(object):
    def __init__(self):
        self.messages = []

    def add_message(self, message):
        self.messages.append(message)

    def get_and_clear_messages(self):
        messages = self.messages
        self.messages = []
        return messages

@ray.remote
def worker(message_actor, j):
    for i in range(4):
        time.sleep(0.2)
        message_actor.add_message.remote(
            "Message {} from worker {}.".format(i, j))

message_actor = MessageActor.remote()
[worker.remote(message_actor, j) for j in range(3)]

received = 0
for _ in range(100):  # the seed polls 100 times; stop early once all 12 messages are in
    new_messages = ray.get(message_actor.get_and_clear_messages.remote())
    print("New messages:", new_messages)
    received += len(new_messages)
    if received == 12:
        break
    time.sleep(0.2)
time.sleep(0.3)
print("New messages:", ray.get(message_actor.get_and_clear_messages.remote()))
"""


@pytest.mark.subprocess_driver
def test_seed_actor_program_runs_with_import_quanta_as_ray():
    proc = run_driver(SEED_PROGRAM, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.findall(r"^COUNTER (\d+)$", proc.stdout, re.M) == ["0", "2"]
    received = []
    for line in proc.stdout.splitlines():
        if line.startswith("New messages: "):
            received.extend(re.findall(r"Message \d+ from worker \d+\.", line))
    assert len(received) == 12, proc.stdout
    assert_each_worker_in_order([received], 3, 4)
