"""From classes to actors: a Counter whose state lives in its own worker process; its methods
run there one at a time.

    python examples/counter_actor.py
"""

import quanta as ray

ray.init()


@ray.remote
class Counter(object):
    def __init__(self):
        self.x = 0

    def inc(self):
        self.x += 1

    def get_value(self):
        return self.x


c = Counter.remote()                  # starts the actor process
print(ray.get(c.get_value.remote()))  # 0
c.inc.remote()
c.inc.remote()
print(ray.get(c.get_value.remote()))  # 2: calls from one caller run in order
assert ray.get(c.get_value.remote()) == 2
ray.shutdown()
