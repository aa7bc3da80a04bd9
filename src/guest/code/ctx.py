# cocoon's code-interpreter contexts inside a box (no Jupyter): a context is one long-lived
# process listening on a unix socket; each run is one connection carrying a JSON request
# line in and NDJSON events (E2B's /execute shapes) out. Also the manager the host execs to
# create, list, restart and remove contexts. libcocoon writes this file into the guest
# (src/lib/code_runners.c); the host checks every line it sends back (src/lib/code_events.c).
import ast
import base64
import codecs
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid

BASE = "/run/cocoon/code/ctx"
CHUNK = 32 * 1024  # bytes of output per stdout/stderr event
STUCK_TRIES = 5  # interrupts, a second apart, before a run that ignores them ends its context
EXIT_NOT_FOUND = 3
EXIT_UNSUPPORTED = 4
LANGS = ("python", "javascript", "bash")
IMAGE_HINT = "use the code-interpreter image (cocoon run code-interpreter ...)"


class Conn:
    """One run's connection: events out (one writer at a time), and a watch that
    interrupts the run when the host side goes away."""

    def __init__(self, sock):
        self.sock = sock
        self.lock = threading.Lock()
        self.gone = False

    def send(self, ev):
        data = (json.dumps(ev, ensure_ascii=False, allow_nan=False, default=str) + "\n").encode("utf-8", "replace")
        with self.lock:
            if self.gone:
                return
            try:
                self.sock.sendall(data)
            except OSError:
                self.gone = True

    def text(self, kind, text):
        for i in range(0, len(text), CHUNK):
            self.send({"type": kind, "text": text[i : i + CHUNK]})


def read_request(sock):
    buf = b""
    while b"\n" not in buf:
        part = sock.recv(65536)
        if not part:
            return None
        buf += part
        if len(buf) > 64 * 1024 * 1024:
            return None
    line = buf.split(b"\n", 1)[0]
    return json.loads(line.decode("utf-8"))


class FdPump:
    """Forwards what is written to a file descriptor (ours, or a child's) as events while
    it is produced. A run ends its output with a marker of its own, so the pump can say
    when everything written before the end was sent."""

    def __init__(self, fd, kind):
        self.fd, self.kind = fd, kind
        self.conn = None
        self.marker = None
        self.seen = threading.Event()
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.pending = b""
        self.tail = ""
        threading.Thread(target=self.loop, daemon=True).start()

    def arm(self, conn, marker):
        self.conn, self.marker = conn, marker
        self.seen.clear()
        self.decoder.reset()
        self.pending = b""

    def emit(self, data):
        text = self.decoder.decode(data)
        if text and self.conn is not None:
            self.conn.text(self.kind, text)

    def loop(self):
        while True:
            try:
                data = os.read(self.fd, 65536)
            except InterruptedError:
                continue
            if not data:
                self.seen.set()
                return
            buf = self.pending + data
            self.pending = b""
            marker = self.marker
            if marker and marker in buf:
                before, after = buf.split(marker, 1)
                self.emit(before)
                self.emit(b"")
                self.seen.set()
                buf = after
                marker = None
            if marker:
                # keep back a tail that may be the start of the marker
                keep = 0
                for n in range(min(len(marker) - 1, len(buf)), 0, -1):
                    if marker.startswith(buf[-n:]):
                        keep = n
                        break
                if keep:
                    self.pending = buf[-keep:]
                    buf = buf[:-keep]
            self.emit(buf)

    def finish(self, write_fd, timeout=5.0):
        os.write(write_fd, self.marker)
        self.seen.wait(timeout)
        self.conn = None
        self.marker = None


def new_marker():
    return ("\0cocoon-end-%s\0" % uuid.uuid4().hex).encode()


class Watch:
    """Interrupts the run (SIGINT to the target) on its timeout or when the host side of
    the connection closes; the context lives on."""

    def __init__(self, conn, timeout_ms, interrupt, stuck):
        self.conn, self.interrupt, self.stuck = conn, interrupt, stuck
        self.done = threading.Event()
        self.timed_out = False
        self.deadline = time.monotonic() + timeout_ms / 1000.0 if timeout_ms else None
        threading.Thread(target=self.watch_peer, daemon=True).start()
        if self.deadline:
            threading.Thread(target=self.watch_clock, daemon=True).start()

    def watch_peer(self):
        while not self.done.is_set():
            try:
                data = self.conn.sock.recv(4096)
            except OSError:
                data = b""
            if not data:
                self.conn.gone = True
                if not self.done.is_set():
                    self.interrupt()
                return

    def watch_clock(self):
        if not self.done.wait(max(0.0, self.deadline - time.monotonic())):
            self.timed_out = True
            self.interrupt()
            # code that catches KeyboardInterrupt and goes on is interrupted again, for a
            # while; then the context gives up its state rather than hang forever
            for _ in range(STUCK_TRIES):
                if self.done.wait(1.0):
                    return
                self.interrupt()
            if not self.done.wait(1.0):
                self.stuck(self.conn)

    def stop(self):
        self.done.set()


