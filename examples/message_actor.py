"""Actor handles: three tasks hold a handle to one MessageActor and push a message each second;
the driver collects what arrived, once a second, for 100 seconds.

    python examples/message_actor.py            # as in the tutorial: about 100 s
    python examples/message_actor.py --quick    # 5 rounds
"""

import sys
import time

import quanta as ray

ROUNDS = 5 if "--quick" in sys.argv else 100

ray.init()


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
    # The handle was passed as an argument: this task calls the same actor as the driver.
    for i in range(ROUNDS):
        time.sleep(1)
        message_actor.add_message.remote("Message {} from worker {}.".format(i, j))


message_actor = MessageActor.remote()
[worker.remote(message_actor, j) for j in range(3)]

received = []
for _ in range(ROUNDS):
    new_messages = ray.get(message_actor.get_and_clear_messages.remote())
    print("New messages:", new_messages)
    received += new_messages
    time.sleep(1)
assert received, "the workers' messages should have reached the actor"
ray.shutdown()
