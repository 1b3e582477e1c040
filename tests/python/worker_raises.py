# worker_raises.py: a Python worker program for FastMap.Mapper(argv=...)
#
# Serves x -> x on GVariants of type "x" with FastMap.worker_serve(), and
# fails x = 1 with a ValueError and x = 2 with a GLib.Error of its own.
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


if __name__ == '__main__':
    sys.exit(0 if FastMap.worker_serve(identity_but_one_and_two) else 1)
