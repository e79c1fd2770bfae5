# sandlet's host for Python storlets written against the OpenStack Storlets Python API.
#
# One host process per storlet daemon: it imports the storlet's module once (an import error
# fails the daemon's start), then forks worker processes that start with the module loaded. Each
# worker runs one task at a time in its own process group, so a cancel kills just that task
# (busy loop, blocking read or sleep alike) with whatever it started. A worker whose task ended
# clean (no fd, thread or child process left) takes the next one without a fork: fork, exit and
# wait cost more than the whole of a small task; any other worker is killed with its group.
#
# Protocol with the agent (src/agent/python-runtime.ts):
#   agent -> host: datagrams on --socket; a task carries its fds by SCM_RIGHTS, in the order
#                  output, metadata, [logger], inputs...; a cancel carries none.
#   host -> agent: one JSON line per event on stdout: ready, load-error, done.
#   stdin: the agent keeps it open; its end (the agent went) ends the host and every task. A
#          line on it asks the host to drain the task socket (the agent found its queue full)
#          and answer `drained`.
import importlib
import json
import os
import re
import select
import signal
import socket
import sys
import time
import traceback

MAX_DATAGRAM = 1 << 20
MAX_FDS = 253
CHUNK = 64 * 1024


def emit(event):
    sys.stdout.write(json.dumps(event) + '\n')
    sys.stdout.flush()


def one_line(text):
    text = ' '.join(str(text).split())
    return text[:1000] if text else 'error'


# -- The Storlets API, as storlets see it ------------------------------------------------------

_UNSAFE = re.compile('[\x00-\x1f\x7f-\x9f\\\\\u2028\u2029\u202a-\u202e\u2066-\u2069]')
_NAMED = {'\n': '\\n', '\r': '\\r', '\t': '\\t', '\\': '\\\\'}


def _escape(text):
    def sub(m):
        c = m.group(0)
        if c in _NAMED:
            return _NAMED[c]
        code = ord(c)
        return '\\x%02x' % code if code < 0x100 else '\\u%04x' % code
    return _UNSAFE.sub(sub, text)


class StorletLogger(object):
    """The invocation log: one escaped line per call, bounded like a JS storlet's."""

    def __init__(self, fd, max_bytes):
        self._fd = fd
        self._max = max_bytes
        self._written = 0
        self._truncated = fd is None

    def _emit(self, level, msg):
        if self._truncated:
            return
        now = time.time()
        stamp = time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(now)) + '.%03dZ' % int((now % 1) * 1000)
        line = ('%s %s %s\n' % (stamp, level, _escape(str(msg)))).encode('utf-8', 'replace')
        if self._written + len(line) > self._max:
            self._truncated = True
            line = ('%s WARN log of this invocation truncated at %d bytes\n' % (stamp, self._max)).encode()
        self._written += len(line)
        try:
            os.write(self._fd, line)
        except OSError:
            self._truncated = True  # logging never fails the storlet

    def debug(self, msg):
        self._emit('DEBUG', msg)

    def info(self, msg):
        self._emit('INFO', msg)

    def warn(self, msg):
        self._emit('WARN', msg)

    warning = warn

    def error(self, msg):
        self._emit('ERROR', msg)

    def exception(self, msg):
        self._emit('ERROR', '%s: %s' % (msg, traceback.format_exc()))

    @property
    def closed(self):
        return False

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _StorletFile(object):
    def __init__(self, fd, mode):
        self._fd = fd
        self._file = os.fdopen(fd, mode, closefd=True)

    def fileno(self):
        return self._fd

    @property
    def closed(self):
        return self._file.closed

    def close(self):
        if not self._file.closed:
            try:
                self._file.close()
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class StorletInputFile(_StorletFile):
    """An input object. With a range (first and last byte, inclusive), reads cover just it."""

    def __init__(self, fd, metadata, start=None, end=None):
        super(StorletInputFile, self).__init__(fd, 'rb')
        self._metadata = metadata
        self._left = None
        if start is not None:
            self._left = end - start + 1
            try:
                self._file.seek(start)
            except (OSError, ValueError):
                skip = start  # a pipe: its bytes before the range are read and dropped
                while skip > 0:
                    got = self._file.read(min(skip, CHUNK))
                    if not got:
                        break
                    skip -= len(got)

    def get_metadata(self):
        return dict(self._metadata)

    def _limit(self, size):
        if self._left is None:
            return size
        return self._left if size is None or size < 0 else min(size, self._left)

    def _took(self, data):
        if self._left is not None:
            self._left -= len(data)
        return data

    def read(self, size=-1):
        size = self._limit(size)
        if size == 0:
            return b''
        return self._took(self._file.read(size))

    def readline(self, size=-1):
        size = self._limit(size)
        if size == 0:
            return b''
        return self._took(self._file.readline(size))

    def readlines(self, sizehint=-1):
        lines = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if sizehint is not None and 0 < sizehint <= total:
                return lines

    def __iter__(self):
        return self

    def __next__(self):
        data = self.read(CHUNK)
        if not data:
            raise StopIteration()
        return data

    next = __next__


