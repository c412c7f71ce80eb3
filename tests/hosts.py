"""Real hosts for multi-host tests: network, mount and pid namespaces on this machine.

Each `Host` is a network namespace with its own IP on a veth pair (`ip netns`, so traffic to
another host really crosses a TCP connection between two network stacks), plus its own mount
and pid namespaces (`unshare -m -p -f --mount-proc`) with private /tmp, /dev/shm, /proc and
HOME, so nothing can pass through a shared file, Unix socket, shared-memory file or /proc
entry. Inside runs a small agent (AGENT below, fed through `python -c`, since the test tree may
itself live under /tmp) that executes the commands the test sends it, one JSON line each.

Needs root and iproute2/util-linux; `require_namespaces()` skips with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import uuid

import pytest

AGENT = textwrap.dedent(r'''
    import json, os, signal, subprocess, sys
    procs = {}

    def reap():
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return

    for line in sys.stdin:
        req = json.loads(line)
        reply = {"ok": True}
        try:
            env = dict(os.environ, **req.get("env", {}))
            op = req["op"]
            if op == "run":
                p = subprocess.run(req["argv"], env=env, capture_output=True, text=True,
                                   timeout=req.get("timeout", 120), input=req.get("input"))
                reply.update(rc=p.returncode, stdout=p.stdout, stderr=p.stderr)
            elif op == "spawn":
                log = open(req["log"], "w") if req.get("log") else subprocess.DEVNULL
                procs[req["name"]] = subprocess.Popen(req["argv"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                                      stdin=subprocess.DEVNULL, start_new_session=True)
                reply.update(pid=procs[req["name"]].pid)
            elif op == "signal":
                p = procs.get(req["name"])
                if p is not None and p.poll() is None:
                    os.killpg(p.pid, req.get("signal", 15))
            elif op == "poll":
                p = procs.get(req["name"])
                reply.update(rc=None if p is None else p.poll())
            else:
                raise ValueError("unknown op " + op)
        except Exception as e:
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        reap()
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
''')


def require_namespaces():
    if os.geteuid() != 0:
        pytest.skip("multi-host tests need root (network namespaces and mounts)")
    for tool in ("ip", "unshare"):
        if shutil.which(tool) is None:
            pytest.skip(f"multi-host tests need `{tool}` (Debian: iproute2 / util-linux)")
    probe = subprocess.run(["unshare", "-m", "-p", "-f", "--mount-proc", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"unshare of mount and pid namespaces is not allowed here: {probe.stderr.decode().strip()}")


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


class Host:
    """One host: `run`, `python`, `spawn` commands inside its namespaces."""

    def __init__(self, netns: str, ip: str, env: dict):
        self.netns = netns
        self.ip = ip
        self.env = dict(env)
        boot = (
            "mount -t tmpfs -o mode=1777 tmpfs /tmp && mount -t tmpfs -o mode=1777 tmpfs /dev/shm && "
            "mkdir -p /tmp/home && chmod 700 /tmp/home && "
            f"exec {sys.executable} -u -c \"$QUANTA_HOST_AGENT\"")
        agent_env = dict(os.environ, QUANTA_HOST_AGENT=AGENT, HOME="/tmp/home", TMPDIR="/tmp",
                         PYTHONDONTWRITEBYTECODE="1")
        for var in ("QUANTA_AUTH_TOKEN", "QUANTA_AUTH_TOKEN_PATH", "QUANTA_ADDRESS", "QUANTA_RUNTIME_DIR"):
            agent_env.pop(var, None)
        self._agent = subprocess.Popen(
            ["ip", "netns", "exec", netns, "unshare", "-m", "-p", "-f", "--mount-proc", "sh", "-c", boot],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=agent_env)

    def _call(self, **req):
        req["env"] = {**self.env, **req.get("env", {})}
        self._agent.stdin.write(json.dumps(req) + "\n")
        self._agent.stdin.flush()
        line = self._agent.stdout.readline()
        if not line:
            raise RuntimeError(f"the agent of host {self.ip} died (exit {self._agent.poll()})")
        reply = json.loads(line)
        if not reply["ok"]:
            raise RuntimeError(f"host {self.ip}: {reply['error']}")
        return reply

    def run(self, argv, *, env=None, timeout=120, check=False, input=None):
        r = self._call(op="run", argv=list(argv), env=env or {}, timeout=timeout, input=input)
        if check and r["rc"] != 0:
            raise AssertionError(f"{argv} on {self.ip} failed ({r['rc']}):\n{r['stdout']}\n{r['stderr']}")
        return r

    def python(self, code, *, env=None, timeout=120, check=True):
        """Runs `code` in a fresh interpreter on this host; returns its stdout."""
        r = self.run([sys.executable, "-c", textwrap.dedent(code)], env=env, timeout=timeout)
        if check and r["rc"] != 0:
            raise AssertionError(f"python on {self.ip} failed ({r['rc']}):\n{r['stdout']}\n{r['stderr']}")
        return r["stdout"]

    def quanta(self, *args, env=None, timeout=120, check=True):
        return self.run([sys.executable, "-m", "quanta.scripts", *args], env=env, timeout=timeout, check=check)

    def spawn(self, name, argv, *, env=None, log=None):
        return self._call(op="spawn", name=name, argv=list(argv), env=env or {}, log=log)["pid"]

    def signal(self, name, sig=15):
        self._call(op="signal", name=name, signal=sig)

    def close(self):
        try:
            self.run(["sh", "-c", f"{sys.executable} -m quanta.scripts stop --force >/dev/null 2>&1; true"], timeout=30)
        except Exception:
            pass
        if self._agent.poll() is None:
            self._agent.stdin.close()  # the agent (pid 1 of its pid namespace) exits: all in it die
            try:
                self._agent.wait(10)
            except subprocess.TimeoutExpired:
                self._agent.kill()


class Network:
    """Hosts on one link: 10.77.x.1, 10.77.x.2, ... each in its own namespaces."""

    def __init__(self, count: int, token: str):
        self.tag = uuid.uuid4().hex[:5]
        self.subnet = 77
        self.hosts: list[Host] = []
        self._netns: list[str] = []
        self._bridge = None
        try:
            self._build(count, token)
        except BaseException:
            self.close()
            raise

    def _build(self, count, token):
        # A bridge in its own namespace joins every host's veth, like a switch.
        switch = f"qsw{self.tag}"
        _ip("netns", "add", switch)
        self._netns.append(switch)
        _ip("-n", switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", switch, "link", "set", "br0", "up")
        for i in range(count):
            ns = f"qh{self.tag}{i}"
            _ip("netns", "add", ns)
            self._netns.append(ns)
            a, b = f"qa{self.tag}{i}", f"qb{self.tag}{i}"
            _ip("link", "add", a, "type", "veth", "peer", "name", b)
            _ip("link", "set", a, "netns", ns)
            _ip("link", "set", b, "netns", switch)
            _ip("-n", switch, "link", "set", b, "master", "br0")
            _ip("-n", switch, "link", "set", b, "up")
            ip = f"10.{self.subnet}.0.{i + 1}"
            _ip("-n", ns, "addr", "add", f"{ip}/24", "dev", a)
            _ip("-n", ns, "link", "set", a, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            self.hosts.append(Host(ns, ip, {"QUANTA_AUTH_TOKEN": token}))

    def unplug(self, host: Host):
        """Takes the host's link down: no FIN, no RST reaches anyone, as with a pulled cable."""
        i = self.hosts.index(host)
        _ip("-n", f"qsw{self.tag}", "link", "set", f"qb{self.tag}{i}", "down")

    def close(self):
        for h in self.hosts:
            h.close()
        for ns in self._netns:
            _ip("netns", "delete", ns, check=False)
