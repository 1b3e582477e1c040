# worker_enums.py: a Python worker program for FastMap.Mapper(argv=...)
#
# Serves a task "d" (a time.time() to wait for) with FastMap.worker_serve():
# at that time, with a switch interval of 1 µs, it takes three values of
# every enum and flags class of Gio, as tasks that first use a class beside
# each other do, and returns how many ("x").
#
# SPDX-License-Identifier: LGPL-2.1-or-later
import sys
import time

import gi

gi.require_version('FastMap', '1.0')
from gi.repository import FastMap, GLib  # noqa: E402

# The names only: the classes are built by the tasks.
import gi.module  # noqa: E402
NAMES = [info.get_name() for info in gi.module.repository.get_infos('Gio')
         if isinstance(info, gi.module.EnumInfo)]


def values_at(task, *unused):
    from gi.repository import Gio
    time.sleep(max(0.0, task.get_double() - time.time()))
    sys.setswitchinterval(1e-6)
    n = 0
    for name in NAMES:
        cls = getattr(Gio, name)
        for value in cls.__info__.get_values()[:3]:
            getattr(cls, value.get_name_unescaped().upper())
            n += 1
    return GLib.Variant('x', n)


if __name__ == '__main__':
    sys.exit(0 if FastMap.worker_serve(values_at) else 1)
