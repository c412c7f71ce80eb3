"""Runs every example in this folder, one process each, and says which passed.

    python examples/run_all.py            # as written (message_actor.py runs ~100 s)
    python examples/run_all.py --quick    # message_actor.py with 5 rounds
"""

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# In the tutorial's order.
EXAMPLES = ["parallel_tasks.py", "task_dependencies.py", "aggregation.py", "counter_actor.py",
            "message_actor.py"]


def main(argv) -> int:
    extra = ["--quick"] if "--quick" in argv else []
    failed = []
    for name in EXAMPLES:
        print(f"\n=== {name} ===", flush=True)
        start = time.time()
        code = subprocess.call([sys.executable, os.path.join(HERE, name), *extra])
        print(f"--- {name}: {'ok' if code == 0 else f'FAILED (exit code {code})'} in {time.time() - start:.1f} s",
              flush=True)
        if code != 0:
            failed.append(name)
    if failed:
        print(f"\n{len(failed)} of {len(EXAMPLES)} examples failed: {', '.join(failed)}")
        return 1
    print(f"\nAll {len(EXAMPLES)} tutorial examples ran.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
