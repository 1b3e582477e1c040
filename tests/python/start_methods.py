# start_methods.py: a fast_map() caller that reports how its workers started
#
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Prints one JSON line per run: the start method asked for, whether the
workers were forked (a spawned one runs _fastmap_worker.py), whether they
saw a global that only the caller's run of this script sets, and whether
the results were right. Prints at its top level, as scripts do: the
workers import it again, and that output must not reach the stream."""
import json
import os
import sys
import threading

import gi

gi.require_version('FastMap', '1.0')
from gi.repository import FastMap  # noqa: E402

print('TOP LEVEL OUTPUT')

SET_BY_THE_CALLER = None


def from_compiled_code():
    # Whether this script runs here from the code its forker (the caller,
    # or the fork server) compiled before it forked (its functions' code
    # is that code's), not from the file read and compiled again.
    worker = sys.modules.get('gi.overrides._fastmap_worker')
    for module in [worker] + getattr(worker, '_old_main_modules', []):
        main = getattr(module, '_main_code', None)
        if main is not None and any(c is report.__code__ for c in main[2].co_consts):
            return True
    return False


def parent_kind():
    ppid = os.getppid()
    if ppid == int(os.environ['START_METHODS_CALLER']):
        return 'caller'
    with open(f'/proc/{ppid}/cmdline', 'rb') as f:
        return 'fork-server' if b'--fork-server' in f.read().split(b'\0') else 'other'


def report(x):
    with open('/proc/self/cmdline', 'rb') as f:
        spawned = b'_fastmap_worker.py' in f.read()
    return (x * x, not spawned, SET_BY_THE_CALLER is not None, os.getppid(),
            __name__, from_compiled_code(), parent_kind())


def report_after_a_subprocess(x):
    # A GSubprocess is reaped by GLib's worker thread: in a child forked
    # while that thread ran in the parent, there would be none, and this
    # would wait for ever.
    from gi.repository import Gio
    Gio.Subprocess.new(['true'], Gio.SubprocessFlags.NONE).wait_check()
    return report(x)


def run(method, label=None, func=report):
    got = list(FastMap.fast_map(func, range(40), procs_limit=2, start_method=method))
    print(json.dumps({
        'run': label or str(method),
        'right': [r[0] for r in got] == [x * x for x in range(40)],
        'forked': sorted({r[1] for r in got}),
        'saw_callers_global': any(r[2] for r in got),
        'names': sorted({r[4] for r in got}),
        'from_compiled_code': sorted({r[5] for r in got}),
        'parents': sorted({r[6] for r in got}),
    }), flush=True)


def wait_for_the_fork_server():
    # A run waits 2 s at most for a fork server that is starting (then it
    # spawns its workers). These runs are about where the workers come
    # from, and on a loaded machine the server, which the run before
    # started as it ended (an interpreter that imports gi), took longer.
    from gi.overrides.FastMap import _ForkServer
    with _ForkServer.lock:
        if _ForkServer.current is not None:
            _ForkServer.current.wait_ready(60.0)


if __name__ == '__main__':
    SET_BY_THE_CALLER = 'set'
    os.environ['START_METHODS_CALLER'] = str(os.getpid())   # the workers' environment too
    for method in sys.argv[1:]:
        if method != 'kill-fork-server':
            wait_for_the_fork_server()
        if method == 'kill-fork-server':
            from gi.overrides.FastMap import _ForkServer
            _ForkServer.current.proc.kill()
            _ForkServer.current.proc.wait()
        elif method == 'fork-server-pid':
            from gi.overrides.FastMap import _ForkServer
            print(json.dumps({'run': method, 'pid': _ForkServer.current.proc.pid}), flush=True)
        elif method.startswith('with-a-thread'):
            stop = threading.Event()
            thread = threading.Thread(target=stop.wait)
            thread.start()
            run(None, method)
            stop.set()
            thread.join()
        elif method == 'gio-subprocess':
            run(None, method, report_after_a_subprocess)
        else:
            run(None if method.startswith('default') else method, method)
