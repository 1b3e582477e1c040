# worker_raises.py: a Python worker program for FastMap.Mapper(argv=...)
#
# Serves x -> x on GVariants of type "x" with FastMap.worker_serve() (or,
# given "async", FastMap.worker_serve_async() in a main loop), and fails
# x = 1 with a ValueError and x = 2 with a GLib.Error of its own.
#
# SPDX-License-Identifier: LGPL-2.1-or-later
import sys

import gi

gi.require_version('FastMap', '1.0')
from gi.repository import FastMap, GLib  # noqa: E402


def identity_but_one_and_two(task, *unused):
    x = task.get_int64()
    if x == 1:
        raise ValueError('one is not served here')
    if x == 2:
        raise GLib.Error.new_literal(GLib.quark_from_string('worker-raises'), 'nor two', 7)
    return GLib.Variant('x', x)


def serve_async():
    loop = GLib.MainLoop()
    ok = []

    def done(source, result, *unused):
        ok.append(FastMap.worker_serve_finish(result))
        loop.quit()

    FastMap.worker_serve_async(identity_but_one_and_two, callback=done)
    loop.run()
    return ok == [True]


if __name__ == '__main__':
    if sys.argv[1:] == ['async']:
        sys.exit(0 if serve_async() else 1)
    sys.exit(0 if FastMap.worker_serve(identity_but_one_and_two) else 1)
