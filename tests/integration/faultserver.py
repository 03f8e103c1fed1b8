#!/usr/bin/env python3
"""faultserver.py: a static HTTP/1.1 file server that misbehaves on request.

Serves the files below ROOT (GET and HEAD; no directory listings, no ranges) on a loopback
address at a free port, and applies *faults* to the requests whose path matches a rule. The
storkfs integration tests use it to play a broken or hostile mirror.

    faultserver.py [--bind ADDR] [--port N] [--port-file FILE] [--access-log FILE]
                   [--faults FILE] [--fault RULE]... [--lifetime SECONDS] ROOT

  --port N           listen on N (default 0: a free port, chosen by the kernel)
  --port-file FILE   write the port there once listening (atomically: poll until it exists)
  --access-log FILE  one line per request, flushed at once:
                         METHOD PATH STATUS BYTES FAULT
                     STATUS is "-" when no status line was sent (refuse, reset), BYTES the
                     body bytes actually written, FAULT the applied fault or "-"
  --faults FILE      JSON rules, re-read on every request (edit it while the server runs;
                     a file that does not parse keeps the previous rules and says so on stderr)
  --fault RULE       a rule on the command line, REGEX=KIND[:key=value,...]; tried after the
                     file's rules. Example: --fault '^/objects/=trickle:rate=200'
  --lifetime S       exit by itself after S seconds (default 600); SIGTERM/SIGINT exit at once

Rules. The faults file holds a JSON list of rules (or {"rules": [...]}); each is an object:

    {"match": "^/objects/ab/", "fault": "corrupt", "offset": 100, "times": 1}

"match" is a Python regular expression searched in the request path (without the query);
the first rule that matches and has not used up its "times" (default: unlimited) applies.
"times" counts per rule for the server's life (a rule is identified by its position and
content, so editing the file starts new counts).

Kinds and their keys:

  refuse    read the request, then close the connection without answering (a FIN)
  reset     read the request, then reset the connection (SO_LINGER 0: an RST)
  stall     send the headers (the true Content-Length) and "bytes" body bytes (default 0),
            then send nothing for "seconds" (default 600, bounded by --lifetime) and close;
            stops early when the client goes away
  trickle   send the body at "rate" bytes per second (default 100), in 10 slices a second
  truncate  announce the true Content-Length, send "bytes" body bytes (default: half), close
  corrupt   flip bits (XOR "xor", default 0xff) of the byte at "offset" (default: the
            middle; negative counts from the end) of a correct-length body
  extra     append "bytes" more bytes (default 4096; "fill": "zero" (default) or "random")
            after the body. "length": "none" (default) sends no Content-Length and closes the
            connection to end the body; "full" announces the longer length; "real" announces
            the true length and sends the extra bytes after it anyway
  status    answer with HTTP "status" (default 503) and a short text body
  delay     wait "seconds" (default 1) before answering normally
  endless   an endless body: the file's bytes (none when there is no such file: the answer is
            200 all the same) followed by fill bytes ("fill": "zero" (default), "random" or
            "space") sent as fast as the client reads, until the client goes away, "bytes"
            body bytes in all were sent (default: no limit) or the server's lifetime ends.
            "length": "none" (default) sends no Content-Length and closes the connection;
            "huge" announces a Content-Length of 2^40 bytes

Any rule may also carry "delay" (seconds to wait before the fault is applied).

Proxy requests. A request in absolute form, "GET http://host:port/path HTTP/1.1" (what a
client sends to an HTTP proxy), is served like "GET /path": the scheme and authority are
dropped and the path is looked up below ROOT and matched against the rules, so the server
plays a caching proxy that holds the repository (mount with proxy=http://127.0.0.1:PORT) and
misbehaves as one. The access log shows such a request's target as sent (the absolute URL).
CONNECT is not supported (501).

Files are served with Content-Type application/octet-stream (.json: application/json); a path
outside ROOT or not a regular file is 404. Connections are kept alive (HTTP/1.1) except after
a fault that ends them.
"""

import argparse
import http.server
import json
import os
import random
import re
import select
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
import urllib.parse

KINDS = ("refuse", "reset", "stall", "trickle", "truncate", "corrupt", "extra", "status", "delay",
	 "endless")


