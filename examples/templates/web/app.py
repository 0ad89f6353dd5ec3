import http.server, socketserver
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"hello from the template\n")
    def log_message(self, *a): pass
socketserver.TCPServer(("0.0.0.0", 8000), H).serve_forever()
