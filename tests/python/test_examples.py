# test_examples.py: examples/basic_usage.py, the seed's example
#
# SPDX-License-Identifier: LGPL-2.1-or-later
import os
import subprocess
import sys

EXAMPLE = os.path.join(os.environ['FM_SOURCE_ROOT'], 'examples', 'basic_usage.py')


def test_basic_usage_runs_as_the_seed_does():
    # Its function is defined in __main__: the workers import the script
    # as __mp_main__, as multiprocessing's spawn does.
    out = subprocess.run([sys.executable, EXAMPLE], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    lines = out.split('\n')
    assert [int(x) for x in lines if x.strip().isdigit()] == [x * x for x in range(8)]
