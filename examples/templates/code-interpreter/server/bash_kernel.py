"""A bash context: one bash process; each run is a file `source`d into it, so variables, functions and the
working directory stay. The end of a run is a marker with a fresh token printed on stdout and stderr.
An interrupt is SIGINT to bash's process group: the foreground command dies, and bash, which traps INT,
returns from the sourced cell (status 130) instead of exiting."""
import os
import queue
import signal
import subprocess
import threading
import time
import uuid

from kernel_process import KernelProcess

# How long after an interrupt the run may take to reach its marker before bash is replaced.
GRACE_S = 2


class BashKernel(KernelProcess):
    def __init__(self, language, cwd, folder):
        self.cwd = cwd
        self.folder = folder
        self.proc = None
        self.chunks = None
        self.count = 0
        self.mutex = threading.Lock()

    def start(self):
        with self.mutex:
            if self.proc is not None and self.proc.poll() is None:
                return
            proc = subprocess.Popen(
                ["bash", "--noprofile", "--norc"], cwd=self.cwd, start_new_session=True,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )
            proc.stdin.write(b"trap 'return 130 2>/dev/null' INT\n")
            proc.stdin.flush()
            chunks = queue.Queue()
            for name, pipe in (("stdout", proc.stdout), ("stderr", proc.stderr)):
                threading.Thread(target=read_chunks, args=(pipe, name, chunks), daemon=True).start()
            self.proc, self.chunks = proc, chunks

    def run(self, code, env, timeout_s, emit, cancelled, silent=False):
        self.start()
        self.count += 1
        token = uuid.uuid4().hex
        cell = os.path.join(self.folder, "cell.sh")
        with open(cell, "w") as f:
            f.write(code)
        assigns = " ".join(f"{k}={shell_quote(v)}" for k, v in env.items() if k.isidentifier())
        marker = f"\x01stasis-end-{token}"
        line = f"{assigns} source {shell_quote(cell)} </dev/null; printf '%s %d\\x01' '{marker}' $?; printf '%s\\x01' '{marker}' >&2\n"
        proc, chunks = self.proc, self.chunks
        try:
            proc.stdin.write(line.encode())
            proc.stdin.flush()
        except OSError:
            self.shutdown()
            emit(error("KernelDied", "bash was gone; the next run starts a new one"))
            return
        pending = {"stdout": "", "stderr": ""}
        done = {"stdout": None, "stderr": None}
        started = time.monotonic()
        interrupted_at = None
        timed_out = False
        while done["stdout"] is None or done["stderr"] is None:
            now = time.monotonic()
            if interrupted_at is None and ((timeout_s and now - started > timeout_s) or cancelled()):
                timed_out = bool(timeout_s and now - started > timeout_s)
                interrupted_at = now
                self.interrupt()
            if interrupted_at is not None and now - interrupted_at > GRACE_S:
                self.shutdown()
                emit(error("TimeoutError" if timed_out else "KeyboardInterrupt", "the run was stopped; the bash context was restarted (its variables are gone)"))
                return
            try:
                name, text = chunks.get(timeout=0.1)
            except queue.Empty:
                if proc.poll() is not None:
                    if self.proc is proc:
                        self.proc = None
                    emit(error("KernelDied", "bash exited; the next run starts a new one"))
                    return
                continue
            buf = pending[name] + text
            at = buf.find(marker)
            if at >= 0:
                end = buf.find("\x01", at + len(marker))
                if end < 0:
                    pending[name] = buf
                    continue
                done[name] = buf[at + len(marker):end].strip()
                out, pending[name] = buf[:at], ""
            else:
                # Hold back what may be the start of the marker.
                cut = buf.find("\x01")
                out, pending[name] = (buf, "") if cut < 0 else (buf[:cut], buf[cut:])
            if out:
                emit({"type": name, "text": out})
        status = int(done["stdout"] or 0)
        if timed_out:
            emit(error("TimeoutError", f"the run exceeded its timeout of {round(timeout_s * 1000)} ms and was interrupted"))
        elif status != 0:
            emit(error("ExitCode", f"exit status {status}"))
        emit({"type": "number_of_executions", "execution_count": self.count})

    def interrupt(self):
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGINT)
        except ProcessLookupError:
            pass


def error(name, value):
    return {"type": "error", "name": name, "value": value, "traceback": ""}


def shell_quote(s):
    return "'" + s.replace("'", "'\\''") + "'"


def read_chunks(pipe, name, chunks):
    while True:
        chunk = pipe.read1(65536)
        if not chunk:
            return
        chunks.put((name, chunk.decode("utf-8", "replace")))
