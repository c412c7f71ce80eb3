"""Ctrl-C (SIGINT) interrupts a blocking get or wait in the driver, as in plain Python."""

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.subprocess_driver

DRIVER = textwrap.dedent("""
    import os, signal, threading, time
    # A test runner started in the background (nohup ... &) hands its children SIGINT ignored,
    # and Python then keeps it ignored; a terminal's Ctrl-C reaches a default handler.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    import quanta
    quanta.init(num_cpus=1)

    @quanta.remote
    def slow():
        time.sleep(60)

    ref = slow.remote()
    threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    start = time.time()
    try:
        quanta.{call}
    except KeyboardInterrupt:
        print("interrupted after %.1f s" % (time.time() - start), flush=True)
    quanta.cancel(ref, force=True)
    try:
        quanta.get(ref, timeout=10)
    except quanta.exceptions.TaskCancelledError:
        print("cancelled", flush=True)
""")


@pytest.mark.parametrize("call", ["get(ref)", "wait([ref])", "get(ref, timeout=30)"])
def test_sigint_interrupts_a_blocking_call(call):
    out = subprocess.run([sys.executable, "-c", DRIVER.replace("{call}", call)],
                         capture_output=True, text=True, timeout=60)
    assert "interrupted after" in out.stdout, out.stdout + out.stderr
    seconds = float(out.stdout.split("interrupted after ")[1].split()[0])
    assert seconds < 3, out.stdout
    assert "cancelled" in out.stdout, out.stdout + out.stderr