# ---------------------------------------------------------------- python


MIME_METHODS = (
    ("html", "_repr_html_"),
    ("markdown", "_repr_markdown_"),
    ("svg", "_repr_svg_"),
    ("png", "_repr_png_"),
    ("jpeg", "_repr_jpeg_"),
    ("latex", "_repr_latex_"),
    ("json", "_repr_json_"),
    ("javascript", "_repr_javascript_"),
)


def rich_forms(value):
    out = {"text": repr(value)}
    for key, method in MIME_METHODS:
        fn = getattr(value, method, None)
        if not callable(fn) or isinstance(value, type):
            continue
        try:
            got = fn()
        except Exception:
            continue
        if isinstance(got, tuple):  # (data, metadata)
            got = got[0]
        if got is None:
            continue
        if key in ("png", "jpeg"):
            if isinstance(got, str):
                got = got.encode("ascii", "replace")
            if not isinstance(got, (bytes, bytearray)):
                continue
            got = base64.b64encode(bytes(got)).decode("ascii")
        elif key == "json":
            if not isinstance(got, (dict, list)):
                continue
            try:
                json.dumps(got, allow_nan=False)
            except (TypeError, ValueError):
                continue
        elif not isinstance(got, str):
            continue
        out[key] = got
    return out


def figures():
    """Every open matplotlib figure as a PNG result, then closed (as a notebook shows them)."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return []
    found = []
    try:
        import io

        for num in plt.get_fignums():
            fig = plt.figure(num)
            buf = io.BytesIO()
            fig.savefig(buf, format="png")
            found.append({"text": repr(fig), "png": base64.b64encode(buf.getvalue()).decode("ascii")})
        plt.close("all")
    except Exception as e:  # a broken figure must not lose the run's other results
        found.append({"text": "<figure could not be drawn: %s>" % e})
    return found


class PythonContext:
    def __init__(self):
        self.globals = {"__name__": "__main__", "__builtins__": __builtins__}
        self.count = 0
        self.running = False
        os.environ.setdefault("MPLBACKEND", "Agg")
        # fd 1 and 2 become pipes, so output of child processes streams too
        self.pumps = []
        for fd, kind in ((1, "stdout"), (2, "stderr")):
            r, w = os.pipe()
            os.dup2(w, fd)
            os.close(w)
            self.pumps.append(FdPump(r, kind))
        sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
        sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
        signal.signal(signal.SIGINT, self.on_sigint)

    def on_sigint(self, signum, frame):
        if self.running:
            raise KeyboardInterrupt

    def interrupt(self):
        os.kill(os.getpid(), signal.SIGINT)

    def give_up(self, conn):
        """The code swallowed every interrupt: end this process (the next run starts the
        context again, empty) and say so."""
        conn.send({"type": "error", "name": "TimeoutError", "traceback": "",
                   "value": "the code ignored %d interrupts after its timeout; the context was ended "
                            "and starts again, empty, on the next run" % STUCK_TRIES})
        conn.send({"type": "number_of_executions", "execution_count": self.count})
        os._exit(3)

    def run(self, conn, req):
        self.count += 1
        markers = [new_marker() for _ in self.pumps]
        for pump, marker in zip(self.pumps, markers):
            pump.arm(conn, marker)
        saved_env = {}
        for k, v in (req.get("env") or {}).items():
            saved_env[k] = os.environ.get(k)
            os.environ[k] = v
        watch = Watch(conn, req.get("timeout_ms") or 0, self.interrupt, self.give_up)
        value, error = None, None
        try:
            self.running = True
            try:
                value = self.execute(req.get("code", ""))
            finally:
                self.running = False
        except BaseException as e:  # the code's error is an event, never our end
            error = e
        watch.stop()
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:
            pass
        for pump, fd in zip(self.pumps, (1, 2)):
            pump.finish(fd)
        if error is not None:
            conn.send(self.error_event(error))
        elif value is not None:
            try:
                ev = {"type": "result", "is_main_result": True}
                ev.update(rich_forms(value))
                conn.send(ev)
            except Exception as e:
                conn.send(self.error_event(e))
        for fig in figures():
            ev = {"type": "result", "is_main_result": False}
            ev.update(fig)
            conn.send(ev)
        conn.send({"type": "number_of_executions", "execution_count": self.count})

    def execute(self, code):
        tree = ast.parse(code, "<cell>", "exec")
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        exec(compile(tree, "<cell>", "exec"), self.globals)
        if last is not None:
            return eval(compile(last, "<cell>", "eval"), self.globals)
        return None

    @staticmethod
    def error_event(e):
        tb = traceback.format_exception(type(e), e, e.__traceback__)
        # drop the frames of this file: the traceback starts in the user's cell
        lines = [tb[0]] + [s for s in tb[1:] if __file__ not in s]
        return {"type": "error", "name": type(e).__name__, "value": str(e), "traceback": "".join(lines)}


# ---------------------------------------------------------------- bash


class BashContext:
    def __init__(self, ctxdir):
        self.ctxdir = ctxdir
        self.count = 0
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        with open(os.path.join(self.ctxdir, "child.pid"), "w") as f:
            f.write(str(self.proc.pid))
        # bash survives the interrupt of its command; the command's children do not
        self.proc.stdin.write(b"trap ':' INT\n")
        self.proc.stdin.flush()
        self.pumps = [FdPump(self.proc.stdout.fileno(), "stdout"), FdPump(self.proc.stderr.fileno(), "stderr")]

    def interrupt(self):
        try:
            os.killpg(self.proc.pid, signal.SIGINT)
        except OSError:
            pass

    def kill(self, conn):
        """The command ignored every interrupt: bash goes with it (a new one starts)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass

    def run(self, conn, req):
        self.count += 1
        markers = [new_marker() for _ in self.pumps]
        for pump, marker in zip(self.pumps, markers):
            pump.arm(conn, marker)
        script = os.path.join(self.ctxdir, "run.sh")
        status = os.path.join(self.ctxdir, "status")
        with open(script, "w") as f:
            f.write(req.get("code", "") + "\n")
        envs = "".join("export %s=%s\n" % (k, shlex_quote(v)) for k, v in (req.get("env") or {}).items())
        # the script's stdin is not ours: bash reads its commands from that pipe
        line = "%s. %s < /dev/null; echo $? > %s; printf '%s'; printf '%s' >&2\n" % (
            envs,
            script,
            status,
            markers[0].decode().replace("\0", "\\0"),
            markers[1].decode().replace("\0", "\\0"),
        )
        watch = Watch(conn, req.get("timeout_ms") or 0, self.interrupt, self.kill)
        try:
            self.proc.stdin.write(line.encode())
            self.proc.stdin.flush()
        except OSError:
            pass
        for pump in self.pumps:
            while not pump.seen.wait(0.5):
                if self.proc.poll() is not None:
                    break
            pump.conn = None
            pump.marker = None
        watch.stop()
        if self.proc.poll() is not None:
            conn.send(
                {"type": "error", "name": "BashExited", "value": "bash exited with status %d; the context starts a new one" % self.proc.returncode, "traceback": ""}
            )
            self.start()
        else:
            try:
                with open(status) as f:
                    code = int(f.read().strip() or "0")
            except (OSError, ValueError):
                code = 0
            if watch.timed_out:
                conn.send({"type": "error", "name": "TimeoutError", "value": "interrupted: the run's timeout passed", "traceback": ""})
            elif code != 0:
                conn.send({"type": "error", "name": "ExitCode", "value": "exit status %d" % code, "traceback": ""})
        conn.send({"type": "number_of_executions", "execution_count": self.count})


