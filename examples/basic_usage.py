#!/usr/bin/env python3
# basic_usage.py: the original fast_map's example, on FastMap
#
# The seed's code with only the import lines changed (and the usual
# `if __name__ == "__main__":` guard: the workers import this script, as
# multiprocessing's spawn does, to find the function). Eight tasks that
# each wait one second and then compute: all eight waits overlap, so the
# results come in about one second, each printed as soon as it is there.
#
# SPDX-License-Identifier: LGPL-2.1-or-later
import time

import gi; gi.require_version("FastMap", "1.0")  # noqa: E702
from gi.repository.FastMap import fast_map  # noqa: E402


def io_and_cpu_expensive_function(x):
    time.sleep(1)
    for i in range(10 ** 5):
        pass
    return x*x


if __name__ == "__main__":
    start = time.monotonic()
    # It will spawn 8 threads in total.
    # On a 4-core CPU it will spawn 4 processes and 2 threads in each process.
    for i in fast_map(io_and_cpu_expensive_function, range(8), threads_limit=None):
        print(i)
    print(f"all done in {time.monotonic() - start:.2f} s (a plain loop takes 8 s)")
