"""Helpers for the image pull tests: a loopback Debian docker-registry, small test images
built with umoci from busybox-static and pushed with skopeo, a fake registry written in
Python for the behaviours a real one never shows (lying blobs, token auth), and the
image-tool driver compiled against the built libcocoon.a.

Everything listens on 127.0.0.1 only, and every server started here is stopped by the
fixture that started it.
"""
import base64
import gzip
import hashlib
import http.server
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import threading
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUSYBOX = "/bin/busybox"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(argv, **kw):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=kw.pop("timeout", 120), **kw)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({p.returncode}): {p.stderr[-2000:]}")
    return p


# ---- the library driver ----

def lib_dir():
    if os.environ.get("COCOON_LIB_DIR"):
        return os.environ["COCOON_LIB_DIR"]
    bin_dir = os.environ.get("COCOON_BIN_DIR")
    if bin_dir and os.path.exists(os.path.join(bin_dir, "..", "lib", "libcocoon.a")):
        return os.path.abspath(os.path.join(bin_dir, "..", "lib"))
    return os.path.join(REPO, "build", "lib")


def build_image_tool(out_dir, name="image-tool"):
    """Compiles tests/tools/NAME.c against libcocoon.a (sanitizer flags added when
    the library was built with them). Returns the binary's path."""
    lib = os.path.join(lib_dir(), "libcocoon.a")
    if not os.path.exists(lib):
        raise RuntimeError(f"{lib} is not built (make)")
    libs = run(["pkg-config", "--libs", "jansson", "sqlite3"]).stdout.split()
    out = os.path.join(out_dir, name)
    nm = subprocess.run(["nm", lib], capture_output=True, text=True).stdout
    san = ["-fsanitize=address,undefined"] if "__asan_" in nm else []
    run(["gcc", "-std=gnu11", "-g", "-Wall", "-Wextra", "-Werror", *san, "-I" + os.path.join(REPO, "src"),
         "-I" + os.path.join(REPO, "include"),
         "-o", out, os.path.join(REPO, "tests", "tools", name + ".c"), lib, *libs, "-lpthread", "-ldl"])
    return out


class Tool:
    def __init__(self, path, store):
        self.path = path
        self.store = store

    def run(self, *args, timeout=120, env=None):
        e = dict(os.environ)
        e.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
        e.update(env or {})
        return subprocess.run([self.path, self.store, *args], capture_output=True, text=True, timeout=timeout, env=e)

    def ok(self, *args, **kw):
        p = self.run(*args, **kw)
        if p.returncode != 0:
            raise AssertionError(f"image-tool {' '.join(args)} failed ({p.returncode}): {p.stderr}")
        return json.loads(p.stdout)

    def blobs(self):
        d = os.path.join(self.store, "blobs", "sha256")
        return sorted(os.listdir(d)) if os.path.isdir(d) else []


# ---- docker-registry ----

class Registry:
    """Debian's docker-registry on 127.0.0.1:<free port>, storage in a tmp dir."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.log_path = os.path.join(workdir, "registry.log")
        cfg = os.path.join(workdir, "config.yml")
        with open(cfg, "w") as f:
            f.write(f"""version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: {os.path.join(workdir, 'data')}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{self.port}