class Rules:
	"""The faults: the file's rules (re-read each request) then the command line's."""

	def __init__(self, path, cli_rules):
		self.path = path
		self.cli = cli_rules
		self.file_rules = []
		self.file_stamp = None
		self.used = {}
		self.lock = threading.Lock()

	def _load(self):
		if not self.path:
			return
		try:
			st = os.stat(self.path)
			with open(self.path, "rb") as f:
				raw = f.read()
		except FileNotFoundError:
			self.file_rules = []
			return
		stamp = (st.st_mtime_ns, st.st_size, raw)
		if stamp == self.file_stamp:
			return
		try:
			doc = json.loads(raw.decode("utf-8") or "[]")
			if isinstance(doc, dict):
				doc = doc.get("rules", [])
			rules = [check_rule(r) for r in doc]
		except (ValueError, TypeError, re.error) as e:
			sys.stderr.write("faultserver: %s: %s (keeping the previous rules)\n" % (self.path, e))
			return
		self.file_rules = rules
		self.file_stamp = stamp

	def pick(self, path):
		"""The rule for PATH (counting its use), or None."""
		with self.lock:
			self._load()
			for i, r in enumerate(self.file_rules + self.cli):
				if not re.search(r["match"], path):
					continue
				key = (i, json.dumps(r, sort_keys=True))
				n = self.used.get(key, 0)
				if "times" in r and n >= int(r["times"]):
					continue
				self.used[key] = n + 1
				return r
		return None


def check_rule(r):
	if not isinstance(r, dict) or "match" not in r or "fault" not in r:
		raise ValueError("a rule needs \"match\" and \"fault\": %r" % (r,))
	if r["fault"] not in KINDS:
		raise ValueError("unknown fault %r (one of %s)" % (r["fault"], ", ".join(KINDS)))
	re.compile(r["match"])
	return r


def parse_cli_rule(text):
	"""REGEX=KIND[:key=value,...] -> a rule. The regex is everything before the last '='
	that is followed by a known kind."""
	m = re.match(r"^(.*)=(%s)(?::(.*))?$" % "|".join(KINDS), text)
	if not m:
		raise argparse.ArgumentTypeError("%r: expected REGEX=KIND[:key=value,...]" % text)
	rule = {"match": m.group(1), "fault": m.group(2)}
	for kv in (m.group(3) or "").split(","):
		if not kv:
			continue
		k, sep, v = kv.partition("=")
		if not sep:
			raise argparse.ArgumentTypeError("%r: %r is not key=value" % (text, kv))
		try:
			rule[k] = json.loads(v)
		except ValueError:
			rule[k] = v
	try:
		return check_rule(rule)
	except (ValueError, re.error) as e:
		raise argparse.ArgumentTypeError(str(e))