class StorletOutputFile(_StorletFile):
    """The output object: metadata is set once, before any write (as in Storlets)."""

    def __init__(self, fd, metadata_fd):
        super(StorletOutputFile, self).__init__(fd, 'wb')
        self._md_fd = metadata_fd
        self._metadata = None

    def set_metadata(self, metadata):
        if self._md_fd is None:
            raise IOError('Sending metadata twice is not allowed')
        if not isinstance(metadata, dict):
            raise TypeError('metadata must be a dict')
        data = json.dumps(metadata).encode('utf-8')
        fd, self._md_fd = self._md_fd, None
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        self._metadata = dict(metadata)

    def get_metadata(self):
        if self._metadata is None:
            raise IOError('Metadata is not set yet')
        return dict(self._metadata)

    def write(self, data):
        if self._md_fd is not None:
            raise IOError('Body should be sent after metadata is sent')
        return self._file.write(data)

    def writelines(self, lines):
        if self._md_fd is not None:
            raise IOError('Body should be sent after metadata is sent')
        self._file.writelines(lines)

    def flush(self):
        self._file.flush()

    def close(self):
        if self._md_fd is not None:
            os.close(self._md_fd)
            self._md_fd = None
        super(StorletOutputFile, self).close()


# -- A task, in a worker process ----------------------------------------------------------------

def run_task(storlet_cls, header, fds, storlet_dir):
    """Runs one invocation on its fds (closing them all); returns its outcome."""
    out_fd, md_fd = fds[0], fds[1]
    rest = fds[2:]
    logger_fd = rest.pop(0) if header.get('logger') else None
    logger = StorletLogger(logger_fd, int(header.get('logMaxBytes') or 1 << 20))
    outcome = {'ok': True, 'message': 'done'}
    out = None
    ins = []
    try:
        out = StorletOutputFile(out_fd, md_fd)
        for fd, spec in zip(rest, header['inputs']):
            rng = spec.get('range')
            ins.append(StorletInputFile(fd, spec.get('metadata') or {},
                                        rng['start'] if rng else None, rng['end'] if rng else None))
        params = dict(header.get('params') or {})
        params.setdefault('storlet_execution_path', storlet_dir)
        storlet = storlet_cls(logger)
        storlet(ins, [out], params)
        if not out.closed:
            out.flush()
    except BaseException as err:  # SystemExit and KeyboardInterrupt from a storlet fail it too
        message = one_line('%s: %s' % (type(err).__name__, err) if str(err) else type(err).__name__)
        logger.error('storlet failed: %s' % traceback.format_exc())
        outcome = {'ok': False, 'message': message}
    # Every fd of the task is closed here, whatever the storlet did with its files.
    for f in ins + ([out] if out else []):
        f.close()
    wrapped = set(f.fileno() for f in ins) | ({out_fd} if out else set())
    for fd in [fd for fd in fds if fd not in wrapped] + ([md_fd] if out is None else []):
        try:
            os.close(fd)
        except OSError:
            pass
    return outcome


