"""A small MCP server (Streamable HTTP transport, JSON responses), Python standard library only.

Tools: `add` (two numbers) and `remember`/`recall` (a note kept in the process's memory: it survives the
sandbox's pause and hibernation, since those keep processes and memory)."""
import http.server, json, socketserver, uuid

PROTOCOL = "2025-03-26"
NOTES = {}
TOOLS = [
    {"name": "add", "description": "Add two numbers", "inputSchema": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]}},
    {"name": "remember", "description": "Keep a note", "inputSchema": {"type": "object", "properties": {"note": {"type": "string"}}, "required": ["note"]}},
    {"name": "recall", "description": "The note kept last", "inputSchema": {"type": "object", "properties": {}}},
]


def call(name, args):
    if name == "add":
        return str(args["a"] + args["b"])
    if name == "remember":
        NOTES["last"] = args["note"]
        return "remembered"
    if name == "recall":
        return NOTES.get("last", "")
    raise KeyError(name)


def handle(msg):
    method, mid = msg.get("method"), msg.get("id")
    if mid is None:
        return None  # a notification: nothing to answer
    if method == "initialize":
        result = {"protocolVersion": PROTOCOL, "capabilities": {"tools": {}}, "serverInfo": {"name": "stasis-example", "version": "1.0"}}
    elif method == "ping":
        result = {}
    elif method == "tools/list":
        result = {"tools": TOOLS}
    elif method == "tools/call":
        try:
            text = call(msg["params"]["name"], msg["params"].get("arguments", {}))
        except KeyError as e:
            return {"jsonrpc": "2.0", "id": mid, "error": {"code": -32602, "message": f"unknown tool or argument {e}"}}
        result = {"content": [{"type": "text", "text": text}], "isError": False}
    else:
        return {"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": f"method not found: {method}"}}
    return {"jsonrpc": "2.0", "id": mid, "result": result}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        # /health: the template's readiness check.
        if self.path == "/health":
            return self.reply(200, b"ok\n", "text/plain")
        self.reply(405, b"POST JSON-RPC to /mcp\n", "text/plain")

    def do_POST(self):
        if self.path != "/mcp":
            return self.reply(404, b"not found\n", "text/plain")
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        try:
            msg = json.loads(body)
        except ValueError:
            return self.reply(400, b'{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error"}}', "application/json")
        answer = handle(msg)
        if answer is None:
            return self.reply(202, b"", "application/json")
        session = {"mcp-session-id": str(uuid.uuid4())} if msg.get("method") == "initialize" else {}
        self.reply(200, json.dumps(answer).encode(), "application/json", session)

    def reply(self, status, data, kind, extra=None):
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    allow_reuse_address = True
    daemon_threads = True


Server(("0.0.0.0", 8000), Handler).serve_forever()
