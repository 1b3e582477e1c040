# interrupted.py: a fast_map() caller that the Ctrl-C test interrupts
#
# SPDX-License-Identifier: LGPL-2.1-or-later
import sys
import time

from fmhelpers import children, wait_no_children
from gi.repository import FastMap


def nap(x):
    time.sleep(0 if x == 0 else 60)
    return x


if __name__ == '__main__':
    try:
        for x in FastMap.fast_map(nap, range(100)):
            # Item 0 is back: the workers run, the others sleep for a minute.
            print('RUNNING', len(children()), flush=True)
        print('NOT INTERRUPTED', flush=True)
    except KeyboardInterrupt:
        print('INTERRUPTED', flush=True)
    print('CHILDREN', len(wait_no_children()), flush=True)
    sys.exit(0)
