# _fastmap_worker.py: the worker program of FastMap.fast_map()
#
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Serves the pickled function of a fast_map() run.

Started by the parent as ``python3 [flags] _fastmap_worker.py PAYLOAD``,
PAYLOAD being base64 (or ``@file``) of what FastMap._worker_payload()
made, or forked from the parent, which then calls serve() in the child
(FastMap._fork_workers()). It prepares itself as multiprocessing's spawn
does (the parent's sys.path, working directory and main script, imported
as __mp_main__; a forked worker imports it again too, so that a script
behaves the same whichever way its workers start), then serves with
FastMap.worker_serve_bytes(): each task is a pickled chunk of items, run
on one of the threads of the worker's GThreadPool (the GIL is free while
the C side waits), and its result a pickled ``(elapsed, results,
errors)``. Both are Python bytes, which PyGObject converts without a call
into GLib: each such call would release the GIL and wait to take it
back, up to a switch interval while other threads compute. Nothing
raised by the function escapes a chunk: PyGObject would swallow it.

The GIL's switch interval grows with the number of chunks running at
once (see _Server._enter): a thread waiting for the GIL wakes up every
interval to ask for it, so a thousand threads that wake from their waits
together make 200 000 futex round trips a second at the default 5 ms,
and spend more CPU asking for the GIL than computing with it.
"""

import binascii
import itertools
import os
import pickle
import signal
import sys
import threading
import time

# Imports cost start-up, which every worker pays before its first item:
# binascii is built in (base64 would add 3 ms), traceback is imported at
# the first error.

_PICKLE = pickle.HIGHEST_PROTOCOL

# The switch interval per chunk running at once, and its ceiling: 1 024
# threads that want the GIL wake up 2 000 times a second in all, instead
# of 200 000. Two processes of 1 024 threads each on 2 cores, each thread
# sleeping 1 s then looping 10^6 times (the seed's workload, N = 2048),
# took 122 s at the default 5 ms, 10.2 s at 100 ms and 9.6 s at 500 ms;
# the ideal is 8.8 s. A thread then waits longer for the GIL while
# another computes, which costs latency, not throughput.
_SWITCH_PER_THREAD = 0.0005
_MAX_SWITCH = 0.5

# The main script's code, compiled in the parent before it forks workers
# (compile_main()): (path, (mtime, size), code). A forked worker runs the
# script from it instead of reading and compiling the file again, as
# runpy.run_path() would: 1.6 ms for a script of 350 lines, in every
# worker of every run.
_main_code = None


def compile_main(path):
    """Compiles the main script at *path* for the workers about to be
    forked, once while the file stays the same. A script runpy would not
    run as source (a directory, a zip, a .pyc), or one that does not
    compile, is left to the workers, which report what goes wrong.

    A ``.py`` script's bytecode is cached as a module's is (in
    ``__pycache__``, or under ``sys.pycache_prefix``; not written when
    ``sys.dont_write_bytecode`` is set): the workers import the script as
    a module, and reading the cache takes 0.1-0.4 ms where compiling a
    script of 350 lines takes 1.6-2.4, in a process's first map, on the
    way to its first result."""
    global _main_code
    try:
        st = os.stat(path)
        key = (st.st_mtime_ns, st.st_size)
        if _main_code is not None and _main_code[:2] == (path, key):
            return
        _main_code = None
        from pkgutil import get_importer
        if get_importer(path) is not None:
            return
        if path.endswith('.py'):
            from importlib.machinery import SourceFileLoader
            code = SourceFileLoader('__mp_main__', path).get_code('__mp_main__')
        else:
            # (A .pyc holds NUL bytes, which compile() refuses.)
            with open(path, 'rb') as f:
                code = compile(f.read(), path, 'exec')
        _main_code = (path, key, code)
    except Exception:  # noqa: B902 -- the workers read the file themselves
        _main_code = None


def compile_main_of(payload):
    """compile_main() for the main script of a worker *payload*, if any."""
    path = pickle.loads(payload)['prep'].get('init_main_from_path')
    if path is not None:
        compile_main(path)


# The __main__ modules _run_main() replaced, kept as multiprocessing
# keeps them (spawn.old_main_modules).
_old_main_modules = []


def _run_main(path, code):
    """multiprocessing.spawn's _fixup_main_from_path(), with the code the
    parent compiled: the script runs as __mp_main__, which then stands
    for __main__ too."""
    import types
    if os.path.splitext(os.path.basename(path))[0] == 'ipython':
        return
    _old_main_modules.append(sys.modules['__main__'])
    module = types.ModuleType('__mp_main__')
    module.__dict__.update(__file__=path, __cached__=None, __loader__=None,
                           __package__='', __spec__=None)
    argv0 = sys.argv[0] if sys.argv else None
    sys.modules['__mp_main__'] = module
    if sys.argv:
        sys.argv[0] = path
    try:
        exec(code, module.__dict__)
    except BaseException:
        del sys.modules['__mp_main__']
        raise
    finally:
        if sys.argv:
            sys.argv[0] = argv0
    sys.modules['__main__'] = module


def _prepare_forked(prep):
    """multiprocessing.spawn.prepare() of *prep*, less what only matters to
    multiprocessing, and its script: for a forked worker when this
    process never imported multiprocessing, which would cost each worker
    1.8 ms of its start."""
    sys.path = prep['sys_path']
    sys.argv = prep['sys_argv']
    os.chdir(prep['dir'])


def _read_payload(word):
    if word.startswith('@'):
        with open(word[1:], 'rb') as f:
            return pickle.loads(f.read())
    return pickle.loads(binascii.a2b_base64(word))


def _error_entry(pos, exc):
    import traceback
    tb = ''.join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        data = pickle.dumps(exc, _PICKLE)
        pickle.loads(data)      # rebuildable here means rebuildable there
    except Exception:
        data = None
    name = f'{type(exc).__module__}.{type(exc).__qualname__}'
    return (pos, data, name, str(exc), tb)


class _Server:
    def __init__(self, payload, forked=False):
        self.func = None
        self.star = payload['star']
        self.setup_error = None
        try:
            self._prepare(payload, forked)
        except BaseException as e:  # noqa: B902 -- reported for every item
            self.setup_error = e
        # The main script may have set its own: it is the floor.
        self.base_switch = sys.getswitchinterval()
        self.switch = self.base_switch
        self.running = 0
        self.lock = threading.Lock()

    def _enter(self, delta):
        """Counts the chunks running, and sets the switch interval for them."""
        with self.lock:
            self.running += delta
            switch = min(max(self.base_switch, _MAX_SWITCH),
                         max(self.base_switch, self.running * _SWITCH_PER_THREAD))
            if switch != self.switch:
                self.switch = switch
                sys.setswitchinterval(switch)

    def _prepare(self, payload, forked):
        prep = payload['prep']
        path = prep.get('init_main_from_path')
        main = _main_code if forked and path is not None else None
        if main is not None and main[0] == path:
            prep = {k: v for k, v in prep.items() if k != 'init_main_from_path'}
        else:
            main = None
        overrides = sys.modules['gi.overrides.FastMap']
        overrides._worker_bootstrapping = True
        try:
            if (forked and 'multiprocessing' not in sys.modules and
                    'init_main_from_name' not in prep and 'init_main_from_path' not in prep):
                _prepare_forked(prep)
            else:
                import multiprocessing.spawn
                multiprocessing.spawn.prepare(prep)
            if main is not None:
                _run_main(path, main[2])
        finally:
            overrides._worker_bootstrapping = False
        self.func = pickle.loads(payload['func'])

    def _run_items(self, items):
        results, errors = [], []
        if self.setup_error is not None:
            for pos in range(len(items)):
                results.append(None)
                errors.append(_error_entry(pos, self.setup_error))
            return results, errors
        calls = itertools.starmap(self.func, items) if self.star else map(self.func, items)
        while True:
            try:
                results.extend(calls)   # keeps what it appended if func raises
                return results, errors
            except BaseException as e:  # noqa: B902 -- raised in the parent
                errors.append(_error_entry(len(results), e))
                results.append(None)

    def _dumps(self, elapsed, results, errors):
        try:
            return pickle.dumps((elapsed, results, errors), _PICKLE)
        except Exception:
            pass
        for pos, value in enumerate(results):
            try:
                pickle.dumps(value, _PICKLE)
            except Exception as e:
                results[pos] = None
                errors.append(_error_entry(pos, TypeError(
                    f'fast_map() cannot send the result back: {e}')))
        errors.sort(key=lambda entry: entry[0])
        return pickle.dumps((elapsed, results, errors), _PICKLE)

    def run_chunk(self, task, *unused):
        """The FmBytesFunction: runs on a GThreadPool thread. Nothing here
        calls into GLib (see the module's docstring)."""
        t0 = time.perf_counter()
        self._enter(1)
        try:
            items = pickle.loads(task)
            results, errors = self._run_items(items)
        except BaseException as e:  # noqa: B902 -- no item could run
            results, errors = [None], [_error_entry(0, e)]
        finally:
            self._enter(-1)
        return self._dumps(time.perf_counter() - t0, results, errors)


def _prepared(payload, forked):
    """The _Server, once the main script is imported. Until
    FastMap.worker_serve_bytes() moves it, the protocol is on fds 0 and 1, and
    what the script prints or reads as it is imported must not touch it:
    meanwhile stdin reads /dev/null and stdout goes to stderr."""
    saved = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    try:
        os.dup2(2, 1)
    except OSError:             # no stderr: nowhere to print
        os.dup2(null, 1)
    os.close(null)
    try:
        return _Server(payload, forked)
    finally:
        try:
            sys.stdout.flush()
        except Exception:  # noqa: B902 -- a closed or broken stdout
            pass
        os.dup2(saved[0], 0)
        os.dup2(saved[1], 1)
        os.close(saved[0])
        os.close(saved[1])


def serve(payload, forked=False):
    """Serves until the parent closes the stream, then ends the process."""
    from gi.repository import FastMap  # noqa: F401 -- loads the override used below

    if forked:
        # The parent's main module is not the worker's: hide it, and
        # _Server._prepare() runs the script again.
        import types
        sys.modules['__main__'] = types.ModuleType('__main__')
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            signal.set_wakeup_fd(-1)
        except ValueError:
            pass
    # Before the main script, which may start threads.
    overrides = sys.modules['gi.overrides.FastMap']
    overrides._guard_gi_enums()
    server = _prepared(payload, forked)
    # What the function prints goes to stderr (FastMap.worker_serve_bytes()
    # moves stdout there), a line at a time as it does to a terminal: the
    # parent kills its workers once it has their results, and a buffer
    # not written by then would be lost.
    try:
        sys.stdout.reconfigure(line_buffering=True)
    except (AttributeError, ValueError):     # not a TextIOWrapper, or closed
        pass
    code = 0
    try:
        # The introspected function itself: run_chunk() lets nothing
        # escape, and the override's worker_serve_bytes() would wrap it
        # for what it raises and install the guard again.
        overrides.FastMap.worker_serve_bytes(server.run_chunk)
    except Exception as e:
        print(f'fastmap worker: {e}', file=sys.stderr)
        code = 1
    # Threads may still run the function: nobody wants their results.
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


# ---- the fork server ---------------------------------------------------

# A request: the length of its pickle and how many sockets came with it
# (SCM_RIGHTS, on the header's bytes); the answer: a pid per socket, or 0
# for one that could not be forked.
_REQUEST = '!II'
_MAX_SOCKETS = 1024


def _recv_exactly(sock, n):
    data = b''
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def serve_forked(payload, fd, others, environ=None):
    """The worker side of a fork, by the caller or the fork server: serves
    on *fd* after closing *others*, and never returns (serve() ends the
    process; what raises before it is a worker that dies, which the map
    replaces)."""
    try:
        for other in others:
            os.close(other)
        os.dup2(fd, 0)
        os.dup2(fd, 1)
        os.close(fd)
        if environ is not None:
            os.environ.clear()
            os.environ.update(environ)
        serve(pickle.loads(payload), forked=True)
    except BaseException:  # noqa: B902 -- the parent sees the death
        try:
            import traceback
            traceback.print_exc()
        except BaseException:  # noqa: B902
            pass
    finally:
        os._exit(1)


def _fork_one(control, fd, others, request):
    """Forks a worker serving on *fd*; returns its pid, or 0."""
    try:
        pid = os.fork()
    except OSError:
        return 0
    if pid == 0:
        try:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            control.close()
            serve_forked(request['payload'], fd, [o for o in others if o != fd],
                         request['environ'])
        finally:
            os._exit(1)     # never back into the server's loop
    return pid


def _serve_forks(control):
    """The fork server of a caller that runs threads (FastMap._ForkServer):
    a process with no thread but this one, which forks workers with gi
    imported already (a few milliseconds, against 45 for an interpreter
    that starts). It reads requests until the caller closes its end; its
    workers are the caller's grandchildren, which the map takes with
    fm_mapper_take_worker(), and which this process reaps (SIGCHLD
    ignored)."""
    import socket
    import struct
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    control.sendall(b'R')
    while True:
        try:
            head, fds, _flags, _addr = socket.recv_fds(control, struct.calcsize(_REQUEST),
                                                       _MAX_SOCKETS)
        except OSError:
            return
        if not head:
            return
        rest = _recv_exactly(control, struct.calcsize(_REQUEST) - len(head))
        if rest is None:
            return
        size, _count = struct.unpack(_REQUEST, head + rest)
        data = _recv_exactly(control, size)
        if data is None:
            return
        request = pickle.loads(data)
        compile_main_of(request['payload'])
        pids = []
        for fd in fds:
            pids.append(_fork_one(control, fd, fds, request))
        for fd in fds:
            os.close(fd)
        try:
            control.sendall(struct.pack('!%di' % len(pids), *pids))
        except OSError:
            return


def _fork_server_main(word):
    import socket
    sys.path[:] = _read_payload(word)['sys_path']
    import gi
    gi.require_version('FastMap', '1.0')
    from gi.repository import FastMap  # noqa: F401 -- what a worker imports first
    # This script is the module: FastMap's `from . import _fastmap_worker`
    # finds it rather than a second copy.
    sys.modules.setdefault('gi.overrides._fastmap_worker', sys.modules[__name__])
    # Its workers import the caller's script themselves (the server does
    # not run it), and what multiprocessing imports (subprocess, weakref,
    # ...) is what scripts import: without it here, B5 beside a thread took
    # 1.4 ms more (12.5-14.3 against 11.1-12.8 ms, side by side).
    import multiprocessing.spawn  # noqa: F401
    control = socket.socket(fileno=os.dup(0))
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    try:
        os.dup2(2, 1)
    except OSError:
        os.dup2(null, 1)
    os.close(null)
    _serve_forks(control)
    os._exit(0)


def main():
    # Ctrl-C reaches the whole process group: the parent decides.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.argv[1] == '--fork-server':
        _fork_server_main(sys.argv[2])
    payload = _read_payload(sys.argv[1])
    # The parent's sys.path, before gi is imported: the same gi, the same
    # override, the same modules as the parent.
    sys.path[:] = payload['prep']['sys_path']

    import gi
    gi.require_version('FastMap', '1.0')
    serve(payload)


if __name__ == '__main__':
    main()
