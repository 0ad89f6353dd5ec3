"""JavaScript and TypeScript contexts: node-kernel.js in its own process, one vm context kept across runs."""
import json
import os
import queue
import signal
import subprocess
import threading
import time
import uuid

KERNEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node-kernel.js")
START_TIMEOUT_S = 30
# How long past its timeout a run may take to end by itself before the process is replaced.
GRACE_S = 5


class NodeKernel:
    def __init__(self, language, cwd, folder):
        self.language = language
        self.cwd = cwd
        self.proc = None
        self.events = None
        self.mutex = threading.Lock()

    def start(self):
        with self.mutex:
            if self.proc is not None and self.proc.poll() is None:
                return
            r, w = os.pipe()
            env = {**os.environ, "STASIS_EVENTS_FD": str(w), "NODE_PATH": "/usr/share/nodejs:/usr/lib/nodejs"}
            proc = subprocess.Popen(
                ["node", KERNEL, self.language], cwd=self.cwd, env=env, pass_fds=(w,), start_new_session=True,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )
            os.close(w)
            events = queue.Queue()
            threading.Thread(target=read_events, args=(os.fdopen(r, "rb"), events), daemon=True).start()
            for name, pipe in (("stdout", proc.stdout), ("stderr", proc.stderr)):
                threading.Thread(target=read_raw, args=(pipe, name, events), daemon=True).start()
            self.proc, self.events = proc, events
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                if self.events.get(timeout=0.2).get("type") == "ready":
                    return
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
        raise RuntimeError("the JavaScript kernel did not start")

    def run(self, code, env, timeout_s, emit, cancelled):
        self.start()
        run_id = str(uuid.uuid4())
        request = {"id": run_id, "code": code, "env": env}
        if timeout_s:
            request["timeoutMs"] = max(1, round(timeout_s * 1000))
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        self.proc.stdin.flush()
        started = time.monotonic()
        interrupted = False
        while True:
            if not interrupted and cancelled():
                interrupted = True
                self.interrupt()
            if timeout_s and time.monotonic() - started > timeout_s + GRACE_S:
                self.restart()
                emit({"type": "error", "name": "TimeoutError", "value": "the run did not stop at its timeout; the context was restarted", "traceback": ""})
                return
            try:
                event = self.events.get(timeout=0.1)
            except queue.Empty:
                if self.proc.poll() is not None:
                    emit({"type": "error", "name": "KernelDied", "value": f"the JavaScript kernel exited ({self.proc.returncode}); the next run starts a new one", "traceback": ""})
                    return
                continue
            if event.get("raw"):
                emit({"type": event["type"], "text": event["text"]})
                continue
            if event.get("id") != run_id:
                continue
            if event.get("type") == "done":
                return
            event.pop("id", None)
            emit(event)

    def interrupt(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)

    def restart(self):
        self.shutdown()
        self.start()

    def shutdown(self):
        with self.mutex:
            if self.proc is not None:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
                self.proc = None


def read_events(f, events):
    for line in f:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.put(event)


def read_raw(pipe, name, events):
    """Output written to fd 1/2 directly (child processes): passed to whichever run is current."""
    while True:
        chunk = pipe.read1(65536) if hasattr(pipe, "read1") else pipe.read(65536)
        if not chunk:
            return
        events.put({"raw": True, "type": name, "text": chunk.decode("utf-8", "replace")})
