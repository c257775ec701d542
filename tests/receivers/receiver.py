# A ClockEye webhook receiver in Python, standard library only. It verifies X-ClockEye-Signature
# over the raw body before parsing it. Run: CLOCKEYE_SECRET=whsec_… python3 receiver.py [PORT]
import hashlib
import hmac
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = os.environ["CLOCKEYE_SECRET"].encode()


def say(line: str) -> None:
    # One write per line: print() writes the text and its newline apart, and the server below
    # runs a thread per request, so two lines printed at once could run together.
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def verify(body: bytes, header: str) -> bool:
    expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.encode())  # constant time


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        if length > 1024 * 1024:  # far above the largest event
            self.send_error(413)
            return
        body = self.rfile.read(length)  # the raw bytes: verify these, not re-serialized JSON
        if not verify(body, self.headers.get("X-ClockEye-Signature", "")):
            say("rejected: invalid signature")
            self.send_error(401, "invalid signature")
            return
        event = json.loads(body)
        # Handle event["type"] here; deduplicate on event["id"] (delivery is at least once).
        say(f"verified {event['id']} {event['type']}")
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass  # one line per webhook is printed above


port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
server = ThreadingHTTPServer(("127.0.0.1", port), Receiver)
say(f"listening on http://127.0.0.1:{server.server_port}")
server.serve_forever()
