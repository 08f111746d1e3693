"""Python function runtime bootstrap (entrypoint of the python-base image).

Speaks the line-based JSON protocol described in docker/README.md with the worker:
frames come in on the container's original stdin and go out on its original stdout.
Both are moved to private file descriptors before any user code runs; fds 1 and 2
are pointed at an unlinked log file under /tmp, so anything the function (or a
child process it starts) prints ends up in the "logs" field of the next frame and
can never corrupt the protocol stream.

The log file lives on the /tmp tmpfs, whose pages count against the container's memory
limit, so it is kept small: a background thread checks it (every 10 ms while the function
runs, every 2 s between calls; and from sys.stdout/sys.stderr after every TRIM_CHECK_CHARS
written) and, once it is over TRIM_AT bytes, keeps its last
LOG_CAP bytes in memory and empties it. sys.stdout/sys.stderr are replaced by text streams
that take the same lock as the trimming, so nothing printed from Python is lost to it
(raw writes to fds 1/2 and child processes' output can lose a few bytes at a trim).

Only `os`, `sys`, `json`, `threading` and `time` are imported at startup (cold-start
path); asyncio and traceback are imported the first time they are needed.
"""

import io
import json
import os
import sys
import threading
import time

LOG_CAP = 256 * 1024          # bytes of logs kept per frame (the LAST ones)
TRIM_AT = 1024 * 1024         # the log file is trimmed once it is bigger than this
TRIM_POLL_BUSY = 0.05         # seconds between two looks at its size while code runs
TRIM_POLL_IDLE = 2.0          # ... and between calls: hundreds of idle containers must not
                              # wake up several times a second each (costly under gVisor)
TRIM_CHECK_CHARS = 256 * 1024  # print() output after which the writer itself looks
TEXT_CAP = 64 * 1024          # characters kept of error.message / error.stack
result_limit = 6 * 1024 * 1024  # bytes of JSON a result may hold (the init frame's limits)
LOG_DIR = "/tmp"
CODE_DIR = "/tmp/function"
CODE_FILE = CODE_DIR + "/handler.py"
MODULE_NAME = "function"

_BOOT_FILE = __file__

# Set up in setup_fds().
proto_in = None     # buffered reader on a private dup of the original stdin
proto_out = -1      # private dup of the original stdout (frames)
diag_fd = -1        # private dup of the original stderr (bootstrap diagnostics)
log_fd = -1         # read/write fd of the log capture file (fds 1 and 2 point at it)
log_lock = threading.RLock()
log_saved = b""     # last LOG_CAP bytes of what the trimmer took out of the file since the last frame
log_dropped = False  # whether the trimmer emptied the file since the last frame
busy = False        # function code is running (init or a call)
written_since_check = 0  # characters print()ed since the writer last looked at the file size
trim_wake = threading.Event()


# ---------------------------------------------------------------------------
# plumbing

def fatal(msg, code=2):
    """Bootstrap-level failure: report on the original stderr and exit."""
    data = ("faas bootstrap: %s\n" % msg).encode("utf-8", "replace")
    fd = diag_fd if diag_fd >= 0 else 2
    try:
        os.write(fd, data)
    except OSError:
        pass
    os._exit(code)


class LockedTextIO(io.TextIOWrapper):
    """sys.stdout / sys.stderr: writes don't interleave with trimming the log file."""

    def write(self, s):
        global written_since_check
        with log_lock:
            n = super().write(s)
            written_since_check += len(s)
            if written_since_check >= TRIM_CHECK_CHARS:
                written_since_check = 0
                super().flush()
                trim_log()
            return n

    def flush(self):
        with log_lock:
            return super().flush()


