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


def from_callers_code():
    # Whether this script runs here from the code the caller compiled
    # before it forked (its functions' code is that code's), not from the
    # file read and compiled again.
    main = getattr(sys.modules.get('gi.overrides._fastmap_worker'), '_main_code', None)
    return main is not None and any(c is report.__code__ for c in main[2].co_consts)


def report(x):
    with open('/proc/self/cmdline', 'rb') as f:
        spawned = b'_fastmap_worker.py' in f.read()
    return (x * x, not spawned, SET_BY_THE_CALLER is not None, os.getppid(),
            __name__, from_callers_code())


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
        'parent_is_caller': all(r[3] == os.getpid() for r in got),
        'names': sorted({r[4] for r in got}),
        'from_callers_code': sorted({r[5] for r in got}),
    }), flush=True)


if __name__ == '__main__':
    SET_BY_THE_CALLER = 'set'
    for method in sys.argv[1:]:
        if method == 'with-a-thread':
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
