"""The code interpreter's server on :49999, E2B's code-interpreter wire protocol.

POST /execute {code, context_id?, language?, env_vars?, timeout_ms?} streams NDJSON lines (stdout, stderr,
result, error, number_of_executions, then end_of_execution); POST /contexts {language, cwd} -> {id,
language, cwd}; GET /contexts; DELETE /contexts/{id}; POST /contexts/{id}/restart; POST
/contexts/{id}/interrupt (Stasis's addition); GET /health. The Stasis daemon reaches it on the sandbox's
address for its own API, and E2B's SDK through the daemon's preview route, so there is one implementation.
"""
import json
import os
import pwd
import select
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from contexts import Registry, UnknownContext, UnknownLanguage  # noqa: E402

PORT = 49999
MAX_BODY = 16 * 1024 * 1024
# A run's reply head waits this long for the run's first line, to go out with it.
HEAD_WAIT_S = 0.05
# The sandbox's own env (from its create), written by the daemon: this server started in the template's
# snapshot, before the sandbox existed, so it is not in os.environ. Every run gets it under its own env_vars.
SANDBOX_ENV_FILE = "/run/stasis/env.json"
_sandbox_env = {"mtime": None, "env": {}}


def sandbox_env():
    try:
        mtime = os.stat(SANDBOX_ENV_FILE).st_mtime_ns
    except OSError:
        return {}
    if mtime != _sandbox_env["mtime"]:
        try:
            with open(SANDBOX_ENV_FILE, encoding="utf-8") as f:
                env = json.load(f)
            ok = isinstance(env, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
            _sandbox_env.update(mtime=mtime, env=env if ok else {})
        except (OSError, ValueError):
            return {}
    return dict(_sandbox_env["env"])


def drop_privileges():
    """Code runs as `user` (as on E2B), never as the sandbox's root."""
    if os.getuid() != 0:
        return
    try:
        pw = pwd.getpwnam("user")
    except KeyError:
        return
    os.setgroups([])
    os.setgid(pw.pw_gid)
    os.setuid(pw.pw_uid)
    os.environ.update(HOME=pw.pw_dir, USER="user", LOGNAME="user")
    os.chdir(pw.pw_dir)


class Handler(BaseHTTPRequestHandler):
    server_version = "stasis-code/1"
    # Kept-alive connections: the daemon sends run after run on one, so a run pays neither a TCP handshake
    # through gVisor's network stack nor a new thread here (~3 ms a run together). A run's stream is chunked.
    protocol_version = "HTTP/1.1"
    # Each event line goes out at once: with Nagle's algorithm a small write waits for the client's
    # delayed ACK, which through gVisor's network stack cost ~10 ms a run.
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):  # quiet: the daemon keeps its own logs
        pass

    def reply(self, status, body=None):
        self.whole(status, "application/json", b"" if body is None else json.dumps(body).encode())

    def fail(self, status, message):
        self.whole(status, "text/plain; charset=utf-8", message.encode())

    def whole(self, status, content_type, data):
        """A reply with its length, head and body in one write (one segment through the network stack)."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self._headers_buffer.append(b"\r\n" + data)
        self.flush_headers()

    def body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            raw = self.read_chunked()
        else:
            n = int(self.headers.get("Content-Length") or 0)
            if n > MAX_BODY:
                raise ValueError("body too large")
            raw = self.rfile.read(n) if n else b"{}"
        value = json.loads(raw or b"{}")
        if not isinstance(value, dict):
            raise ValueError("body must be a JSON object")
        return value

    def read_chunked(self):
        parts, size = [], 0
        while True:
            n = int(self.rfile.readline(66).split(b";")[0].strip(), 16)
            size += n
            if size > MAX_BODY:
                raise ValueError("body too large")
            if n == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            parts.append(self.rfile.read(n))
            self.rfile.readline(3)

    def path_parts(self):
        return [p for p in self.path.split("?")[0].split("/") if p]

    def do_GET(self):
        parts = self.path_parts()
        if parts == ["health"]:
            if not REGISTRY.ready.is_set():
                return self.reply(503, "starting")
            # A health check also runs a silent no-op in the default Python context when it is idle: a warm
            # pool's member restored from the snapshot answers this once before it is frozen, which pages
            # the kernel back in before a claim instead of during the claimant's first run.
            REGISTRY.touch()
            return self.reply(200, "OK")
        if parts == ["contexts"]:
            return self.reply(200, [c.describe() for c in REGISTRY.list()])
        self.fail(404, "not found")

    def do_DELETE(self):
        parts = self.path_parts()
        if len(parts) == 2 and parts[0] == "contexts":
            try:
                REGISTRY.remove(parts[1])
            except UnknownContext as e:
                return self.fail(404, str(e))
            return self.reply(204)
        self.fail(404, "not found")

    def do_POST(self):
        parts = self.path_parts()
        try:
            body = self.body()
        except (ValueError, json.JSONDecodeError) as e:
            # What is left of the body would be read as the next request.
            self.close_connection = True
            return self.fail(400, f"invalid request body: {e}")
        try:
            if parts == ["execute"]:
                return self.execute(body)
            if parts == ["contexts"]:
                ctx = REGISTRY.create(body.get("language") or "python", body.get("cwd") or None)
                return self.reply(200, ctx.describe())
            if len(parts) == 3 and parts[0] == "contexts" and parts[2] in ("restart", "interrupt"):
                ctx = REGISTRY.get(parts[1])
                ctx.restart() if parts[2] == "restart" else ctx.interrupt()
                return self.reply(204)
        except UnknownContext as e:
            return self.fail(404, str(e))
        except UnknownLanguage as e:
            return self.fail(400, str(e))
        except Exception as e:  # a kernel that failed to start: the client gets why
            return self.fail(500, f"{type(e).__name__}: {e}")
        self.fail(404, "not found")

    def client_gone(self):
        """True once the client closed its side (its request body was read in full before the run)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def execute(self, body):
        code = body.get("code")
        if not isinstance(code, str):
            return self.fail(400, "code must be a string")
        if body.get("context_id") and body.get("language"):
            return self.fail(400, "give context_id or language, not both")
        env = body.get("env_vars") or {}
        if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            return self.fail(400, "env_vars must map names to strings")
        env = {**sandbox_env(), **env}
        timeout_ms = body.get("timeout_ms")
        if timeout_ms is not None and (not isinstance(timeout_ms, (int, float)) or timeout_ms <= 0):
            return self.fail(400, "timeout_ms must be a positive number")
        ctx = REGISTRY.get(body["context_id"]) if body.get("context_id") else REGISTRY.default(body.get("language") or "python")
        # HTTP/1.1 clients get the stream chunked, and keep the connection; HTTP/1.0 ones until it closes.
        chunked = self.request_version != "HTTP/1.0"
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        # The head goes out with the first line (one write, one segment through the network stack), or on
        # its own once the run has been quiet for HEAD_WAIT_S.
        self._headers_buffer.append(b"\r\n")
        head = [b"".join(self._headers_buffer)]
        self._headers_buffer = []
        started = time.monotonic()
        lock = threading.Lock()
        gone = [False]
        # Lines the kernel says more follow at once (and the execution count, before the end) wait for
        # them: a run's value, count and end go out in one write.
        held = []

        def write(data, last=False):
            if chunked:
                data = b"%x\r\n%s\r\n%s" % (len(data), data, b"0\r\n\r\n" if last else b"")
            self.wfile.write(head.pop() + data if head else data)

        def emit(event, more=False):
            if gone[0]:
                return
            if event["type"] in ("stdout", "stderr"):
                event.setdefault("timestamp", time.time_ns() // 1000)
            try:
                with lock:
                    line = (json.dumps(event) + "\n").encode()
                    if more or event["type"] == "number_of_executions":
                        held.append(line)
                        return
                    write(b"".join(held) + line, last=event["type"] == "end_of_execution")
                    held.clear()
            except OSError:
                gone[0] = True
                self.close_connection = True

        def cancelled():
            """Polled while the run waits or runs: also sends the head of a quiet run."""
            if not gone[0] and head and time.monotonic() - started > HEAD_WAIT_S:
                try:
                    with lock:
                        if head:
                            self.wfile.write(head.pop())
                except OSError:
                    gone[0] = True
            if not gone[0] and self.client_gone():
                gone[0] = True
            if gone[0]:
                self.close_connection = True
            return gone[0]

        try:
            ctx.run(code, env, timeout_ms / 1000 if timeout_ms else None, emit, cancelled)
        except Exception as e:  # the stream has begun: the failure goes in it, as the run's error
            emit({"type": "error", "name": type(e).__name__, "value": str(e), "traceback": ""})
        emit({"type": "end_of_execution"})


REGISTRY = None

if __name__ == "__main__":
    drop_privileges()
    REGISTRY = Registry()
    server = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)
    server.daemon_threads = True
    threading.Thread(target=REGISTRY.warm, daemon=True).start()
    server.serve_forever()
