# FastMap.py: the PyGObject override of FastMap-1.0
#
# SPDX-License-Identifier: LGPL-2.1-or-later
"""fastmap for Python: ``fast_map()``, and a Pythonic ``Map``.

``fast_map(func, *iterables)`` is the API of the ``fast_map`` package:
a generator of ``func(*item)`` over the iterables, zipped as ``map`` does,
computed by one worker process per core, each running many threads.

How items travel (see DESIGN.md, "Performance notes"). Calling Python
from C costs about 10-40 µs and building a ``GLib.Variant`` in Python
2.6 µs, so an item is never a task of its own unless it is slow: a task
is a *chunk*, one ``ay`` variant holding a pickled list of items, and a
result is the pickled list of their results, the exceptions raised at
their positions and how long the chunk took. The chunk size follows the
measured cost of an item: one item per task while the cost is unknown or
high (so that each item that waits gets a thread of its own, as in the
original ``fast_map``), and thousands for an item of a microsecond.

While the cost is unknown, the first tasks are a "ping" (an empty chunk)
per worker and a few one-item chunks. A ping comes back as soon as a
worker runs, so that the time a worker takes to start (importing gi and
the main script) does not count as the cost of an item. Once every worker
runs, and while no item has come back, the number of one-item tasks out
may double every ``_PROBE_STEP``, up to the window: items that wait all
wait at once within a few milliseconds, and tiny items, which come back
within one step, go out in chunks as soon as one has.

Workers start by fork when no other thread runs (_fork_workers(),
_runs_alone()): about 1 ms, against 45 ms for a fresh interpreter that
imports gi and the GLib, GObject and Gio overrides. With other threads
running, a fork could copy a lock one of them holds (GLib's, or the
allocator's) into a child that would wait for it forever, or leave the
child without a thread GLib counts on, so the workers then come from the
fork server (_ForkServer): a process with no thread but one, started from
argv at the end of the first run that had to spawn its workers, which
forks workers with gi imported already and hands them over (they are this
process's grandchildren, which fm_mapper_take_worker() takes). A worker
that replaces one that died is started from argv.

fast_map()'s generator takes results from a thread of its own (_Puller),
which the run joins at its end: no GTask, which would start GLib's
worker thread for good, so that the next run forks too. The generator
waits for them in a queue, which Ctrl-C interrupts at once; its
``finally`` cancels the map, which kills the workers. ``Map``'s iterator
waits in a private ``GMainContext`` with ``Map.next_async()`` instead
(_Waiter), as a map's source must be pulled in the consumer's thread,
and wakes up on signals (``signal.set_wakeup_fd``).
"""

import collections
import gc
import itertools
import os
import pickle
import signal
import sys
import threading
import time

# socket, subprocess and tempfile are imported where they are used: every
# Python worker imports this module too, and they would add ~7 ms to the
# start-up of one that is not forked (B5 in docs/benchmarks.md).

from gi.repository import GLib, Gio

from ..module import get_introspection_module
from ..overrides import override

FastMap = get_introspection_module('FastMap')

__all__ = ['fast_map', 'Map', 'Mapper', 'RemoteError', 'RemoteTraceback', 'worker_serve',
           'worker_serve_async', 'worker_serve_bytes']

_AY = GLib.VariantType.new('ay')
_PICKLE = pickle.HIGHEST_PROTOCOL

# Chunks: a chunk aims at _CHUNK_TIME seconds of work in a worker, which
# makes the cost of calling Python from C (tens of µs) about 1 % of it.
_CHUNK_TIME = 0.004
_MAX_CHUNK = 8192
# How many chunks are out per worker once items are chunked: enough for a
# worker never to wait for the parent, few enough to bound memory.
_CHUNKS_PER_WORKER = 3
# One-item tasks out at most, the seed's "a thread per task": the window.
_WINDOW = 4096
# While the cost of an item is unknown: one-item tasks out per worker at
# first (with the pings: 8 items on two workers all start as the workers
# do), and how often their number may double, once every worker runs,
# while none has come back (they wait, or compute for long). A tiny item
# is back within a step, even on a loaded machine, and at worst a few
# more one-item tasks go out than needed; 4 096 items that wait are all
# out 9 steps (4.5 ms) after two workers run.
_PROBE_ITEMS = 4
_PROBE_STEP = 0.0005
# A payload larger than this goes to the workers in a file, not in argv.
_MAX_ARGV_PAYLOAD = 64 * 1024