class Handler(http.server.BaseHTTPRequestHandler):
	protocol_version = "HTTP/1.1"
	server_version = "faultserver/1"
	sys_version = ""

	def log_message(self, fmt, *args):
		pass

	def log_access(self, status, nbytes, fault):
		path = getattr(self, "path", "-") or "-"
		line = "%s %s %s %d %s\n" % (self.command or "-", path, status, nbytes, fault or "-")
		with self.server.log_lock:
			if self.server.access_log:
				self.server.access_log.write(line)
				self.server.access_log.flush()

	# --- helpers

	def kill_connection(self, rst):
		"""Close the socket for real (detach it from the buffered files that share it)."""
		sock = self.connection
		try:
			if rst:
				sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
			os.close(sock.detach())
		except OSError:
			pass
		self.close_connection = True
		self.dead = True

	def send_raw(self, data):
		"""Write DATA; False when the client has gone."""
		try:
			self.wfile.write(data)
			return True
		except (BrokenPipeError, ConnectionResetError, OSError):
			self.close_connection = True
			return False

	def client_gone(self, timeout):
		"""Wait up to TIMEOUT seconds; True as soon as the peer has closed or reset."""
		try:
			r, _, _ = select.select([self.connection], [], [], timeout)
			if not r:
				return False
			if self.connection.recv(1, socket.MSG_PEEK) == b"":
				return True
		except OSError:
			return True
		# readable but not closed (a pipelined request): wait out the time all the same
		time.sleep(timeout)
		return False

	def sleep_unless_gone(self, seconds):
		end = time.monotonic() + min(float(seconds), self.server.lifetime)
		while True:
			left = end - time.monotonic()
			if left <= 0:
				return False
			if self.client_gone(min(left, 0.5)):
				return True

	def headers_out(self, code, length, ctype, close=False):
		self.send_response(code)
		self.send_header("Content-Type", ctype)
		if length is not None:
			self.send_header("Content-Length", str(length))
		if close or length is None:
			self.send_header("Connection", "close")
			self.close_connection = True
		self.end_headers()

	# --- requests

	def do_HEAD(self):
		self.serve(head=True)

	def do_GET(self):
		self.serve(head=False)

	def resolve(self):
		# origin form "/path" or, from a proxy client, absolute form "http://host:port/path":
		# either way only the path counts (rules match it, ROOT serves it)
		path = urllib.parse.urlsplit(self.path).path or "/"
		rel = urllib.parse.unquote(path)
		parts = [p for p in rel.split("/") if p]
		if any(p in (".", "..") or "\0" in p for p in parts):
			return path, None
		full = os.path.join(self.server.root, *parts)
		if not os.path.isfile(full):
			return path, None
		return path, full

	def serve(self, head):
		self.dead = False
		path, full = self.resolve()
		rule = self.server.rules.pick(path)
		kind = rule["fault"] if rule else None
		if rule and "delay" in rule and kind != "delay":
			if self.sleep_unless_gone(rule["delay"]):
				self.kill_connection(False)
				self.log_access("-", 0, kind)
				return
		if kind == "refuse":
			self.kill_connection(False)
			self.log_access("-", 0, kind)
			return
		if kind == "reset":
			self.kill_connection(True)
			self.log_access("-", 0, kind)
			return
		if kind == "status":
			code = int(rule.get("status", 503))
			body = ("%d fault injected\n" % code).encode()
			self.headers_out(code, len(body), "text/plain")
			sent = 0
			if not head and self.send_raw(body):
				sent = len(body)
			self.log_access(code, sent, kind)
			return
		if kind == "delay":
			self.sleep_unless_gone(rule.get("seconds", 1))
		if kind == "endless":
			self.serve_endless(rule, full, head)
			return
		if full is None:
			body = b"not found\n"
			self.headers_out(404, len(body), "text/plain")
			self.log_access(404, 0 if head else len(body), kind)
			if not head:
				self.send_raw(body)
			return
		try:
			with open(full, "rb") as f:
				data = f.read()
		except OSError:
			body = b"cannot read\n"
			self.headers_out(500, len(body), "text/plain")
			self.log_access(500, 0, kind)
			if not head:
				self.send_raw(body)
			return
		ctype = "application/json" if full.endswith(".json") else "application/octet-stream"
		sent = 0
		status = 200

		if kind == "corrupt" and data:
			off = int(rule.get("offset", len(data) // 2))
			if off < 0:
				off += len(data)
			off = max(0, min(off, len(data) - 1))
			b = bytearray(data)
			b[off] ^= int(rule.get("xor", 0xFF)) & 0xFF or 0xFF
			data = bytes(b)

		if kind == "extra":
			n = int(rule.get("bytes", 4096))
			fill = os.urandom(n) if rule.get("fill") == "random" else b"\0" * n
			mode = rule.get("length", "none")
			if mode == "full":
				self.headers_out(200, len(data) + n, ctype)
			elif mode == "real":
				self.headers_out(200, len(data), ctype, close=True)
			else:
				self.headers_out(200, None, ctype)
			if not head and self.send_raw(data + fill):
				sent = len(data) + n
			self.log_access(status, sent, kind)
			return

		if kind == "truncate":
			n = int(rule.get("bytes", len(data) // 2))
			n = max(0, min(n, len(data) - 1)) if data else 0
			self.headers_out(200, len(data), ctype, close=True)
			if not head and self.send_raw(data[:n]):
				sent = n
			self.log_access(status, sent, kind)
			self.kill_connection(False)
			return

		if kind == "stall":
			n = int(rule.get("bytes", 0))
			n = max(0, min(n, len(data)))
			self.headers_out(200, len(data), ctype, close=True)
			if not head and self.send_raw(data[:n]):
				sent = n
			self.log_access(status, sent, kind)
			if not head:
				self.sleep_unless_gone(rule.get("seconds", 600))
			self.kill_connection(False)
			return

		self.headers_out(200, len(data), ctype)
		if head:
			self.log_access(status, 0, kind)
			return
		if kind == "trickle":
			rate = max(1, int(rule.get("rate", 100)))
			slice_ = max(1, rate // 10)
			start = time.monotonic()
			while sent < len(data):
				chunk = data[sent:sent + slice_]
				if not self.send_raw(chunk):
					break
				sent += len(chunk)
				due = start + sent / rate
				wait = due - time.monotonic()
				if wait > 0 and self.client_gone(wait):
					self.close_connection = True
					break
			self.log_access(status, sent, kind)
			return
		if self.send_raw(data):
			sent = len(data)
		self.log_access(status, sent, kind)

	def serve_endless(self, rule, full, head):
		"""The "endless" fault: the file (if any), then fill bytes until a limit or the
		client goes away."""
		data = b""
		if full is not None:
			try:
				with open(full, "rb") as f:
					data = f.read()
			except OSError:
				data = b""
		ctype = "application/json" if self.path.endswith(".json") else "application/octet-stream"
		if rule.get("length", "none") == "huge":
			self.headers_out(200, 1 << 40, ctype, close=True)
		else:
			self.headers_out(200, None, ctype)
		sent = 0
		if not head:
			limit = int(rule["bytes"]) if "bytes" in rule else None
			fill = rule.get("fill", "zero")
			end = time.monotonic() + self.server.lifetime
			chunk = data
			while time.monotonic() < end:
				if not chunk:
					if fill == "random":
						chunk = os.urandom(65536)
					elif fill == "space":
						chunk = b" " * 65536
					else:
						chunk = b"\0" * 65536
				if limit is not None:
					if sent >= limit:
						break
					chunk = chunk[:limit - sent]
				if not self.send_raw(chunk):
					break
				sent += len(chunk)
				chunk = b""
		self.log_access(200, sent, "endless")
		self.kill_connection(False)

	def handle_one_request(self):
		try:
			super().handle_one_request()
		except (ConnectionResetError, BrokenPipeError, OSError):
			self.close_connection = True

	def finish(self):
		if getattr(self, "dead", False):
			return
		try:
			super().finish()
		except OSError:
			pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
	daemon_threads = True
	allow_reuse_address = True
	request_queue_size = 64

	def shutdown_request(self, request):
		try:
			super().shutdown_request(request)
		except OSError:
			pass

	def handle_error(self, request, client_address):
		pass


def main():
	ap = argparse.ArgumentParser(
		description=__doc__.split("\n\n")[0],
		formatter_class=argparse.RawDescriptionHelpFormatter,
		epilog=__doc__.split("\n\n", 1)[1])
	ap.add_argument("root")
	ap.add_argument("--bind", default="127.0.0.1")
	ap.add_argument("--port", type=int, default=0)
	ap.add_argument("--port-file")
	ap.add_argument("--access-log")
	ap.add_argument("--faults")
	ap.add_argument("--fault", action="append", type=parse_cli_rule, default=[])
	ap.add_argument("--lifetime", type=float, default=600.0)
	a = ap.parse_args()

	if not os.path.isdir(a.root):
		ap.error("%s: not a directory" % a.root)
	srv = Server((a.bind, a.port), Handler)
	srv.root = os.path.realpath(a.root)
	srv.rules = Rules(a.faults, a.fault)
	srv.lifetime = a.lifetime
	srv.log_lock = threading.Lock()
	srv.access_log = open(a.access_log, "a", buffering=1) if a.access_log else None
	port = srv.server_address[1]

	def bye(*_):
		os._exit(0)

	signal.signal(signal.SIGTERM, bye)
	signal.signal(signal.SIGINT, bye)
	timer = threading.Timer(a.lifetime, bye)
	timer.daemon = True
	timer.start()

	if a.port_file:
		tmp = a.port_file + ".tmp"
		with open(tmp, "w") as f:
			f.write("%d\n" % port)
		os.rename(tmp, a.port_file)
	sys.stderr.write("faultserver: serving %s at http://%s:%d/\n" % (srv.root, a.bind, port))
	srv.serve_forever(poll_interval=0.2)


if __name__ == "__main__":
	main()
