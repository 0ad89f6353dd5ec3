"""Contexts: one long-lived kernel each, keeping variables, imports and the working directory."""
import os
import threading
import uuid

from bash_kernel import BashKernel
from pipe_kernel import NodeKernel, PythonKernel

LANGUAGES = {
    "python": ("python", PythonKernel),
    "python3": ("python", PythonKernel),
    "javascript": ("javascript", NodeKernel),
    "js": ("javascript", NodeKernel),
    "typescript": ("typescript", NodeKernel),
    "ts": ("typescript", NodeKernel),
    "bash": ("bash", BashKernel),
    "sh": ("bash", BashKernel),
}
RUNTIME_DIR = "/tmp/stasis-code"


class UnknownContext(Exception):
    pass


class UnknownLanguage(Exception):
    pass


class Context:
    def __init__(self, language, kernel_class, cwd):
        self.id = str(uuid.uuid4())
        self.language = language
        self.cwd = cwd or os.environ.get("HOME", "/")
        self.dir = os.path.join(RUNTIME_DIR, self.id)
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        self.kernel = kernel_class(language, self.cwd, self.dir)
        # One run at a time per context; others queue here in arrival order.
        self.lock = threading.Lock()

    def describe(self):
        return {"id": self.id, "language": self.language, "cwd": self.cwd}

    def run(self, code, env, timeout_s, emit, cancelled):
        # While queued, `cancelled` is polled too: a run whose client left before its turn never starts.
        while not self.lock.acquire(timeout=0.05):
            if cancelled():
                return
        try:
            self.kernel.run(code, env, timeout_s, emit, cancelled)
        finally:
            self.lock.release()

    def interrupt(self):
        self.kernel.interrupt()

    def restart(self):
        self.kernel.interrupt()
        with self.lock:
            self.kernel.restart()

    def shutdown(self):
        self.kernel.shutdown()


class Registry:
    def __init__(self):
        os.makedirs(RUNTIME_DIR, mode=0o700, exist_ok=True)
        self.contexts = {}
        self.defaults = {}
        self.mutex = threading.Lock()
        self.ready = threading.Event()

    def warm(self):
        """The default Python context starts (and imports the data stack) before /health says ready."""
        self.default("python").kernel.start()
        self.ready.set()

    def touch(self):
        ctx = self.default("python")
        if ctx.lock.acquire(blocking=False):
            try:
                ctx.kernel.run("None", {}, 10, lambda e, more=False: None, lambda: False, silent=True)
            finally:
                ctx.lock.release()

    def create(self, language, cwd):
        entry = LANGUAGES.get(str(language).lower())
        if entry is None:
            raise UnknownLanguage(f"unsupported language '{language}': use one of python, javascript, typescript, bash")
        ctx = Context(entry[0], entry[1], cwd)
        # Started before the reply, as E2B's does: the first run pays nothing, and an interrupt can never
        # land on a kernel still starting (it would kill it).
        ctx.kernel.start()
        with self.mutex:
            self.contexts[ctx.id] = ctx
        return ctx

    def default(self, language):
        entry = LANGUAGES.get(str(language).lower())
        if entry is None:
            raise UnknownLanguage(f"unsupported language '{language}': use one of python, javascript, typescript, bash")
        with self.mutex:
            ctx = self.defaults.get(entry[0])
            if ctx is None:
                ctx = Context(entry[0], entry[1], None)
                self.defaults[entry[0]] = ctx
                self.contexts[ctx.id] = ctx
        return ctx

    def get(self, context_id):
        with self.mutex:
            ctx = self.contexts.get(context_id)
        if ctx is None:
            raise UnknownContext(f"context {context_id} not found")
        return ctx

    def list(self):
        with self.mutex:
            return list(self.contexts.values())

    def remove(self, context_id):
        with self.mutex:
            ctx = self.contexts.pop(context_id, None)
            for lang, d in list(self.defaults.items()):
                if d is ctx:
                    del self.defaults[lang]
        if ctx is None:
            raise UnknownContext(f"context {context_id} not found")
        ctx.shutdown()