# Set by the worker while it imports the main script, where a call to
# fast_map() is the missing `if __name__ == "__main__":` guard.
_worker_bootstrapping = False


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker process.

    It is the ``__cause__`` of the exception that ``fast_map()`` raises,
    so that Python prints it along with the local one.
    """

    def __init__(self, tb):
        super().__init__(tb)
        self.tb = tb

    def __str__(self):
        return self.tb


class RemoteError(Exception):
    """An exception raised in a worker that could not be rebuilt here
    (it could not be pickled, or not unpickled): its type's name and its
    message, with its traceback as ``__cause__``."""


# ---- waiting for a result, interruptibly ------------------------------

class _Waiter:
    """Takes results of a map with next_async() in a private main context.

    The blocking fm_map_next() would hold the caller in C, where Python
    cannot run a signal handler: here the caller waits in poll(), and a
    signal wakes it (whichever thread the kernel gave it to) through the
    wakeup fd, so that KeyboardInterrupt is raised at once.
    """

    def __init__(self, fmap):
        self.map = fmap
        self.context = GLib.MainContext.new()
        self.pending = False
        self.box = []
        import socket
        self._rsock, self._wsock = socket.socketpair()
        self._rsock.setblocking(False)
        self._wsock.setblocking(False)
        self._pollfd = GLib.PollFD(self._rsock.fileno(), GLib.IOCondition.IN)
        self.context.add_poll(self._pollfd, GLib.PRIORITY_DEFAULT)

    def _done(self, fmap, result, *unused):
        # Runs in self.context, in the waiting thread. PyGObject would
        # swallow an exception raised here: keep it for the waiter.
        self.pending = False
        try:
            self.box.append((fmap.next_finish(result), None))
        except BaseException as e:  # noqa: B902 -- handed to the waiter
            self.box.append((None, e))

    def _start(self):
        if self.pending or self.box:
            return
        self.pending = True
        self.context.push_thread_default()
        try:
            self.map.next_async(None, self._done)
        finally:
            self.context.pop_thread_default()

    def _timeout(self, *unused):
        self._timed_out = True
        return GLib.SOURCE_REMOVE

    def wait(self, timeout=None):
        """Returns ((value, index), error), or None after @timeout seconds."""
        self._start()
        timer = None
        self._timed_out = False
        if timeout is not None and not self.box:
            timer = GLib.timeout_source_new(max(1, int(timeout * 1000)))
            timer.set_callback(self._timeout)
            timer.attach(self.context)
        old_fd = self._set_wakeup_fd()
        try:
            while not self.box and not self._timed_out:
                self.context.iteration(True)
                self._drain(old_fd)
        finally:
            if old_fd is not None:
                signal.set_wakeup_fd(old_fd)
            if timer is not None:
                timer.destroy()
        return self.box.pop(0) if self.box else None

    def _set_wakeup_fd(self):
        if threading.current_thread() is not threading.main_thread():
            return None
        try:
            return signal.set_wakeup_fd(self._wsock.fileno(), warn_on_full_buffer=False)
        except ValueError:
            return None

    def _drain(self, old_fd):
        try:
            data = self._rsock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        # Another wakeup fd (an asyncio loop's) gets its signals too.
        if data and old_fd is not None and old_fd >= 0:
            try:
                os.write(old_fd, data)
            except OSError:
                pass

    def finish(self):
        """Lets a wait still pending (the map was cancelled) complete."""
        while self.pending:
            self.context.iteration(True)
        self.box.clear()
        self.context.remove_poll(self._pollfd)
        self._rsock.close()
        self._wsock.close()


# ---- the object API ---------------------------------------------------

class Mapper(FastMap.Mapper):
    """Configuration and worker processes; see fm_mapper_map().

    ``Mapper(argv=[...], threads_limit=4)`` sets properties as keywords.
    """

    def map(self, cancellable=None):
        """Starts a run; returns a :class:`Map`.

        The map keeps a :class:`Gio.Cancellable` (this one, or one of its
        own) that leaving its ``with`` block cancels, which kills its
        workers at once.
        """
        if cancellable is None:
            cancellable = Gio.Cancellable()
        fmap = super().map(cancellable)
        fmap._fm_cancellable = cancellable
        return fmap


Mapper = override(Mapper)


class Map(FastMap.Map):
    """One run: an iterator of its results (``GLib.Variant``\\ s, in input
    order unless ``ordered`` is false) and a context manager.

    ``next(map)`` waits for the next result and can be interrupted with
    Ctrl-C; a task that failed raises its ``GLib.Error`` and iteration can
    go on after it. Leaving ``with map:`` cancels the map, ending its
    workers at once.
    """

    def __iter__(self):
        return self

    def __next__(self):
        waiter = getattr(self, '_fm_waiter', None)
        if waiter is None:
            waiter = self._fm_waiter = _Waiter(self)
        result, error = waiter.wait() or ((None, 0), None)
        if error is not None:
            raise error
        value, _ = result
        if value is None:
            raise StopIteration
        return value

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        cancellable = getattr(self, '_fm_cancellable', None)
        if cancellable is not None:
            cancellable.cancel()
        waiter = getattr(self, '_fm_waiter', None)
        if waiter is not None:
            waiter.finish()
            self._fm_waiter = None
        return False


Map = override(Map)


def _guard_gi_enums():
    """Makes PyGObject build one enum or flags class at a time.

    PyGObject (3.42, Debian 12's) builds such a class on its first use, in
    ``IntrospectionModule.__getattr__()``: it registers the class for its
    GType, then adds the values one by one. A thread that asks for the
    class meanwhile finds it registered and takes it without its values,
    so ``Gio.SubprocessFlags.NONE`` raises AttributeError in an item that
    runs beside another one that touches the class first: seen in a
    worker of our own tests, and with 16 threads and a 1 µs switch
    interval in 19 fresh processes of 20. A worker runs its function in
    many threads at once, so it serialises the building of those classes
    (the lock is taken only on a cache miss: what was built is in the
    module's ``__dict__``). Classes of objects and structs are left as
    they are: building one imports other modules, whose import locks a
    lock held around it could deadlock with; two threads may each build
    one (8 threads taking Gio's 372 such names: 23-40 were seen as two
    classes), which costs a class, not an error. Does nothing on a
    PyGObject without that method."""
    try:
        from gi import module
        cls, enum_info, find = module.IntrospectionModule, module.EnumInfo, \
            module.repository.find_by_name
        original = cls.__getattr__
    except (ImportError, AttributeError):
        return
    if getattr(original, '_fastmap_guarded', False):
        return
    lock = threading.RLock()

    def __getattr__(self, name):
        if isinstance(find(self._namespace, name), enum_info):
            with lock:
                return original(self, name)
        return original(self, name)

    __getattr__._fastmap_guarded = True
    cls.__getattr__ = __getattr__


def _failing_with_gerrors(func):
    """*func* as a function that fails with GLib.Error only: PyGObject
    prints any other exception of a callback and returns NULL, which the
    parent got as "The function returned NULL without setting an error".
    Such an exception becomes FastMap.Error.FAILED with the exception's
    type and message (its traceback still goes to stderr); a GLib.Error
    keeps its domain and code."""
    def call(task, *user_data):
        try:
            return func(task, *user_data)
        except GLib.Error:
            raise
        except Exception as e:
            import traceback
            traceback.print_exc()
            raise GLib.Error.new_literal(FastMap.error_quark(), f'{type(e).__name__}: {e}',
                                         FastMap.Error.FAILED) from None
    return call


def worker_serve(func, *user_data):
    """FastMap.worker_serve(): serves *func* as a fastmap worker, on the
    threads of a GThreadPool, several at once (see the C documentation).
    An exception that *func* raises fails its task: a GLib.Error as it
    is, any other as FastMap.Error.FAILED, "TypeName: message". Before it
    serves, PyGObject is made to build the enum and flags classes of GI
    modules one at a time, which PyGObject 3.42 does not do by itself
    (_guard_gi_enums())."""
    _guard_gi_enums()
    return FastMap.worker_serve(_failing_with_gerrors(func), *user_data)


def worker_serve_bytes(func, *user_data):
    """FastMap.worker_serve_bytes(), with what worker_serve() adds."""
    _guard_gi_enums()
    return FastMap.worker_serve_bytes(_failing_with_gerrors(func), *user_data)


def worker_serve_async(func, *args, **kwargs):
    """FastMap.worker_serve_async(): serves *func* in the thread-default
    main context of the caller, one task at a time; an exception that
    *func* raises fails its task as with worker_serve(). (Give the
    cancellable and the callback by keyword: PyGObject takes a second
    positional argument for *func*'s user data.)"""
    return FastMap.worker_serve_async(_failing_with_gerrors(func), *args, **kwargs)


# ---- fast_map ---------------------------------------------------------

def _worker_payload(func, star):
    """What a worker needs, as one argv word: multiprocessing's "spawn"
    preparation (sys.path, the main script to import as __mp_main__, the
    working directory) and the pickled function. Raises TypeError now,
    before any process starts, for a function pickle cannot send."""
    if _worker_bootstrapping:
        raise RuntimeError(
            'fast_map() was called while a worker imported the main script. '
            'Put the code that calls fast_map() under '
            '`if __name__ == "__main__":`, as with multiprocessing.')
    try:
        func_data = pickle.dumps(func, _PICKLE)
    except (pickle.PicklingError, TypeError, AttributeError) as e:
        name = getattr(func, '__qualname__', repr(func))
        raise TypeError(
            f'fast_map() cannot send {name!r} to its worker processes: {e}. '
            'Workers get the function by reference, as multiprocessing does: '
            'define it with `def` at the top level of a module or of the main '
            'script (not a lambda, a nested function or a closure), or wrap it '
            'with functools.partial() around such a function.') from e
    module = getattr(func, '__module__', None)
    main = sys.modules.get('__main__')
    if module == '__main__' and getattr(main, '__file__', None) is None \
            and getattr(getattr(main, '__spec__', None), 'name', None) is None:
        raise TypeError(
            f'fast_map() cannot send {func.__qualname__!r} to its worker '
            'processes: it is defined in an interactive session, which a worker '
            'cannot import. Define it in a module or a script.')

    return pickle.dumps({'prep': _preparation_data(), 'func': func_data, 'star': star},
                        _PICKLE)


def _preparation_data():
    """multiprocessing.spawn.get_preparation_data() for a worker, less the
    authkey (argv would show it), the start method (not ours) and
    log_to_stderr, and without importing multiprocessing: that import is
    1.8 ms of a process's first map, on the way to its first result. The
    directory the process started in is multiprocessing's if it is
    loaded, else the current one (what importing it now would record)."""
    process = sys.modules.get('multiprocessing.process')
    orig_dir = process.ORIGINAL_DIR if process is not None else os.path.abspath(os.getcwd())
    prep = {}
    util = sys.modules.get('multiprocessing.util')
    if util is not None and util._logger is not None:
        prep['log_level'] = util._logger.getEffectiveLevel()
    sys_path = sys.path.copy()
    if '' in sys_path:
        sys_path[sys_path.index('')] = orig_dir
    prep.update(name='fastmap-worker', sys_path=sys_path, sys_argv=sys.argv,
                orig_dir=orig_dir, dir=os.getcwd())
    main = sys.modules['__main__']
    name = getattr(getattr(main, '__spec__', None), 'name', None)
    path = getattr(main, '__file__', None)
    if name is not None:
        prep['init_main_from_name'] = name
    elif path is not None:
        if not os.path.isabs(path) and orig_dir is not None:
            path = os.path.join(orig_dir, path)
        prep['init_main_from_path'] = os.path.normpath(path)
    return prep


def _interpreter_flags():
    """subprocess._args_from_interpreter_flags(): the options that give a
    new interpreter this one's settings. It has none to give when no flag
    of sys.flags it reads is set and there is no -W or -X option, and then
    this returns [] without importing subprocess, which is 0.66 ms of a
    process's first map (on the way to its first result: the workers'
    command line is made before they fork, for the replacement of one
    that dies)."""
    f = sys.flags
    if not (f.optimize or f.debug or f.dont_write_bytecode or f.no_site or f.verbose or
            f.bytes_warning or f.quiet or f.isolated or f.ignore_environment or
            f.no_user_site or getattr(f, 'safe_path', False) or f.dev_mode or
            sys.warnoptions or getattr(sys, '_xoptions', None)):
        return []
    import subprocess
    return subprocess._args_from_interpreter_flags()


def _worker_command(data):
    """``python3 [flags] _fastmap_worker.py`` and *data* as one argv word."""
    import binascii
    worker = os.path.join(os.path.dirname(os.path.abspath(__file__)), '_fastmap_worker.py')
    return ([sys.executable] + _interpreter_flags() + [worker],
            binascii.b2a_base64(data, newline=False).decode('ascii'))


def _worker_argv(payload):
    """The worker's command line, and a file to delete at the end or None."""
    argv, word = _worker_command(payload)
    if len(word) <= _MAX_ARGV_PAYLOAD:
        return argv + [word], None
    import tempfile
    fd, path = tempfile.mkstemp(prefix='fastmap-', suffix='.pickle')
    with os.fdopen(fd, 'wb') as f:
        f.write(payload)
    return argv + ['@' + path], path


def _rebuild(entry):
    """The exception of an error entry from a worker, with its traceback."""
    _, data, type_name, message, tb = entry
    exc = None
    if data is not None:
        try:
            exc = pickle.loads(data)
        except Exception:
            exc = None
    if not isinstance(exc, BaseException):
        exc = RemoteError(f'{type_name}: {message}')
    exc.__cause__ = RemoteTraceback(tb)
    return exc


def _runs_alone():
    """Whether no thread runs in this process but the caller's (Linux).
    (The last run's threads are gone: _Puller.finish() and the map's end
    wait for them to leave the system's list, which join() does not.)"""
    try:
        return os.listdir('/proc/self/task') == [str(threading.get_native_id())]
    except OSError:
        return False


def _fork_workers(mapper, payload, n):
    """Forks *n* workers and gives them to *mapper* (fm_mapper_take_worker()).
    Each child keeps its end of its own socketpair and closes the parent's
    ends of the others, so that each sees the end of its stream when the
    parent closes it, or dies. A worker the mapper refuses (a kernel with
    no pidfd_open(), valgrind) is ended, and so is the forking: the map
    starts the rest from argv."""
    from . import _fastmap_worker   # once here, not in each child
    _fastmap_worker.compile_main_of(payload)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()      # or the children write it again
        except Exception:  # noqa: B902 -- a closed or broken stream
            pass
    # A collection in a child would write to the header of every object it
    # tracks, and so copy every page of this process's heap into it:
    # frozen, the children's collections leave this process's objects
    # alone (the gc module's documentation, gc.freeze()). A caller that
    # froze objects of its own manages that itself.
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    try:
        _fork_each(mapper, payload, n)
    finally:
        if freeze:
            gc.unfreeze()


def _fork_each(mapper, payload, n):
    import socket
    ours = []
    for _ in range(n):
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        parent_end, child_end = a.detach(), b.detach()
        try:
            pid = os.fork()
        except OSError:         # no process to be had now: argv's may start later
            os.close(parent_end)
            os.close(child_end)
            return
        if pid == 0:
            from . import _fastmap_worker
            server = _ForkServer.current
            _fastmap_worker.serve_forked(payload, child_end, ours + [parent_end] +
                                         ([server.sock.fileno()] if server is not None else []))
        try:
            os.close(child_end)
            mapper.take_worker(parent_end, pid)
        except BaseException as e:  # noqa: B902 -- Ctrl-C too: no child left behind
            os.close(parent_end)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            if isinstance(e, GLib.Error):
                return
            raise
        ours.append(parent_end)


class _ForkServer:
    """A process that forks workers for a caller that runs other threads
    (and so must not fork itself): ``_fastmap_worker.py --fork-server``,
    started from argv once, with gi imported. It forks a worker in a few
    milliseconds where a new interpreter takes 45; the workers are this
    process's grandchildren, which fm_mapper_take_worker() accepts. It
    ends when this process closes its end of the control socket (at exit,
    or when it dies), and is started again if it died."""

    lock = threading.Lock()         # one request at a time, one server
    current = None
    ended_at_exit = False

    def __init__(self):
        import socket
        import subprocess
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        argv, word = _worker_command(pickle.dumps({'sys_path': list(sys.path)}, _PICKLE))
        try:
            self.proc = subprocess.Popen(argv + ['--fork-server', word], stdin=b.fileno(),
                                         close_fds=True)
        finally:
            b.close()
        self.sock = a
        self.ready = False
        if not _ForkServer.ended_at_exit:
            import atexit
            atexit.register(_end_fork_server)
            _ForkServer.ended_at_exit = True

    @classmethod
    def get(cls, start):
        """The server, or None; started if *start* and there is none or
        it died (lock held)."""
        if cls.current is not None and cls.current.proc.poll() is not None:
            cls.current.end()
        if cls.current is None and start:
            try:
                cls.current = cls()
            except OSError:         # no process to be had now: spawn
                return None
        return cls.current

    def wait_ready(self, timeout):
        """Whether the server has said it is ready, within *timeout* s."""
        import select
        if not self.ready:
            try:
                readable, _, _ = select.select([self.sock], [], [], timeout)
                said = self.sock.recv(1) if readable else None
            except OSError:
                said = b''
            if said == b'R':
                self.ready = True
            elif said is not None:      # it ended before it was ready
                self.end()
        return self.ready

    def fork(self, payload, n):
        """Has *n* workers forked: [(parent's end, pid)]; [] if it failed."""
        import socket
        import struct
        from . import _fastmap_worker
        pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(n)]
        ours = [a.detach() for a, _ in pairs]
        theirs = [b for _, b in pairs]
        data = pickle.dumps({'payload': payload, 'environ': dict(os.environ)}, _PICKLE)
        try:
            socket.send_fds(self.sock, [struct.pack(_fastmap_worker._REQUEST, len(data), n)],
                            [b.fileno() for b in theirs])
            self.sock.sendall(data)
            reply = _fastmap_worker._recv_exactly(self.sock, 4 * n)
        except OSError:
            reply = None
        except BaseException:  # noqa: B902 -- Ctrl-C: its workers see the end of their streams
            for fd in ours:
                os.close(fd)
            self.end()
            raise
        finally:
            for b in theirs:
                b.close()
        if reply is None:
            for fd in ours:
                os.close(fd)
            self.end()
            return []
        pids = struct.unpack('!%di' % n, reply)
        got = []
        for fd, pid in zip(ours, pids):
            if pid > 0:
                got.append((fd, pid))
            else:
                os.close(fd)
        return got

    def end(self):
        """Closes the control socket, which ends the server, and reaps it."""
        self.sock.close()
        try:
            self.proc.wait(timeout=1)
        except Exception:  # noqa: B902 -- subprocess.TimeoutExpired
            self.proc.kill()
            self.proc.wait()
        if _ForkServer.current is self:
            _ForkServer.current = None


def _end_fork_server():
    # At exit: a daemon thread may be stuck holding the lock.
    if _ForkServer.lock.acquire(timeout=1):
        try:
            if _ForkServer.current is not None:
                _ForkServer.current.end()
        finally:
            _ForkServer.lock.release()


def _start_fork_server():
    """Starts the fork server for the next run, if there is none: at the
    end of a run that spawned its workers, so that its start (an
    interpreter that imports gi) does not slow that run's."""
    with _ForkServer.lock:
        _ForkServer.get(start=True)


def _served_workers(mapper, payload, n, wait):
    """Gives *mapper* *n* workers forked by the fork server, and returns
    whether there is one. With *wait* the server is started if need be;
    one that starts is waited for (it is ready sooner than workers would
    be that import gi themselves, 2 s at most; 10 s with *wait*). What it
    could not give, the map starts from argv."""
    with _ForkServer.lock:
        server = _ForkServer.get(start=wait)
        if server is None:
            return False
        if not server.wait_ready(10.0 if wait else 2.0):
            return True
        got = server.fork(payload, n)
        try:
            while got:
                fd, pid = got[0]
                mapper.take_worker(fd, pid)
                got.pop(0)
        except BaseException as e:  # noqa: B902 -- Ctrl-C too: no worker left behind
            for fd, pid in got:
                os.close(fd)
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            if not isinstance(e, GLib.Error):
                raise
        return True


class _Puller:
    """Takes the results of a fast_map() run with the blocking Map.next()
    in a thread of its own, and hands them to the consumer, which waits
    for them on a semaphore: Ctrl-C interrupts that at once.

    _Waiter's Map.next_async() would do, but its GTask starts GLib's
    worker thread, for good: the caller would never again run alone, and
    a worker forked from it would have no thread to run GLib's child
    watches, Unix signal sources or file monitors. This thread is joined
    at the end of the run, and the next run forks as the first did.
    """

    def __init__(self):
        # A deque and a semaphore, not queue.SimpleQueue: importing _queue
        # (an extension module) took 0.19 ms of a process's first map,
        # before its workers fork.
        self._items = collections.deque()
        self._count = threading.Semaphore(0)
        self.native_id = None
        self.done = None

    def _put(self, entry):
        self._items.append(entry)
        self._count.release()

    def start(self, fmap):
        """Starts pulling from *fmap*. A thread of _thread's, not
        threading's, whose start() waits for the thread to run: up to a
        millisecond while the workers just forked take both cores. It is
        a daemon, and finish() joins it."""
        import _thread
        self.done = _thread.allocate_lock()
        self.done.acquire()
        _thread.start_new_thread(self._run, (fmap,))

    def _run(self, fmap):
        self.native_id = threading.get_native_id()
        try:
            self._pull(fmap)
        finally:
            self.done.release()

    def _pull(self, fmap):
        while True:
            try:
                result = fmap.next()
            except BaseException as e:  # noqa: B902 -- handed to the consumer
                # The traceback holds this frame: not the map too, whose
                # end joins its threads (and the next run would not fork).
                fmap = None
                self._put((None, e))
                return
            self._put((result, None))
            if result[0] is None:
                return

    def wait(self, timeout=None):
        """Returns ((value, index), error), or None after *timeout* seconds."""
        if not self._count.acquire(timeout=timeout):
            return None
        return self._items.popleft()

    def finish(self):
        """Waits for the thread, which ends with the map (or its cancel),
        and drops what the consumer did not take."""
        if self.done is None:
            return
        self.done.acquire()
        while self.wait(0) is not None:
            pass
        # The lock is free a moment before the system ends the thread (as
        # g_thread_join() returns, see fm-map.c): wait for it, or the next
        # run would not run alone. 100 ms at most, for a loaded machine.
        task = f'/proc/self/task/{self.native_id}'
        deadline = time.monotonic() + 0.1
        while os.path.exists(task) and time.monotonic() < deadline:
            time.sleep(0.0001)


class _Run:
    """One fast_map() run, on the consumer's side."""

    def __init__(self, payload, items, procs_limit, threads_limit, ordered, remote,
                 start_method):
        argv, self.payload_file = _worker_argv(payload)
        self.start_server = False
        mapper = FastMap.Mapper(argv=argv)
        mapper.props.n_processes = procs_limit or 0
        mapper.props.threads_limit = threads_limit or 0
        mapper.props.ordered = ordered
        hosts, launcher, forward_env = remote
        if hosts:
            mapper.props.hosts = hosts
            if launcher is not None:
                mapper.props.launcher = list(launcher)
            if forward_env:
                mapper.props.forward_env = list(forward_env)
        mapper.props.max_in_flight = _WINDOW + 64
        n = procs_limit or GLib.get_num_processors()
        n = min(n, threads_limit or n)
        # Made before the workers fork: after it, each page this process
        # writes first is copied (2-3 µs each), hundreds of them.
        self.cancellable = Gio.Cancellable()
        self.waiter = _Puller()
        if hosts:
            pass
        elif start_method == 'fork' or (start_method is None and _runs_alone()):
            _fork_workers(mapper, payload, n)
        elif start_method in (None, 'forkserver'):
            self.start_server = not _served_workers(mapper, payload, n,
                                                    wait=start_method == 'forkserver')
        self.map = mapper.map(self.cancellable)
        self.waiter.start(self.map)
        self.items = items
        self.n_workers = self.map.get_n_workers()
        self.slow_window = _WINDOW
        if threads_limit:
            self.slow_window = min(_WINDOW, max(2 * threads_limit, 2 * self.n_workers))
        self.chunks = {}            # task index -> (items, first item's position)
        self.n_tasks = 0
        self.n_pulled = 0
        self.items_out = 0
        self.chunks_out = 0         # chunks of items, pings not counted
        self.pings_out = 0
        self.cost = None            # seconds per item, measured in the workers
        self.ready_at = None        # when the last worker answered its ping
        self.closed = False
        self.input_error = None     # raised after every item before it

        for _ in range(self.n_workers):
            self._push([], 0)
            self.pings_out += 1

    # -- input --

    def _chunk_size(self):
        if self.cost is None:
            return 1
        return max(1, min(_MAX_CHUNK, int(_CHUNK_TIME / max(self.cost, 1e-9))))

    def _has_room(self, size):
        if size > 1:
            return self.chunks_out < _CHUNKS_PER_WORKER * self.n_workers
        if self.cost is None:
            return self.items_out < self._probe_room()
        return self.items_out < self.slow_window

    def _probe_room(self, now=None):
        """One-item tasks that may be out while the cost is unknown."""
        room = _PROBE_ITEMS * self.n_workers
        if self.ready_at is not None:
            steps = ((time.monotonic() if now is None else now) - self.ready_at) / _PROBE_STEP
            room <<= min(int(steps), 16)
        return min(room, self.slow_window)

    def _push(self, chunk, first):
        try:
            data = pickle.dumps(chunk, _PICKLE)
        except Exception:
            return self._push_picklable(chunk, first)
        self.map.push(GLib.Variant.new_from_bytes(_AY, GLib.Bytes.new(data), True))
        self.chunks[self.n_tasks] = (len(chunk), first)
        self.n_tasks += 1
        if chunk:
            self.items_out += len(chunk)
            self.chunks_out += 1
        return True

    def _push_picklable(self, chunk, first):
        """Sends the items before the first one pickle refuses; that one's
        error is raised in its place."""
        for i, item in enumerate(chunk):
            try:
                pickle.dumps(item, _PICKLE)
            except Exception as e:
                if i > 0:
                    self._push(chunk[:i], first)
                self._end_input(TypeError(
                    f'fast_map() cannot send item {first + i} to a worker: {e}'))
                return False
        raise AssertionError('unreachable')

    def _end_input(self, error=None):
        if error is not None:
            self.input_error = error
        if not self.closed:
            self.closed = True
            self.map.close()

    def pump(self):
        """Pulls and sends items while there is room."""
        while not self.closed:
            size = self._chunk_size()
            if not self._has_room(size):
                return
            chunk = []
            try:
                chunk.extend(itertools.islice(self.items, size))
            except BaseException as e:  # noqa: B902 -- raised in its place
                if chunk and self._push(chunk, self.n_pulled):
                    self.n_pulled += len(chunk)
                self._end_input(e)
                return
            if chunk and not self._push(chunk, self.n_pulled):
                return
            self.n_pulled += len(chunk)
            if len(chunk) < size:
                self._end_input()

    # -- output --

    def _measured(self, n, elapsed):
        per_item = elapsed / n
        self.cost = per_item if self.cost is None else 0.5 * self.cost + 0.5 * per_item

    def _probe_timeout(self):
        """How long to wait before more one-item tasks may go out, or None
        (until a result comes). 0 when the room grew since pump() looked:
        a step may end between the two, and waiting for a result then
        held the items back until one came (items that wait for each
        other: until their own deadline, in a test under load)."""
        if (self.cost is not None or self.closed or self.ready_at is None or
                self.items_out >= self.slow_window):
            return None
        now = time.monotonic()
        if self.items_out < self._probe_room(now):
            return 0.0
        steps = int((now - self.ready_at) / _PROBE_STEP) + 1
        return max(0.0, self.ready_at + steps * _PROBE_STEP - now)

    def results(self):
        """Yields lists of results, in order; raises at a failed item."""
        while True:
            self.pump()
            if self.chunks_out == 0 and self.pings_out == 0 and self.closed:
                break
            got = self.waiter.wait(self._probe_timeout())
            if got is None:
                continue                       # the probe timed out: pump
            result, error = got
            if error is not None:
                raise error
            value, index = result
            if value is None:
                break
            n, first = self.chunks.pop(index)
            elapsed, results, errors = pickle.loads(value.get_data_as_bytes().get_data())
            if n == 0:
                self.pings_out -= 1
                if self.pings_out == 0:
                    self.ready_at = time.monotonic()
                continue
            self.items_out -= n
            self.chunks_out -= 1
            self._measured(n, elapsed)
            if errors:
                yield results[:errors[0][0]]
                raise _rebuild(errors[0])
            self.pump()
            yield results
        if self.input_error is not None:
            raise self.input_error

    def stop(self):
        """Ends the workers at once, whatever they are doing."""
        self.cancellable.cancel()
        self.waiter.finish()
        self.map = None
        if self.start_server:
            _start_fork_server()
        if self.payload_file is not None:
            try:
                os.unlink(self.payload_file)
            except OSError:
                pass


def _generate(payload, items, procs_limit, threads_limit, ordered, remote, start_method):
    # Empty input: no process starts, nothing is yielded.
    _end = object()
    first = next(items, _end)
    if first is _end:
        return
    run = _Run(payload, itertools.chain((first,), items), procs_limit, threads_limit,
               ordered, remote, start_method)
    try:
        for results in run.results():
            yield from results
    finally:
        run.stop()


def _check_remote(hosts, launcher, forward_env):
    if hosts is not None and not isinstance(hosts, str):
        raise TypeError(f'hosts must be None or a str such as "4/node1,:", not {hosts!r}')
    for name, value in (('launcher', launcher), ('forward_env', forward_env)):
        if value is None:
            continue
        if isinstance(value, str) or not all(isinstance(v, str) for v in value):
            raise TypeError(f'{name} must be None or a list of str, not {value!r}')
    return hosts, launcher, forward_env


def fast_map(func, *iterables, procs_limit=None, threads_limit=None, ordered=True,
             hosts=None, launcher=None, forward_env=None, start_method=None):
    """Maps *func* over *iterables* with processes and threads.

    Like ``map(func, *iterables)``: several iterables are zipped, and
    ``func(*item)`` is computed for each item, but by one worker process
    per core (or *procs_limit*), each running up to *threads_limit*
    threads in all (None: a thread per item in flight, so that items
    that wait all wait at once).

    *procs_limit* may exceed the cores. For items that both wait and
    compute in Python, twice the cores keeps them busier: within a worker
    the GIL passes from thread to thread, and the system often wakes the
    next one on a core another worker holds while its own core idles
    (15-20 % idle at two processes on two cores, none at four; 4-7 %
    faster for a few hundred items that sleep 1 s, then compute 10 ms:
    bottleneck 22 in docs/benchmarks.md). It costs a process each, and a
    few milliseconds more before the first result.

    Returns a generator at once. It pulls the iterables lazily, never
    further ahead than the in-flight window (an endless iterable works),
    and yields each result as soon as it and all before it are done, in
    input order, or as each is done if *ordered* is false.

    *func* and the items travel by pickle: *func* must be defined at the
    top level of a module or of the main script (which the workers import
    as ``__mp_main__``, as multiprocessing's spawn does: keep the code
    that calls fast_map() under ``if __name__ == "__main__":``). A
    function pickle cannot send raises TypeError here, before any process
    starts.

    *start_method* says how the workers start. ``None`` (the default):
    forked from this process when it runs no other thread, which takes
    about a millisecond; else forked by the fork server if there is one,
    else spawned (and the run starts the fork server as it ends).
    ``"spawn"``: a fresh interpreter each, which imports gi (about 45 ms).
    ``"forkserver"``: forked by the fork server, started first if need be,
    as multiprocessing's "forkserver" does: a process of this program
    with no other thread, which imported gi once and forks the workers of
    every later run (about 10 ms to a first result), and ends with this
    process. Its workers have this process's environment, path and
    working directory at the call, but not its modules. ``"fork"``: forked
    even while other threads run, as multiprocessing's "fork" does: a
    child can then hang on a lock that another thread held at the fork
    (one that has not answered in 30 s is killed, and a spawned one runs
    its items). Either way the main script is imported again as
    ``__mp_main__`` (for forked workers, its bytecode is cached in
    ``__pycache__`` as an imported module's is, unless
    ``sys.dont_write_bytecode`` is set); a worker forked from this
    process holds the modules imported so far, in the state they have at
    the call, and the files this process has open. Workers on other
    *hosts*, and those that replace a worker that died, are always
    spawned.

    An exception raised by *func* is raised by the generator at that
    item's position, rebuilt with its type where pickle can (else
    :class:`RemoteError`), with the worker's traceback as its
    ``__cause__``. Leaving the generator (an exception, ``break``,
    ``close()``, garbage collection, Ctrl-C) kills the workers.

    *hosts* runs workers on other machines too, as GNU parallel's
    ``--sshlogin`` does: ``"4/node1,8/node2,:"`` runs 4 workers on node1,
    8 on node2 and one per core (or *procs_limit*) here (``:``), each
    started by *launcher* (default ``["ssh", "-T", "-o",
    "BatchMode=yes"]``) with the host name and a shell command. The hosts
    need the same Python, fastmap and script paths (the same install or a
    shared file system); ``PYTHONPATH``, ``GI_TYPELIB_PATH``,
    ``LD_LIBRARY_PATH`` and the variables named in *forward_env* are
    passed on. A host that cannot be reached, or drops, loses no items:
    they run again elsewhere. See FmMapper:hosts and "Running across
    machines" in the documentation.
    """
    if not iterables:
        raise TypeError('fast_map() needs a function and at least one iterable')
    if not callable(func):
        raise TypeError(f'fast_map() needs a callable, not {type(func).__name__}')
    for name, value in (('procs_limit', procs_limit), ('threads_limit', threads_limit)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f'{name} must be None or a positive int, not {value!r}')
    if start_method not in (None, 'fork', 'forkserver', 'spawn'):
        raise ValueError('start_method must be None, "fork", "forkserver" or "spawn", '
                         f'not {start_method!r}')
    remote = _check_remote(hosts, launcher, forward_env)
    payload = _worker_payload(func, star=len(iterables) > 1)
    items = iter(iterables[0]) if len(iterables) == 1 else zip(*iterables)
    return _generate(payload, items, procs_limit, threads_limit, ordered, remote, start_method)