def shlex_quote(s):
    return "'" + str(s).replace("'", "'\"'\"'") + "'"


# ---------------------------------------------------------------- serving


def serve(lang, ctxdir):
    sockpath = os.path.join(ctxdir, "sock")
    try:
        os.unlink(sockpath)
    except FileNotFoundError:
        pass
    ctx = PythonContext() if lang == "python" else BashContext(ctxdir)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(sockpath + ".tmp")
    srv.listen(16)
    os.rename(sockpath + ".tmp", sockpath)  # the socket appears only once it accepts
    while True:
        try:
            sock, _ = srv.accept()
        except InterruptedError:
            continue
        except KeyboardInterrupt:
            continue
        try:
            req = read_request(sock)
            if isinstance(req, dict):
                ctx.run(Conn(sock), req)
        except KeyboardInterrupt:
            pass
        except Exception as e:
            Conn(sock).send({"type": "error", "name": "ContextError", "value": str(e), "traceback": ""})
        finally:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the watch thread; the peer sees the end
                sock.close()
            except OSError:
                pass


# ---------------------------------------------------------------- manager


def fail(code, msg):
    sys.stderr.write(msg + "\n")
    sys.exit(code)


def read_meta(ctxid):
    try:
        with open(os.path.join(BASE, ctxid, "meta.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def pid_alive(path):
    try:
        with open(path) as f:
            pid = int(f.read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return 0


def context_alive(ctxid):
    d = os.path.join(BASE, ctxid)
    return pid_alive(os.path.join(d, "pid")) and os.path.exists(os.path.join(d, "sock"))


def interpreter(lang):
    name = {"python": "python3", "javascript": "node", "bash": "bash"}[lang]
    path = shutil.which(name)
    if not path:
        fail(EXIT_UNSUPPORTED, "%s is not installed in this box's image, so it has no %s context: %s" % (name, lang, IMAGE_HINT))
    if lang == "bash":
        return [sys.executable]
    return [path]


def spawn(meta):
    d = os.path.join(BASE, meta["id"])
    runners = os.path.dirname(os.path.abspath(__file__))
    if meta["language"] == "javascript":
        cmd = interpreter("javascript") + [os.path.join(runners, "ctx.js"), d]
    else:
        interpreter(meta["language"])
        cmd = [sys.executable, os.path.abspath(__file__), "serve", meta["language"], d]
    log = open(os.path.join(d, "log"), "ab")
    env = dict(os.environ)
    env["MPLBACKEND"] = "Agg"
    env["PYTHONUNBUFFERED"] = "1"
    proc = subprocess.Popen(
        cmd, cwd=meta["cwd"], stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, env=env
    )
    with open(os.path.join(d, "pid"), "w") as f:
        f.write(str(proc.pid))
    sockpath = os.path.join(d, "sock")
    deadline = time.monotonic() + 60
    while not os.path.exists(sockpath):
        if proc.poll() is not None:
            with open(os.path.join(d, "log"), "rb") as f:
                tail = f.read()[-2000:].decode("utf-8", "replace")
            fail(1, "the %s context did not start: %s" % (meta["language"], tail.strip()))
        if time.monotonic() > deadline:
            fail(1, "the %s context did not start within 60 s" % meta["language"])
        time.sleep(0.01)


def stop(ctxid):
    d = os.path.join(BASE, ctxid)
    for name in ("pid", "child.pid"):
        pid = pid_alive(os.path.join(d, name))
        if pid:
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
    for name in ("sock", "pid", "child.pid"):
        try:
            os.unlink(os.path.join(d, name))
        except FileNotFoundError:
            pass


def create(lang, cwd, ctxid):
    if lang not in LANGS:
        fail(2, "unknown language %r (python, javascript or bash)" % lang)
    interpreter(lang)
    cwd = cwd or "/"
    if not os.path.isdir(cwd):
        fail(2, "the context's working directory %s is not a directory in the box" % cwd)
    meta = {"id": ctxid or str(uuid.uuid4()), "language": lang, "cwd": cwd}
    d = os.path.join(BASE, meta["id"])
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f)
    spawn(meta)
    return meta


def manage(args):
    os.makedirs(BASE, exist_ok=True)
    op = args[0] if args else ""
    if op == "create":
        print(json.dumps(create(args[1], args[2] if len(args) > 2 else "", None)))
    elif op == "ensure":  # a run found no live context: start it again, or the default one
        ctxid = args[1]
        meta = read_meta(ctxid)
        if meta is None:
            if ctxid not in LANGS:
                fail(EXIT_NOT_FOUND, "no code context %s in this box" % ctxid)
            create(ctxid, args[2] if len(args) > 2 else "", ctxid)
        elif not context_alive(ctxid):
            stop(ctxid)
            spawn(meta)
    elif op == "list":
        out = []
        for name in sorted(os.listdir(BASE)):
            meta = read_meta(name)
            if meta:
                out.append(meta)
        print(json.dumps(out))
    elif op in ("restart", "remove"):
        meta = read_meta(args[1])
        if meta is None:
            fail(EXIT_NOT_FOUND, "no code context %s in this box" % args[1])
        stop(args[1])
        if op == "restart":
            spawn(meta)
        else:
            shutil.rmtree(os.path.join(BASE, args[1]), ignore_errors=True)
    else:
        fail(2, "usage: ctx.py manage create|ensure|list|restart|remove ...")


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3])
    elif len(sys.argv) >= 2 and sys.argv[1] == "manage":
        manage(sys.argv[2:])
    else:
        fail(2, "usage: ctx.py serve LANG DIR | ctx.py manage ...")