""")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(["/usr/bin/docker-registry", "serve", cfg], stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("docker-registry did not start: " + open(self.log_path).read()[-2000:])
            time.sleep(0.1)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def log_text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def blob_gets(self):
        """How many blob GETs the registry has answered so far (from its access log)."""
        return sum(1 for line in self.log_text().splitlines()
                   if '"GET /v2/' in line and "/blobs/sha256:" in line)

    def push_layout(self, layout, tag, name, all_images=False):
        argv = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false"]
        if all_images:
            argv.append("--all")
        run(argv + [f"oci:{layout}:{tag}", f"docker://{self.host}/{name}"])


# ---- test images ----

def build_layout(layout, tag, files, arch="amd64", cmd=None, env=None, workdir=None):
    """An OCI layout image with busybox plus files {path: bytes} in one layer, built
    with umoci (rootless). Returns the layout path."""
    if not os.path.exists(os.path.join(layout, "oci-layout")):
        run(["umoci", "init", "--layout", layout])
    run(["umoci", "new", "--image", f"{layout}:{tag}"])
    bundle = layout + f".bundle-{tag}"
    shutil.rmtree(bundle, ignore_errors=True)
    run(["umoci", "unpack", "--rootless", "--image", f"{layout}:{tag}", bundle])
    root = os.path.join(bundle, "rootfs")
    os.makedirs(os.path.join(root, "bin"), exist_ok=True)
    shutil.copy(BUSYBOX, os.path.join(root, "bin", "busybox"))
    os.symlink("busybox", os.path.join(root, "bin", "sh"))
    for path, data in files.items():
        full = os.path.join(root, path.lstrip("/"))
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(data)
    run(["umoci", "repack", "--image", f"{layout}:{tag}", bundle])
    shutil.rmtree(bundle, ignore_errors=True)
    argv = ["umoci", "config", "--image", f"{layout}:{tag}", f"--architecture={arch}", "--os=linux"]
    for c in cmd or []:
        argv.append(f"--config.cmd={c}")
    for e in env or []:
        argv.append(f"--config.env={e}")
    if workdir:
        argv.append(f"--config.workingdir={workdir}")
    run(argv)
    return layout


def layout_manifest(layout, tag):
    """The index.json descriptor of tag in an OCI layout."""
    with open(os.path.join(layout, "index.json")) as f:
        idx = json.load(f)
    for m in idx["manifests"]:
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            return m
    raise KeyError(tag)


def add_multiarch_index(layout, tags_platforms, index_tag):
    """Writes an image index blob over existing tags [(tag, arch)] and names it index_tag."""
    manifests = []
    for tag, arch in tags_platforms:
        d = dict(layout_manifest(layout, tag))
        d.pop("annotations", None)
        d["platform"] = {"architecture": arch, "os": "linux"}
        manifests.append(d)
    body = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                       "manifests": manifests}).encode()
    digest = hashlib.sha256(body).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", digest), "wb") as f:
        f.write(body)
    with open(os.path.join(layout, "index.json")) as f:
        idx = json.load(f)
    idx["manifests"].append({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": "sha256:" + digest,
                             "size": len(body), "annotations": {"org.opencontainers.image.ref.name": index_tag}})
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(idx, f)
    return "sha256:" + digest


# ---- fake registry ----

def make_image(files, compress=True):
    """An in-memory image: (manifest bytes, {digest: bytes}) with one layer of files."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            t.addfile(info, io.BytesIO(data))
    layer = gzip.compress(buf.getvalue(), mtime=0) if compress else buf.getvalue()
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Env": ["PATH=/bin", "FAKE=1"], "Cmd": ["/bin/sh"]},
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(buf.getvalue()).hexdigest()]}
                         }).encode()

    def desc(mt, data):
        return {"mediaType": mt, "digest": "sha256:" + hashlib.sha256(data).hexdigest(), "size": len(data)}

    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": desc("application/vnd.oci.image.config.v1+json", config),
        "layers": [desc("application/vnd.oci.image.layer.v1.tar" + ("+gzip" if compress else ""), layer)],
    }).encode()
    blobs = {"sha256:" + hashlib.sha256(d).hexdigest(): d for d in (config, layer)}
    return manifest, blobs


