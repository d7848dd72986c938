"""Webhook receiver for scripts/load-fault: answers 200 to every POST after appending the
event's idempotencyKey to a file (flushed before answering, so a kill loses no
acknowledged event). Usage: receiver.py PORT FILE"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, path = int(sys.argv[1]), sys.argv[2]
out = open(path, "a", buffering=1)


class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        try:
            key = json.loads(body).get("idempotencyKey", "")
        except ValueError:
            key = ""
        if key:
            out.write(key + "\n")
            out.flush()
        self.send_response(200 if key else 400)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", port), Hook).serve_forever()
