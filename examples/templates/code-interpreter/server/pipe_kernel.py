"""Contexts whose kernel is a process of ours behind pipes: Python (ipython-kernel.py, IPython's shell)
and JavaScript/TypeScript (node-kernel.js, one vm context). Requests go in as JSON lines on stdin; events
come back as JSON lines on a pipe of their own (STASIS_EVENTS_FD), so output the code's child processes
write straight to fd 1/2 never corrupts them (it is passed on as the current run's output)."""
import itertools
import json
import os
import queue
import signal
import subprocess
import threading
import time

from kernel_process import KernelProcess

HERE = os.path.dirname(os.path.abspath(__file__))
START_TIMEOUT_S = 60
# How long an interrupted run may take to end before the kernel is replaced (code in C ignoring SIGINT).
GRACE_S = 5

# IPython display MIME types -> the field names of E2B's result lines.
MIME_FIELDS = {
    "text/plain": "text",
    "text/html": "html",
    "text/markdown": "markdown",
    "image/svg+xml": "svg",
    "image/png": "png",
    "image/jpeg": "jpeg",
    "application/pdf": "pdf",
    "text/latex": "latex",
    "application/json": "json",
    "application/javascript": "javascript",
    "e2b/data": "data",
    "e2b/chart": "chart",
}


def result_event(data, main):
    event = {"type": "result", "is_main_result": main}
    for mime, value in data.items():
        field = MIME_FIELDS.get(mime)
        if field:
            event[field] = value
        else:
            event.setdefault("extra", {})[mime] = value
    return event


class PipeKernel(KernelProcess):
    argv = None
    env = {}

    def __init__(self, language, cwd, folder):
        self.language = language
        self.cwd = cwd
        self.proc = None
        self.events = None
        self.mutex = threading.Lock()
        # Run ids: unique for this context's life, across its kernel's restarts.
        self.ids = itertools.count(1)

    def start(self):
        with self.mutex:
            if self.proc is not None and self.proc.poll() is None:
                return
            r, w = os.pipe()
            env = {**os.environ, **self.env, "STASIS_EVENTS_FD": str(w)}
            proc = subprocess.Popen(
                [*self.argv, self.language], cwd=self.cwd, env=env, pass_fds=(w,), start_new_session=True,
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
                    if proc.poll() is not None:
                        break
            self.proc = None
            raise RuntimeError(f"the {self.language} kernel did not start")

    def run(self, code, env, timeout_s, emit, cancelled, silent=False):
        """silent: not in the history, no execution count (a warm-up). emit(line, more=True): more lines
        follow at once, so this one may wait to go out with them."""
        self.start()
        # This run's process: a restart or a removal may replace or clear self.proc meanwhile.
        proc, events = self.proc, self.events
        run_id = str(next(self.ids))
        try:
            proc.stdin.write((json.dumps({"id": run_id, "code": code, "env": env, "silent": silent}) + "\n").encode())
            proc.stdin.flush()
        except OSError:
            self.shutdown()
            emit(error("KernelDied", f"the {self.language} kernel was gone; the next run starts a new one"))
            return
        started = time.monotonic()
        interrupted_at = None
        timed_out = False
        while True:
            now = time.monotonic()
            if interrupted_at is None:
                over = timeout_s is not None and now - started > timeout_s
                if over or cancelled():
                    timed_out, interrupted_at = over, now
                    self.interrupt()
            elif now - interrupted_at > GRACE_S:
                self.restart()
                emit(error("TimeoutError" if timed_out else "KeyboardInterrupt", "the run did not stop when interrupted; the context was restarted (its variables are gone)"))
                return
            try:
                batch = [events.get(timeout=0.05 if interrupted_at is None and timeout_s is None else 0.02)]
            except queue.Empty:
                if proc.poll() is not None:
                    if self.proc is proc:
                        self.proc = None
                    emit(error("KernelDied", f"the {self.language} kernel exited; the next run starts a new one"))
                    return
                continue
            # What already came with it goes out in the same write (a cell's value, its count and the end).
            while True:
                try:
                    batch.append(events.get_nowait())
                except queue.Empty:
                    break
            out, done = [], False
            for event in batch:
                event = translate(event, run_id, timeout_s if timed_out else None)
                if event is DONE:
                    done = True
                elif event is not None:
                    out.append(event)
            for i, event in enumerate(out):
                emit(event, more=done or i < len(out) - 1)
            if done:
                return

    def interrupt(self):
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)


class PythonKernel(PipeKernel):
    argv = ["python3", "-X", "frozen_modules=off", os.path.join(HERE, "ipython-kernel.py")]


class NodeKernel(PipeKernel):
    argv = ["node", os.path.join(HERE, "node-kernel.js")]
    env = {"NODE_PATH": "/usr/share/nodejs:/usr/lib/nodejs"}


DONE = object()


def translate(event, run_id, timeout_s):
    """A kernel's event as the run's line; DONE at the end of the run; None for another run's.
    timeout_s: the timeout of a run it interrupted (its KeyboardInterrupt is a TimeoutError)."""
    if event.get("raw"):
        return {"type": event["type"], "text": event["text"]}
    if event.get("id") != run_id:
        return None
    kind = event.get("type")
    if kind == "done":
        return DONE
    if kind == "result" and isinstance(event.get("data"), dict):
        return result_event(event["data"], event.get("is_main_result") is True)
    if kind == "error" and timeout_s is not None and event.get("name") == "KeyboardInterrupt":
        return error("TimeoutError", f"the run exceeded its timeout of {round(timeout_s * 1000)} ms and was interrupted")
    event.pop("id", None)
    return event


def error(name, value):
    return {"type": "error", "name": name, "value": value, "traceback": ""}


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
        chunk = pipe.read1(65536)
        if not chunk:
            return
        events.put({"raw": True, "type": name, "text": chunk.decode("utf-8", "replace")})
