"""A Python context: an IPython kernel (Debian's ipykernel) driven through jupyter_client.

The kernel talks ZeroMQ over Unix sockets (transport ipc) in the context's folder: sockets inside the
sandbox survive a checkpoint and restore, where TCP connections are reset.
"""
import os
import queue
import threading
import time

from jupyter_client.manager import KernelManager

# Run once in every kernel that starts: plain tracebacks, DataFrames also as data (E2B's `e2b/data`
# format), the data stack imported ahead so the first `import pandas` costs nothing.
STARTUP = r"""
get_ipython().run_line_magic("colors", "NoColor")
def _stasis_setup():
    import json
    from IPython.core.formatters import JSONFormatter
    class DataFormatter(JSONFormatter):
        format_type = "e2b/data"
    ip = get_ipython()
    f = DataFormatter(parent=ip.display_formatter)
    ip.display_formatter.formatters["e2b/data"] = f
    def frame(df):
        return json.loads(df.to_json(orient="split", date_format="iso", default_handler=str))
    f.for_type_by_name("pandas.core.frame", "DataFrame", frame)
    import numpy, pandas, matplotlib
    import matplotlib.pyplot
_stasis_setup()
del _stasis_setup
"""

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
INTERRUPT_GRACE_S = 5


def result_event(data, main):
    event = {"type": "result", "is_main_result": main}
    for mime, value in data.items():
        field = MIME_FIELDS.get(mime)
        if field:
            event[field] = value
        else:
            event.setdefault("extra", {})[mime] = value
    return event


class PythonKernel:
    def __init__(self, language, cwd, folder):
        self.cwd = cwd
        self.folder = folder
        self.km = None
        self.client = None
        self.mutex = threading.Lock()

    def start(self):
        with self.mutex:
            if self.km is not None:
                return
            km = KernelManager(kernel_name="python3", transport="ipc", ip=os.path.join(self.folder, "k"))
            km.connection_file = os.path.join(self.folder, "kernel.json")
            km.start_kernel(cwd=self.cwd, env={**os.environ, "PYDEVD_DISABLE_FILE_VALIDATION": "1"})
            client = km.blocking_client()
            client.start_channels()
            client.wait_for_ready(timeout=120)
            self.km, self.client = km, client
        self.silent(STARTUP)

    def _wait(self, msg_id, on_message, deadline_check):
        """Reads iopub until the kernel is idle after msg_id; on_message gets that request's messages."""
        while True:
            deadline_check()
            try:
                msg = self.client.get_iopub_msg(timeout=0.1)
            except queue.Empty:
                continue
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle":
                return
            on_message(msg)

    def _reply(self, msg_id, timeout=10):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                msg = self.client.get_shell_msg(timeout=0.2)
            except queue.Empty:
                continue
            if msg.get("parent_header", {}).get("msg_id") == msg_id:
                return msg["content"]
        return {}

    def silent(self, code):
        msg_id = self.client.execute(code, silent=True, store_history=False)
        self._wait(msg_id, lambda m: None, lambda: None)
        self._reply(msg_id)

    def run(self, code, env, timeout_s, emit, cancelled):
        self.start()
        if env:
            self.silent(
                "import os as _stasis_os\n"
                f"_stasis_saved_env = {{k: _stasis_os.environ.get(k) for k in {list(env)!r}}}\n"
                f"_stasis_os.environ.update({env!r})\n"
            )
        try:
            self._run(code, timeout_s, emit, cancelled)
        finally:
            if env:
                self.silent(
                    "for _k, _v in _stasis_saved_env.items():\n"
                    "    _stasis_os.environ.pop(_k, None) if _v is None else _stasis_os.environ.__setitem__(_k, _v)\n"
                    "del _stasis_saved_env, _k, _v\n"
                )

    def _run(self, code, timeout_s, emit, cancelled):
        msg_id = self.client.execute(code, silent=False, store_history=True, allow_stdin=False, stop_on_error=False)
        started = time.monotonic()
        state = {"interrupted_at": None, "timed_out": False, "error": False}

        def check():
            now = time.monotonic()
            if state["interrupted_at"] is None:
                over = timeout_s is not None and now - started > timeout_s
                if over or cancelled():
                    state["timed_out"] = over
                    state["interrupted_at"] = now
                    self.km.interrupt_kernel()
            elif now - state["interrupted_at"] > INTERRUPT_GRACE_S:
                # The interrupt did not land (code in C ignoring SIGINT): a restart frees the context.
                raise TimeoutError("the kernel did not stop after an interrupt and was restarted")

        def on_message(msg):
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                emit({"type": "stderr" if content.get("name") == "stderr" else "stdout", "text": content.get("text", "")})
            elif kind == "execute_result":
                emit(result_event(content.get("data", {}), True))
            elif kind in ("display_data", "update_display_data"):
                emit(result_event(content.get("data", {}), False))
            elif kind == "error":
                state["error"] = True
                if state["timed_out"]:
                    emit(timeout_error(timeout_s))
                else:
                    emit({"type": "error", "name": content.get("ename", ""), "value": content.get("evalue", ""), "traceback": "\n".join(content.get("traceback", []))})

        try:
            self._wait(msg_id, on_message, check)
        except TimeoutError as e:
            self.restart()
            emit({"type": "error", "name": "TimeoutError", "value": str(e), "traceback": ""})
            return
        reply = self._reply(msg_id)
        if state["timed_out"] and not state["error"]:
            emit(timeout_error(timeout_s))
        if reply.get("execution_count") is not None:
            emit({"type": "number_of_executions", "execution_count": reply["execution_count"]})

    def interrupt(self):
        if self.km is not None:
            self.km.interrupt_kernel()

    def restart(self):
        if self.km is None:
            return self.start()
        self.km.restart_kernel(now=True)
        self.client.stop_channels()
        self.client = self.km.blocking_client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=120)
        self.silent(STARTUP)

    def shutdown(self):
        if self.km is not None:
            self.client.stop_channels()
            self.km.shutdown_kernel(now=True)
            self.km = None


def timeout_error(timeout_s):
    value = f"the run exceeded its timeout of {round(timeout_s * 1000)} ms and was interrupted" if timeout_s else "the run was interrupted"
    return {"type": "error", "name": "TimeoutError", "value": value, "traceback": ""}