def leftovers(baseline_fds):
    """What a task left behind in its worker: open fds, threads or child processes."""
    try:
        fds = set(os.listdir('/proc/self/fd'))
        threads = len(os.listdir('/proc/self/task'))
    except OSError:
        return 'no /proc to check'
    if fds != baseline_fds:
        return 'fds'
    if threads != 1:
        return 'threads'
    try:
        os.waitpid(-1, os.WNOHANG)
        return 'child processes'
    except ChildProcessError:
        return None


def worker_main(storlet_cls, ctl, storlet_dir):
    """A worker: runs tasks one at a time, sent with their fds on ctl. Never returns.

    A task that failed or left anything behind (an fd, a thread, a child process) ends its worker,
    and the host kills the worker's process group: nothing of a task outlives it. A clean worker
    takes the next task without a fork, as a JS task thread does."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # as for any process writing to a pipe
    while True:
        baseline = set(os.listdir('/proc/self/fd')) if os.path.isdir('/proc/self/fd') else None
        try:
            data, fds, _, _ = socket.recv_fds(ctl, MAX_DATAGRAM, MAX_FDS)
        except OSError:
            os._exit(0)
        if not data:
            os._exit(0)  # the host went
        outcome = run_task(storlet_cls, json.loads(data), fds, storlet_dir)
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        left = leftovers(baseline) if baseline is not None and outcome['ok'] else 'failed'
        outcome['recycle'] = left is not None
        try:
            ctl.send(json.dumps(outcome).encode('utf-8')[:8000])
        except OSError:
            os._exit(0)
        if left is not None:
            os._exit(0)


# -- The host's loop -----------------------------------------------------------------------------

class Worker(object):
    def __init__(self, pid, ctl):
        self.pid = pid
        self.ctl = ctl
        self.task = None
        self.killed = False  # by a cancel: never reused, even if its task's outcome was already sent


class Host(object):
    def __init__(self, sock_path, storlet_dir, main, pool_size):
        self.storlet_dir = storlet_dir
        self.pool_size = pool_size
        module_name, _, cls_name = main.partition('.')
        sys.path.insert(0, storlet_dir)
        module = importlib.import_module(module_name)
        self.storlet_cls = getattr(module, cls_name)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(sock_path)
        self.sock.setblocking(False)
        self.sock_path = sock_path
        self.idle = []       # workers waiting for a task
        self.busy = {}       # control socket fd -> worker with a task
        self.tasks = {}      # task id -> worker
        self.poll = select.poll()
        self.poll.register(self.sock.fileno(), select.POLLIN)
        self.poll.register(0, select.POLLIN)

    def serve(self):
        emit({'type': 'ready'})  # the first worker forks while the agent checks the daemon
        self.idle.append(self.fork_worker())
        while True:
            for fd, _ in self.poll.poll():
                if fd == self.sock.fileno():
                    self.receive()
                elif fd == 0:
                    if not os.read(0, 4096):
                        return  # the agent went
                    # The agent found the task socket's queue full: drain it, then say so.
                    while self.receive():
                        pass
                    emit({'type': 'drained'})
                elif fd in self.busy:
                    self.finish(self.busy[fd])

    def receive(self):
        """Takes one datagram off the task socket; False when none was waiting."""
        # A worker is forked only while this process holds no task's fds: one forked while it
        # did would keep that task's pipes open for good.
        if not self.idle:
            self.idle.append(self.fork_worker())
        try:
            data, fds, _, _ = socket.recv_fds(self.sock, MAX_DATAGRAM, MAX_FDS)
        except BlockingIOError:
            return False
        try:
            msg = json.loads(data)
        except ValueError:
            msg = {}
        if msg.get('type') == 'cancel':
            worker = self.tasks.get(msg.get('id'))
            if worker:
                worker.killed = True
                kill_group(worker.pid)  # its control socket then reaches EOF: finish() reports it
        if msg.get('type') != 'task':
            for fd in fds:
                os.close(fd)
            return True
        worker = self.idle.pop()
        try:
            socket.send_fds(worker.ctl, [data], fds)
        except OSError:
            kill_group(worker.pid)  # a broken worker: the task fails as its process died
        finally:
            for fd in fds:
                os.close(fd)
        worker.task = msg['id']
        self.tasks[worker.task] = worker
        self.busy[worker.ctl.fileno()] = worker
        self.poll.register(worker.ctl.fileno(), select.POLLIN)
        self.keep_spare()
        return True

    def keep_spare(self):
        """Forks the next task's worker now, between tasks, unless one waits or the pool is busy."""
        if not self.idle and len(self.busy) < self.pool_size:
            self.idle.append(self.fork_worker())

    def fork_worker(self):
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            try:
                os.setpgid(0, 0)
                parent_end.close()
                self.sock.close()
                for w in self.idle + list(self.busy.values()):
                    w.ctl.close()  # other workers' channels are not this one's business
                # stdin and stdout are the host's channel to the agent: not the storlet's.
                null = os.open(os.devnull, os.O_RDWR)
                os.dup2(null, 0)
                os.dup2(2, 1)
                os.close(null)
                worker_main(self.storlet_cls, child_end, self.storlet_dir)
            finally:
                os._exit(4)
        try:
            os.setpgid(pid, pid)  # also here: a cancel may come before the child ran at all
        except OSError:
            pass
        child_end.close()
        return Worker(pid, parent_end)

    def finish(self, worker):
        fd = worker.ctl.fileno()
        try:
            data = worker.ctl.recv(8192)
        except OSError:
            data = b''
        try:
            outcome = json.loads(data) if data else None
        except ValueError:
            outcome = None
        del self.busy[fd]
        self.poll.unregister(fd)
        del self.tasks[worker.task]
        task_id, worker.task = worker.task, None
        # A worker killed by a cancel that came as its task ended may still have sent a clean
        # outcome: it is dead all the same, and the next task sent to it would fail.
        if outcome is not None and not outcome.get('recycle') and not worker.killed and len(self.idle) < self.pool_size:
            self.idle.append(worker)
        else:
            status = self.end_worker(worker)
            if outcome is None:
                if status is not None and os.WIFSIGNALED(status):
                    why = 'storlet process was killed by signal %d' % os.WTERMSIG(status)
                else:
                    why = 'storlet process exited with code %d' % (os.WEXITSTATUS(status) if status is not None else -1)
                outcome = {'ok': False, 'message': why}
        emit({'type': 'done', 'id': task_id, 'ok': bool(outcome.get('ok')), 'message': str(outcome.get('message'))})
        self.keep_spare()

    def end_worker(self, worker):
        """Kills the worker's process group (what its task left running goes too) and reaps it."""
        kill_group(worker.pid)
        worker.ctl.close()
        try:
            return os.waitpid(worker.pid, 0)[1]
        except OSError:
            return None

    def close(self):
        for worker in self.idle + list(self.busy.values()):
            self.end_worker(worker)
        try:
            os.unlink(self.sock_path)
        except OSError:
            pass


def kill_group(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


def main():
    sock_path, storlet_dir, main_name, pool_size = sys.argv[1:5]
    try:
        host = Host(sock_path, storlet_dir, main_name, max(1, int(pool_size)))
    except BaseException as err:
        sys.stderr.write(traceback.format_exc())
        emit({'type': 'load-error', 'message': 'cannot load storlet %s: %s: %s' % (main_name, type(err).__name__, one_line(err))})
        sys.exit(1)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        host.serve()
    finally:
        host.close()


if __name__ == '__main__':
    main()
