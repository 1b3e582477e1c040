# bench_funcs.py: the functions the Python rows of bench/ map.
#
# They live in a module of their own, not in __main__, so that every
# mapper (multiprocessing pickles them by reference; FastMap's Python
# workers import them) finds them by name.
#
# SPDX-License-Identifier: LGPL-2.1-or-later
import time

SLEEP = 1.0


def seed_1e5(x):
    """The seed's io_and_cpu_expensive_function, 10^5 loops."""
    time.sleep(SLEEP)
    for _ in range(10 ** 5):
        pass
    return x * x


def seed_1e6(x):
    """The seed's io_and_cpu_expensive_function, 10^6 loops."""
    time.sleep(SLEEP)
    for _ in range(10 ** 6):
        pass
    return x * x


SEED = {100000: seed_1e5, 1000000: seed_1e6}


def spin(loops):
    """The CPU part of a seed call alone."""
    for _ in range(loops):
        pass


def square(x):
    return x * x


def cpu_task(steps):
    """Pure computation: `steps` rounds of a 64-bit xorshift."""
    x = 88172645463325252
    m = (1 << 64) - 1
    for _ in range(steps):
        x ^= (x << 13) & m
        x ^= x >> 7
        x ^= (x << 17) & m
    return x


def trivial(x):
    return x
