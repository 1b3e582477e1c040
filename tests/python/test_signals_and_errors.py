# test_signals_and_errors.py: exceptions, early exit and Ctrl-C
#
# SPDX-License-Identifier: LGPL-2.1-or-later
import gc
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from fmhelpers import children, wait_no_children
from gi.repository import FastMap

HERE = os.path.dirname(os.path.abspath(__file__))


class Unpicklable(Exception):
    def __init__(self, a, b):       # pickle rebuilds with one argument: fails
        super().__init__(f'{a}-{b}')


def fails_at_5(x):
    if x == 5:
        raise ValueError(f'bad item {x}')
    return x


def fails_unpicklably(x):
    if x == 2:
        raise Unpicklable('p', 'q')
    return x


def returns_a_lock(x):
    return threading.Lock() if x == 3 else x


def nap(x):
    time.sleep(0 if x == 0 else 60)
    return x


def test_exception_is_raised_at_its_item_with_the_worker_traceback():
    got = []
    with pytest.raises(ValueError) as info:
        for x in FastMap.fast_map(fails_at_5, range(20)):
            got.append(x)
    assert got == [0, 1, 2, 3, 4]
    assert str(info.value) == 'bad item 5'
    cause = info.value.__cause__
    assert isinstance(cause, FastMap.RemoteTraceback)
    assert 'Traceback (most recent call last)' in str(cause)
    assert 'fails_at_5' in str(cause) and 'raise ValueError' in str(cause)
    assert wait_no_children() == []


def test_exception_that_cannot_be_rebuilt_keeps_its_name_and_message():
    got = []
    with pytest.raises(FastMap.RemoteError) as info:
        for x in FastMap.fast_map(fails_unpicklably, range(10)):
            got.append(x)
    assert got == [0, 1]
    assert 'Unpicklable' in str(info.value) and 'p-q' in str(info.value)
    assert 'fails_unpicklably' in str(info.value.__cause__)


def test_result_that_cannot_be_sent_back_is_a_type_error_at_its_item():
    got = []
    with pytest.raises(TypeError):
        for x in FastMap.fast_map(returns_a_lock, range(10)):
            got.append(x)
    assert got == [0, 1, 2]


def test_argument_that_cannot_be_sent_is_a_type_error_at_its_item():
    got = []
    with pytest.raises(TypeError):
        for x in FastMap.fast_map(str, [1, 2, threading.Lock(), 4]):
            got.append(x)
    assert got == ['1', '2']


def test_error_of_the_input_is_raised_after_the_items_before_it():
    def source():
        yield 1
        yield 2
        raise LookupError('input broke')

    got = []
    with pytest.raises(LookupError, match='input broke'):
        for x in FastMap.fast_map(str, source()):
            got.append(x)
    assert got == ['1', '2']
    assert wait_no_children() == []


@pytest.mark.parametrize('func', [lambda x: x, pytest.param(None, id='nested')])
def test_function_that_cannot_be_sent_is_a_type_error_before_any_process(func):
    if func is None:
        def func(x):
            return x
    with pytest.raises(TypeError, match='top level'):
        FastMap.fast_map(func, [1, 2, 3])
    assert children() == []


def test_break_ends_the_workers():
    for x in FastMap.fast_map(nap, range(50)):
        assert x == 0
        assert children() != []
        break
    gc.collect()
    assert wait_no_children() == []


def test_close_and_garbage_collection_end_the_workers():
    gen = FastMap.fast_map(nap, range(50))
    assert next(gen) == 0
    gen.close()
    assert wait_no_children() == []

    gen = FastMap.fast_map(nap, range(50))
    assert next(gen) == 0
    del gen
    gc.collect()
    assert wait_no_children() == []


@pytest.mark.parametrize('to_group', [False, True], ids=['process', 'terminal'])
def test_ctrl_c_stops_the_map_and_leaves_no_process(to_group):
    # 'terminal': SIGINT to the whole process group, as Ctrl-C in a
    # terminal does; the workers ignore it and the caller ends them.
    child = subprocess.Popen([sys.executable, os.path.join(HERE, 'interrupted.py')],
                             stdout=subprocess.PIPE, text=True, cwd=HERE,
                             start_new_session=True)
    try:
        line = child.stdout.readline()
        assert line.startswith('RUNNING'), line
        assert int(line.split()[1]) > 0
        if to_group:
            os.killpg(child.pid, signal.SIGINT)
        else:
            child.send_signal(signal.SIGINT)
        # The tasks sleep a minute: returning well before is "at once".
        out, _ = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    assert out.split('\n')[:2] == ['INTERRUPTED', 'CHILDREN 0']
    assert child.returncode == 0


@pytest.mark.parametrize('method', ['fork', 'forkserver'])
def test_ctrl_c_while_forking_leaves_no_process(monkeypatch, method):
    # Ctrl-C between a fork (ours, or the fork server's) and the map's
    # taking the child: the child is ended, and the exception goes on.
    from gi.module import get_introspection_module
    forked = []

    def interrupted(self, fd, pid):
        forked.append(pid)
        raise KeyboardInterrupt

    monkeypatch.setattr(get_introspection_module('FastMap').Mapper, 'take_worker', interrupted)
    with pytest.raises(KeyboardInterrupt):
        list(FastMap.fast_map(nap, range(4), start_method=method))
    assert len(forked) == 1
    deadline = time.monotonic() + 10
    while os.path.exists(f'/proc/{forked[0]}') and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not os.path.exists(f'/proc/{forked[0]}')
    assert wait_no_children() == []