def setup_fds():
    global proto_in, proto_out, diag_fd, log_fd
    # os.dup() returns non-inheritable (close-on-exec) fds: child processes never see them.
    in_fd = os.dup(0)
    proto_out = os.dup(1)
    diag_fd = os.dup(2)
    for fd in (in_fd, proto_out):
        try:
            os.set_blocking(fd, True)
        except OSError:
            pass
    path = "%s/.faas-log-%d" % (LOG_DIR, os.getpid())
    try:
        log_fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC, 0o600)
        # Unlinked: user code cannot delete, replace or read it behind our back.
        os.unlink(path)
    except OSError as e:
        fatal("cannot create the log capture file in %s: %s" % (LOG_DIR, e))
    devnull = os.open(os.devnull, os.O_RDONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os.dup2(devnull, 0)
    os.dup2(log_fd, 1)   # inheritable: child processes log into the capture too
    os.dup2(log_fd, 2)
    os.close(devnull)
    for name in ("stdout", "stderr"):
        old = getattr(sys, name)
        try:
            setattr(sys, name, LockedTextIO(old.buffer, encoding=old.encoding, errors=old.errors,
                                            line_buffering=old.line_buffering, write_through=True))
        except Exception:
            pass
    proto_in = os.fdopen(in_fd, "rb", buffering=1 << 16)
    threading.Thread(target=trimmer, name="faas-log-trimmer", daemon=True).start()


def read_frame():
    """Next frame from the worker as a dict, or None on EOF. Blank lines are ignored."""
    while True:
        try:
            line = proto_in.readline()
        except OSError as e:
            fatal("reading stdin failed: %s" % e)
        if not line:
            return None
        if line.strip():
            break
    try:
        frame = json.loads(line)
    except ValueError as e:
        fatal("malformed frame (not JSON: %s): %.200r" % (e, line))
    if not isinstance(frame, dict):
        fatal("malformed frame (not a JSON object): %.200r" % (line,))
    return frame


def send_raw(text):
    data = text.encode("utf-8", "replace")   # "replace" only ever hits lone surrogates
    view = memoryview(data)
    try:
        while view:
            n = os.write(proto_out, view)
            view = view[n:]
    except OSError as e:
        fatal("writing a frame to stdout failed: %s" % e)


def dumps(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def flush_std():
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except BaseException:
            pass


def read_tail():
    """(last LOG_CAP bytes of the log file, its size); the caller holds log_lock."""
    size = os.fstat(log_fd).st_size
    offset = max(0, size - LOG_CAP)
    want = size - offset
    chunks = []
    while want > 0:
        chunk = os.pread(log_fd, want, offset)
        if not chunk:
            break
        chunks.append(chunk)
        want -= len(chunk)
        offset += len(chunk)
    return b"".join(chunks), size


def trim_log():
    """Keep the log file small (see the module docstring)."""
    global log_saved, log_dropped
    with log_lock:
        if os.fstat(log_fd).st_size <= TRIM_AT:
            return
        log_saved, _ = read_tail()
        os.ftruncate(log_fd, 0)   # fds 1/2 are O_APPEND: the next write goes to offset 0
        log_dropped = True


def set_busy(value):
    # No wake-up of the trimmer here: a thread switch on every call costs more than the call.
    # It looks within TRIM_POLL_IDLE of a call's start, and print() output checks itself.
    global busy
    busy = value


def trimmer():
    while True:
        if trim_wake.wait(TRIM_POLL_BUSY if busy else TRIM_POLL_IDLE):
            trim_wake.clear()
        try:
            trim_log()
        except Exception:
            pass


def collect_logs():
    """Everything written to fds 1/2 since the last frame (last LOG_CAP bytes), then empty the file."""
    global log_saved, log_dropped
    flush_std()
    try:
        with log_lock:
            data, size = read_tail()
            truncated = size > LOG_CAP or log_dropped
            if log_dropped and len(data) < LOG_CAP:
                data = log_saved[max(0, len(log_saved) - (LOG_CAP - len(data))):] + data
            log_saved, log_dropped = b"", False
            os.ftruncate(log_fd, 0)
    except OSError as e:
        return "[faas: reading logs failed: %s]" % e, False
    if truncated:
        # Don't start in the middle of a UTF-8 sequence.
        i = 0
        while i < 3 and i < len(data) and (data[i] & 0xC0) == 0x80:
            i += 1
        data = data[i:]
    return data.decode("utf-8", "replace"), truncated


def cap_text(s):
    if len(s) > TEXT_CAP:
        return s[:TEXT_CAP] + "\n[... truncated]"
    return s


def error_info(exc):
    """{"type","message","stack"} for an exception, without the bootstrap's own frames."""
    try:
        message = str(exc)
    except BaseException:
        message = "<unprintable %s object>" % type(exc).__name__
    try:
        import traceback
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename == _BOOT_FILE:
            tb = tb.tb_next
        stack = "".join(traceback.format_exception(type(exc), exc, tb))
    except BaseException:
        stack = "%s: %s\n" % (type(exc).__name__, message)
    return {"type": type(exc).__name__, "message": cap_text(message), "stack": cap_text(stack)}


# ---------------------------------------------------------------------------
# the function

class Context(object):
    """The `context` argument of the handler, as AWS's Python runtime gives it (where
    `function_version` and `memory_limit_in_mb` are strings), plus `invocation_id`,
    `deadline_unix_ms` and `attempt` (1-based; above 1 only for a retried async call)."""

    def __init__(self, c):
        self.invocation_id = c.get("invocation_id")
        self.aws_request_id = self.invocation_id
        self.function_name = c.get("function_name")
        version, memory = c.get("function_version"), c.get("memory_mb")
        self.function_version = None if version is None else str(version)
        self.memory_limit_in_mb = None if memory is None else str(memory)
        self.invoked_function_arn = c.get("invoked_function_arn")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.identity = None
        self.client_context = None
        self.deadline_unix_ms = c.get("deadline_unix_ms")
        attempt = c.get("attempt")
        self.attempt = attempt if isinstance(attempt, int) and attempt > 0 else 1

    def get_remaining_time_in_millis(self):
        """Milliseconds until the deadline (0 when it passed or none was given)."""
        d = self.deadline_unix_ms
        if not isinstance(d, (int, float)):
            return 0
        return max(0, int(d - time.time() * 1000))

    def __repr__(self):
        return ("LambdaContext([aws_request_id=%s,log_group_name=%s,log_stream_name=%s,"
                "function_name=%s,memory_limit_in_mb=%s,function_version=%s,"
                "invoked_function_arn=%s,client_context=%s,identity=%s])" % (
                    self.aws_request_id, self.log_group_name, self.log_stream_name,
                    self.function_name, self.memory_limit_in_mb, self.function_version,
                    self.invoked_function_arn, self.client_context, self.identity))


# ---------------------------------------------------------------------------
# logging, as AWS's runtime sets it up

request_id = ""     # the call in flight's, for log lines ("" while loading)


class LoggingHook(object):
    """A finder on sys.meta_path that sets up the root logger once `logging` is first
    imported (by the function or by asyncio): importing it at start-up would cost every cold
    start a few milliseconds, for functions that never log."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name != "logging":
            return None
        sys.meta_path.remove(LoggingHook)
        from importlib.machinery import PathFinder
        spec = PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_configure(module):
            exec_module(module)
            configure_logging(module)

        spec.loader.exec_module = exec_and_configure
        return spec


def configure_logging(logging):
    """Root logger at INFO into the call's logs, each line as Lambda writes it:
    `[LEVEL]<TAB>2024-01-01T00:00:00.123Z<TAB>request id<TAB>message`."""

    class RequestId(logging.Filter):
        def filter(self, record):
            record.aws_request_id = request_id
            return True

    handler = logging.StreamHandler(sys.stdout)
    formatter = logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
        "%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    handler.addFilter(RequestId())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def lambda_env(fn, env):
    """The AWS_LAMBDA_* variables of the function (from the init frame's `function`), where
    its own env does not set them."""
    if not isinstance(fn, dict):
        return
    for key, field in (("AWS_LAMBDA_FUNCTION_NAME", "name"),
                       ("AWS_LAMBDA_FUNCTION_VERSION", "version"),
                       ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "memory_mb"),
                       ("AWS_LAMBDA_LOG_GROUP_NAME", "log_group_name"),
                       ("AWS_LAMBDA_LOG_STREAM_NAME", "log_stream_name")):
        value = fn.get(field)
        if value is not None and key not in env:
            os.environ[key] = str(value)


def apply_env(env):
    for k, v in env.items():
        if not isinstance(v, str):
            v = dumps(v) if v is not None else ""
        if not k or "=" in k or "\0" in k or "\0" in v:
            raise ValueError("invalid environment variable name or value: %r" % (k,))
        os.environ[k] = v


def load_function(code, handler_name):
    """Run the function's code as module `function` (file /tmp/function/handler.py).

    Returns (handler, None) or (None, error_info)."""
    if sys.path and sys.path[0] == os.path.dirname(_BOOT_FILE):
        sys.path[0] = CODE_DIR   # not the bootstrap's directory
    try:
        os.makedirs(CODE_DIR, exist_ok=True)
        with open(CODE_FILE, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(code)   # for tracebacks (linecache) and inspect.getsource()
    except (OSError, UnicodeError):
        pass
    module = type(sys)(MODULE_NAME)
    module.__file__ = CODE_FILE
    sys.modules[MODULE_NAME] = module
    try:
        exec(compile(code, CODE_FILE, "exec", dont_inherit=True), module.__dict__)
    except KeyboardInterrupt:
        raise
    except BaseException as e:
        return None, error_info(e)
    # "handler" or, AWS-style, "module.handler": the attribute is the part after the last dot.
    return find_handler(module, handler_name.rsplit(".", 1)[-1], "the function code")


def find_handler(module, attr, where):
    """(handler, None), or (None, error_info) when `module` has no callable `attr`."""
    fn = getattr(module, attr, None)
    if fn is None:
        return None, {"type": "Runtime.HandlerNotFound",
                      "message": "handler %r is not defined in %s" % (attr, where),
                      "stack": ""}
    if not callable(fn):
        return None, {"type": "Runtime.HandlerNotFound",
                      "message": "handler %r is not callable (it is a %s)" % (attr, type(fn).__name__),
                      "stack": ""}
    return fn, None


def load_package(package_dir, handler_name):
    """Import the handler's module from a deployment package, as Lambda does from its task
    root: the package first on the import path and the working directory, `file.name` naming
    module `file` (slashes and dots both separate packages). Returns (handler, None) or (None,
    error_info)."""
    module_path, _, attr = handler_name.rpartition(".")
    module_name = module_path.replace("/", ".")
    if sys.path and sys.path[0] == os.path.dirname(_BOOT_FILE):
        sys.path[0] = package_dir
    else:
        sys.path.insert(0, package_dir)
    os.environ.setdefault("LAMBDA_TASK_ROOT", package_dir)
    try:
        os.chdir(package_dir)
    except OSError:
        pass
    import importlib
    try:
        module = importlib.import_module(module_name)
    except KeyboardInterrupt:
        raise
    except ImportError as e:
        # Lambda's name and words for it, the missing module being the function's or one it
        # imports.
        err = error_info(e)
        err["type"] = "Runtime.ImportModuleError"
        err["message"] = "Unable to import module %r: %s" % (module_name, e)
        return None, err
    except BaseException as e:
        return None, error_info(e)
    return find_handler(module, attr, "module %r" % module_name)


_loop = None


def get_loop():
    """One persistent event loop for all async calls (created on first use)."""
    global _loop
    if _loop is None or _loop.is_closed():
        import asyncio
        loop = None
        try:
            # Reuse a loop the function's module code may have set up while loading.
            import warnings
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                loop = asyncio.get_event_loop_policy().get_event_loop()
            if loop.is_closed() or loop.is_running():
                loop = None
        except Exception:
            loop = None
        if loop is None:
            loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        _loop = loop
    return _loop


async def _guard(awaitable):
    # Catch everything inside the task so that SystemExit/CancelledError & co. end the task
    # normally and leave the loop in a clean state for the next call.
    try:
        return True, await awaitable
    except BaseException as e:
        return False, e


def call_handler(handler, event, context):
    """(True, result) or (False, exception); KeyboardInterrupt propagates."""
    try:
        result = handler(event, context)
        if hasattr(type(result), "__await__"):
            ok, result = get_loop().run_until_complete(_guard(result))
            if not ok:
                raise result
        return True, result
    except KeyboardInterrupt:
        raise
    except BaseException as e:
        return False, e


def marshal(result):
    """JSON text of the result, or raise."""
    text = json.dumps(result, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    text.encode("utf-8")   # lone surrogates can't be sent as UTF-8
    return text


def handle_invoke(handler, frame):
    call_id = frame.get("id")
    if not isinstance(call_id, str):
        fatal("malformed invoke frame: \"id\" must be a string")
    ctx = frame.get("context")
    if not isinstance(ctx, dict):
        ctx = {}
    global request_id
    context = Context(ctx)
    request_id = context.aws_request_id or ""
    set_busy(True)
    ok, value = call_handler(handler, frame.get("event"), context)
    if ok:
        try:
            result_text = marshal(value)
        except KeyboardInterrupt:
            raise
        except BaseException as e:
            ok = False
            error = {"type": "Runtime.MarshalError",
                     "message": cap_text("the handler's result cannot be sent as JSON: %s: %s"
                                         % (type(e).__name__, e)),
                     "stack": ""}
    if ok:
        # At least one byte per character: only a result that may be near the limit is encoded.
        size = len(result_text)
        if size * 4 > result_limit:
            size = len(result_text.encode("utf-8"))
        if size > result_limit:
            ok = False
            result_text = None
            error = {"type": "Runtime.ResultTooLarge",
                     "message": "the function's result is %d bytes of JSON, over the limit of %d bytes (6 MiB)"
                                % (size, result_limit),
                     "stack": ""}
    else:
        error = error_info(value)
        value.__traceback__ = None
    value = None
    set_busy(False)
    request_id = ""
    logs, truncated = collect_logs()
    head = '{"op":"result","id":' + dumps(call_id)
    tail = ',"logs":' + dumps(logs) + ',"logs_truncated":' + ("true" if truncated else "false") + "}\n"
    if ok:
        send_raw(head + ',"ok":true,"result":' + result_text + tail)
    else:
        send_raw(head + ',"ok":false,"error":' + dumps(error) + tail)


def main():
    setup_fds()
    if "logging" not in sys.modules:
        sys.meta_path.insert(0, LoggingHook)
    else:
        configure_logging(sys.modules["logging"])
    frame = read_frame()
    if frame is None:
        os._exit(0)
    if frame.get("op") != "init":
        fatal("expected an init frame first, got op %r" % (frame.get("op"),))
    global result_limit
    code, handler_name, env = frame.get("code"), frame.get("handler", "handler"), frame.get("env")
    limits = frame.get("limits")
    if isinstance(limits, dict) and isinstance(limits.get("result_bytes"), int) and limits["result_bytes"] > 0:
        result_limit = limits["result_bytes"]
    if env is None:
        env = {}
    if not isinstance(code, str) or not isinstance(handler_name, str) or not isinstance(env, dict):
        fatal("malformed init frame: needs string \"code\", string \"handler\" and object \"env\"")

    try:
        apply_env(env)
        lambda_env(frame.get("function"), env)
    except ValueError as e:
        err = {"type": "Runtime.InvalidEnvironment", "message": str(e), "stack": ""}
        send_raw(dumps({"op": "init_error", "error": err, "logs": ""}) + "\n")
        os._exit(1)

    set_busy(True)
    package_dir = frame.get("package_dir")
    if isinstance(package_dir, str) and package_dir:
        handler, err = load_package(package_dir, handler_name)
    else:
        handler, err = load_function(code, handler_name)
    set_busy(False)
    logs, _ = collect_logs()
    if err is not None:
        send_raw(dumps({"op": "init_error", "error": err, "logs": logs}) + "\n")
        os._exit(1)
    send_raw(dumps({"op": "ready", "logs": logs}) + "\n")

    while True:
        frame = read_frame()
        if frame is None:
            break
        op = frame.get("op")
        if op != "invoke":
            fatal("unexpected frame op %r (expected \"invoke\")" % (op,))
        handle_invoke(handler, frame)
    flush_std()
    os._exit(0)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        fatal("interrupted", 130)
    except BaseException as e:
        import traceback
        fatal("internal error:\n" + "".join(traceback.format_exception(type(e), e, e.__traceback__)), 3)
