"""A Python context's process: IPython's own shell (what ipykernel runs inside), driven over pipes.

Requests arrive as JSON lines on stdin ({id, code, env}); events leave as JSON lines on the fd in
STASIS_EVENTS_FD. IPython gives the notebook semantics (the last expression's value, display() and its
MIME bundles, matplotlib figures through matplotlib_inline, tracebacks, the execution count); pipes
instead of ipykernel's ZeroMQ messages keep a run at a few system calls, which gVisor makes count.
"""
import json
import os
import signal
import sys

os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")

from IPython.core.displayhook import DisplayHook  # noqa: E402
from IPython.core.displaypub import DisplayPublisher  # noqa: E402
from IPython.core.interactiveshell import InteractiveShell  # noqa: E402

EVENTS = int(os.environ.get("STASIS_EVENTS_FD", "3"))
CURRENT = {"id": None}


STREAMS = []
# Events held back to go out with the next one: the cell's value, its count and the end in one write.
HELD = []


def send(event, flush=True, hold=False):
    if flush:
        for stream in STREAMS:
            stream.flush()
    event["id"] = CURRENT["id"]
    HELD.append(json.dumps(event, default=str) + "\n")
    if hold:
        return
    data = "".join(HELD).encode()
    HELD.clear()
    while data:
        data = data[os.write(EVENTS, data):]


def bundle(format_dict):
    # Text bundles as IPython made them; JSON-able values (e2b/data, application/json) as they are.
    return {k: v for k, v in format_dict.items()}


SCALARS = (int, float, complex, bool, str, bytes)


class Hook(DisplayHook):
    """The cell's last expression: the main result."""

    def write_output_prompt(self):
        pass

    def compute_format_data(self, result):
        # A plain scalar has no rich representation (its type cannot take _repr_*_ methods): only its text,
        # unless a printer was registered for its type. Asking all thirteen formatters costs ~0.1 ms a cell.
        if type(result) in SCALARS:
            display = self.shell.display_formatter
            plain = display.formatters["text/plain"]
            others = [f for f in (*display.formatters.values(), display.ipython_display_formatter, display.mimebundle_formatter) if f is not plain]
            if plain.enabled and not any(
                c in f.type_printers or (c.__module__, c.__name__) in f.deferred_printers for f in others for c in type(result).__mro__
            ):
                return {"text/plain": plain(result)}, {}
        return super().compute_format_data(result)

    def write_format_data(self, format_dict, md_dict=None):
        # The value is the cell's last step: held for the count and the end (any other event sends it first).
        send({"type": "result", "is_main_result": True, "data": bundle(format_dict)}, hold=True)


class Publisher(DisplayPublisher):
    """display(), plots and other rich output during the cell."""

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs):
        send({"type": "result", "is_main_result": False, "data": bundle(data)})

    def clear_output(self, wait=False):
        pass


class Stream:
    """sys.stdout / sys.stderr: whole lines become events of the current run (the rest when the run ends,
    or before any other event, so the order stays as written)."""

    def __init__(self, name):
        self.name = name
        self.encoding = "utf-8"
        self.errors = "replace"
        self.pending = ""
        STREAMS.append(self)

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self.pending += text
        cut = self.pending.rfind("\n") + 1
        if cut > 0 or len(self.pending) > 65536:
            cut = cut or len(self.pending)
            out, self.pending = self.pending[:cut], self.pending[cut:]
            for other in STREAMS:
                if other is not self:
                    other.flush()
            send({"type": self.name, "text": out}, flush=False)
        return len(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        if self.pending:
            out, self.pending = self.pending, ""
            send({"type": self.name, "text": out}, flush=False)

    def isatty(self):
        return False

    def fileno(self):
        return 1 if self.name == "stdout" else 2

    @property
    def closed(self):
        return False

    def writable(self):
        return True

    def readable(self):
        return False


class Shell(InteractiveShell):
    displayhook_class = Hook
    display_pub_class = Publisher

    def _showtraceback(self, etype, evalue, stb):
        send({"type": "error", "name": etype.__name__, "value": str(evalue), "traceback": "\n".join(stb)})

    def enable_gui(self, gui=None):
        pass


def setup(shell):
    from IPython.core.formatters import JSONFormatter

    class DataFormatter(JSONFormatter):
        format_type = "e2b/data"

    formatter = DataFormatter(parent=shell.display_formatter)
    shell.display_formatter.formatters["e2b/data"] = formatter

    def frame(df):
        return json.loads(df.to_json(orient="split", date_format="iso", default_handler=str))

    formatter.for_type_by_name("pandas.core.frame", "DataFrame", frame)
    # The data stack loaded ahead (and into the template's snapshot): the first `import pandas` is free.
    import matplotlib  # noqa: F401
    import matplotlib.pyplot  # noqa: F401
    import numpy  # noqa: F401
    import pandas  # noqa: F401

    shell.enable_matplotlib("inline")


def main():
    requests = sys.stdin.buffer
    sys.stdin = open(os.devnull)
    sys.stdout, sys.stderr = Stream("stdout"), Stream("stderr")
    from traitlets.config import Config

    config = Config()
    # History in memory: on disk it is a SQLite write per run, through gVisor's file system (~ms each).
    config.HistoryManager.hist_file = ":memory:"
    shell = Shell.instance(colors="NoColor", config=config)
    setup(shell)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    send({"type": "ready"})
    while True:
        try:
            line = requests.readline()
        except KeyboardInterrupt:
            continue  # an interrupt that came between runs
        if not line:
            return
        try:
            req = json.loads(line)
        except ValueError:
            continue
        CURRENT["id"] = req.get("id")
        env = req.get("env") or {}
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        silent = req.get("silent") is True
        try:
            shell.run_cell(req.get("code", ""), store_history=not silent, silent=silent)
        except KeyboardInterrupt:
            send({"type": "error", "name": "KeyboardInterrupt", "value": "", "traceback": ""})
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        send({"type": "number_of_executions", "execution_count": shell.execution_count - 1}, hold=True)
        send({"type": "done"})
        CURRENT["id"] = None


if __name__ == "__main__":
    main()
