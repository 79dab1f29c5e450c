# A stand-in for kube-apiserver, kube-controller-manager and kube-scheduler in the restart
# tests: argv[1] is the component name, the rest are the real component's flags (unknown ones
# are ignored). It serves HTTPS on --secure-port with 200 on /livez, /healthz and /readyz,
# using --tls-cert-file/--tls-private-key-file when given, else a self-signed pair (as the
# controller-manager and scheduler generate one when none is configured).
#
# Test hooks, in /etc/kubernetes/standin/:
#   <name>.die          exit at once (a component that never comes back);
#   <name>.accept       JSON {path: content}: exit at once if a named file differs
#                       (a component that rejects its renewed certificates);
#   <name>.slowexit     seconds (read at SIGTERM): keep running that long after SIGTERM, then
#                       exit (a component draining its connections);
#   <name>.<pid>.loaded written at start: JSON {path: content} of every file the flags name,
#                       so a test can see which certificates this process loaded.
import http.server, json, os, signal, ssl, sys, time

name = sys.argv[1]
flags = {}
for a in sys.argv[2:]:
    if a.startswith("--") and "=" in a:
        k, v = a[2:].split("=", 1)
        flags[k] = v
hooks = "/etc/kubernetes/standin"
if os.path.exists(os.path.join(hooks, name + ".die")):
    sys.exit("stand-in: %s.die exists" % name)
loaded = {}
for v in flags.values():
    if v.startswith("/") and os.path.isfile(v):
        with open(v, encoding="utf-8", errors="replace", newline="") as f:
            loaded[v] = f.read()
accept = os.path.join(hooks, name + ".accept")
if os.path.exists(accept):
    with open(accept) as f:
        for path, want in json.load(f).items():
            if loaded.get(path) != want:
                sys.exit("stand-in: %s changed; refusing to start" % path)
tmp = os.path.join(hooks, "%s.%d.loaded.tmp" % (name, os.getpid()))
with open(tmp, "w") as f:
    json.dump(loaded, f)
os.rename(tmp, tmp[: -len(".tmp")])


def on_term(signum, frame):
    try:
        with open(os.path.join(hooks, name + ".slowexit")) as f:
            delay = float(f.read())
    except OSError:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    print("stand-in: SIGTERM, exiting in %ss" % delay, flush=True)
    time.sleep(delay)
    os._exit(0)


signal.signal(signal.SIGTERM, on_term)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok = self.path in ("/livez", "/healthz", "/readyz")
        body = b"ok" if ok else b"not found"
        self.send_response(200 if ok else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(
    flags.get("tls-cert-file", os.path.join(hooks, "self.crt")),
    flags.get("tls-private-key-file", os.path.join(hooks, "self.key")),
)
server = http.server.ThreadingHTTPServer(("127.0.0.1", int(flags["secure-port"])), Handler)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
print("stand-in %s serving on %s" % (name, flags["secure-port"]), flush=True)
server.serve_forever()
