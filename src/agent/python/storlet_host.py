# sandlet's host for Python storlets written against the OpenStack Storlets Python API.
#
# One host process per storlet daemon: it imports the storlet's module once (an import error
# fails the daemon's start), then forks a child per task, so the child starts with the module
# already loaded, and a task is stopped, whatever it does, by killing its process group.
#
# Protocol with the agent (src/agent/python-runtime.ts):
#   agent -> host: datagrams on --socket; a task carries its fds by SCM_RIGHTS, in the order
#                  output, metadata, [logger], inputs...; a cancel carries none.
#   host -> agent: one JSON line per event on stdout: ready, load-error, done.
#   stdin: the agent keeps it open; its end (the agent went) ends the host and every task.
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

    @property
    def began(self):
        return self._md_fd is None


# -- A task, in its forked child -----------------------------------------------------------------

def run_task(storlet_cls, header, fds, result_fd, storlet_dir):
    """Runs one invocation; writes its outcome to result_fd. Never returns."""
    os.setpgid(0, 0)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # as for any process writing to a pipe
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
        if out is not None and out.began:
            # Output began: the stream must end in an error, not look complete.
            os._exit(write_result(result_fd, outcome, 3))
    for f in ins + ([out] if out else []):
        f.close()
    os._exit(write_result(result_fd, outcome, 0))


def write_result(fd, outcome, code):
    try:
        os.write(fd, json.dumps(outcome).encode('utf-8')[:4000])
    except OSError:
        pass
    return code


# -- The host's loop -----------------------------------------------------------------------------

class Host(object):
    def __init__(self, sock_path, storlet_dir, main):
        self.storlet_dir = storlet_dir
        module_name, _, cls_name = main.partition('.')
        sys.path.insert(0, storlet_dir)
        module = importlib.import_module(module_name)
        self.storlet_cls = getattr(module, cls_name)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(sock_path)
        self.sock_path = sock_path
        self.tasks = {}      # task id -> (pid, result read fd)
        self.by_fd = {}      # result read fd -> task id
        self.poll = select.poll()
        self.poll.register(self.sock.fileno(), select.POLLIN)
        self.poll.register(0, select.POLLIN)

    def serve(self):
        emit({'type': 'ready'})
        while True:
            for fd, _ in self.poll.poll():
                if fd == self.sock.fileno():
                    self.receive()
                elif fd == 0:
                    if not os.read(0, 4096):
                        return  # the agent went
                else:
                    self.finish(fd)

    def receive(self):
        try:
            data, fds, _, _ = socket.recv_fds(self.sock, MAX_DATAGRAM, MAX_FDS)
        except BlockingIOError:
            return
        try:
            msg = json.loads(data)
        except ValueError:
            for fd in fds:
                os.close(fd)
            return
        if msg.get('type') == 'cancel':
            task = self.tasks.get(msg.get('id'))
            if task:
                kill_group(task[0])
            return
        if msg.get('type') != 'task':
            for fd in fds:
                os.close(fd)
            return
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(rfd)
                self.sock.close()
                # stdin and stdout are the host's channel to the agent: not the storlet's.
                null = os.open(os.devnull, os.O_RDWR)
                os.dup2(null, 0)
                os.dup2(2, 1)
                os.close(null)
                run_task(self.storlet_cls, msg, fds, wfd, self.storlet_dir)
            finally:
                os._exit(4)
        try:
            os.setpgid(pid, pid)  # also here: a cancel may come before the child ran at all
        except OSError:
            pass
        os.close(wfd)
        for fd in fds:
            os.close(fd)
        self.tasks[msg['id']] = (pid, rfd)
        self.by_fd[rfd] = msg['id']
        self.poll.register(rfd, select.POLLIN)

    def finish(self, rfd):
        task_id = self.by_fd.pop(rfd)
        pid, _ = self.tasks.pop(task_id)
        self.poll.unregister(rfd)
        data = b''
        try:
            data = os.read(rfd, 8192)
        except OSError:
            pass
        os.close(rfd)
        # Whatever the storlet left running in its group (a subprocess, a fork) ends with it.
        kill_group(pid)
        _, status = os.waitpid(pid, 0)
        try:
            outcome = json.loads(data) if data else None
        except ValueError:
            outcome = None
        if outcome is None:
            if os.WIFSIGNALED(status):
                why = 'storlet process was killed by signal %d' % os.WTERMSIG(status)
            else:
                why = 'storlet process exited with code %d' % os.WEXITSTATUS(status)
            outcome = {'ok': False, 'message': why}
        emit({'type': 'done', 'id': task_id, 'ok': bool(outcome.get('ok')), 'message': str(outcome.get('message'))})

    def close(self):
        for pid, _ in self.tasks.values():
            kill_group(pid)
        for pid, _ in self.tasks.values():
            try:
                os.waitpid(pid, 0)
            except OSError:
                pass
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
    sock_path, storlet_dir, main_name = sys.argv[1:4]
    try:
        host = Host(sock_path, storlet_dir, main_name)
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