class FakeRegistry:
    """A minimal distribution API server in a thread. repos: {name: {"tags": {tag: manifest
    bytes}, "blobs": {digest: bytes}}}. Knobs: token (require Bearer auth, served from
    /token, optionally demanding basic credentials), lie (digest -> bytes served instead)."""

    def __init__(self, token=False, basic=None, basic_only=False):
        self.repos = {}
        self.lie = {}
        self.stall = {}  # digest -> seconds to hang after half the blob
        self.drip = {}  # digest -> bytes per second to send it at (slowly, never stalling)
        self.token_required = token
        self.basic = basic  # "user:pass" the token endpoint (or Basic-only registry) demands
        self.basic_only = basic_only
        self.token_value = "tok-" + hashlib.sha256(os.urandom(8)).hexdigest()[:16]
        self.requests = []
        fake = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def send(self, code, body=b"", headers=None):
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                fake.requests.append((self.path, self.headers.get("Authorization")))
                host = f"127.0.0.1:{fake.port}"
                if self.path.startswith("/token"):
                    if fake.basic:
                        want = "Basic " + base64.b64encode(fake.basic.encode()).decode()
                        if self.headers.get("Authorization") != want:
                            return self.send(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}')
                    return self.send(200, json.dumps({"token": fake.token_value}).encode(),
                                     {"Content-Type": "application/json"})
                if fake.basic_only:
                    want = "Basic " + base64.b64encode(fake.basic.encode()).decode()
                    if self.headers.get("Authorization") != want:
                        return self.send(401, b"", {"WWW-Authenticate": 'Basic realm="fake"'})
                elif fake.token_required and self.headers.get("Authorization") != "Bearer " + fake.token_value:
                    name = "/".join(self.path.split("/")[2:-2])
                    chal = (f'Bearer realm="http://{host}/token",service="fake-registry",'
                            f'scope="repository:{name}:pull"')
                    return self.send(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}',
                                     {"WWW-Authenticate": chal, "Content-Type": "application/json"})
                parts = self.path.split("/")
                if self.path == "/v2/":
                    return self.send(200, b"{}")
                if len(parts) < 5 or parts[1] != "v2":
                    return self.send(404)
                name = "/".join(parts[2:-2])
                kind, ref = parts[-2], parts[-1]
                repo = fake.repos.get(name)
                notfound = json.dumps({"errors": [{"code": "NAME_UNKNOWN" if not repo else "MANIFEST_UNKNOWN",
                                                   "message": "not found"}]}).encode()
                if not repo:
                    return self.send(404, notfound)
                if kind == "manifests":
                    body = repo["tags"].get(ref)
                    if body is None:
                        for m in repo["tags"].values():
                            if "sha256:" + hashlib.sha256(m).hexdigest() == ref:
                                body = m
                    if body is None:
                        return self.send(404, notfound)
                    return self.send(200, body, {"Content-Type": json.loads(body)["mediaType"]})
                if kind == "blobs":
                    if ref in fake.stall:  # half the blob, then silence
                        body = repo["blobs"][ref]
                        self.send_response(200)
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body[:len(body) // 2])
                        self.wfile.flush()
                        time.sleep(fake.stall[ref])
                        self.close_connection = True
                        return
                    if ref in fake.drip:  # a trickle: never silent, never done
                        body = repo["blobs"][ref]
                        self.send_response(200)
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        step = max(1, fake.drip[ref] // 10)
                        try:
                            for at in range(0, len(body), step):
                                self.wfile.write(body[at:at + step])
                                self.wfile.flush()
                                time.sleep(0.1)
                        except OSError:
                            pass
                        self.close_connection = True
                        return
                    if ref in fake.lie:
                        return self.send(200, fake.lie[ref])
                    if ref not in repo["blobs"]:
                        return self.send(404, b'{"errors":[{"code":"BLOB_UNKNOWN"}]}')
                    return self.send(200, repo["blobs"][ref])
                return self.send(404)

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # clients that hang up on purpose (refused blobs) are expected

        self.server = Server(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def add(self, name, tag, files, compress=True):
        manifest, blobs = make_image(files, compress)
        repo = self.repos.setdefault(name, {"tags": {}, "blobs": {}})
        repo["tags"][tag] = manifest
        repo["blobs"].update(blobs)
        return manifest, blobs

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
