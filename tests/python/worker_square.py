# worker_square.py: a Python worker program for FastMap.Mapper(argv=...)
#
# Serves x -> x * x on GVariants of type "x" with FastMap.worker_serve().
#
# SPDX-License-Identifier: LGPL-2.1-or-later
import sys

import gi

gi.require_version('FastMap', '1.0')
from gi.repository import FastMap, GLib  # noqa: E402


def square(task, *unused):
    # Runs on a thread of the worker's GThreadPool.
    x = task.get_int64()
    return GLib.Variant('x', x * x)


if __name__ == '__main__':
    sys.exit(0 if FastMap.worker_serve(square) else 1)
