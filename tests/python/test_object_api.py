# test_object_api.py: FastMap.Mapper and FastMap.Map from Python
#
# SPDX-License-Identifier: LGPL-2.1-or-later
import os
import sys

import pytest

from fmhelpers import wait_no_children
from gi.repository import FastMap, GLib

HERE = os.path.dirname(os.path.abspath(__file__))
C_WORKER = [os.environ['FM_TEST_WORKER'], 'square']
PY_WORKER = [sys.executable, os.path.join(HERE, 'worker_square.py')]


def pushed_map(argv, n, **props):
    mapper = FastMap.Mapper(argv=argv, **props)
    fmap = mapper.map()
    for i in range(n):
        fmap.push(GLib.Variant('x', i))
    fmap.close()
    return fmap


@pytest.mark.parametrize('argv', [C_WORKER, PY_WORKER], ids=['c-worker', 'python-worker'])
def test_map_is_an_iterator_of_results_in_order(argv):
    fmap = pushed_map(argv, 100)
    assert isinstance(fmap, FastMap.Map)
    assert [v.get_int64() for v in fmap] == [i * i for i in range(100)]
    assert wait_no_children() == []


def test_a_python_worker_may_first_use_an_enum_class_on_threads_beside_each_other():
    # FastMap.worker_serve() runs the function on many threads at once:
    # it makes PyGObject build each enum class in one of them.
    import time
    mapper = FastMap.Mapper(argv=[sys.executable, os.path.join(HERE, 'worker_enums.py')],
                            n_processes=1)
    fmap = mapper.map()
    at = time.time() + 1.5
    for _ in range(32):
        fmap.push(GLib.Variant('d', at))
    fmap.close()
    counts = [v.get_int64() for v in fmap]
    assert len(counts) == 32 and len(set(counts)) == 1 and counts[0] > 100
    assert wait_no_children() == []


@pytest.mark.parametrize('how', [[], ['async']], ids=['worker_serve', 'worker_serve_async'])
def test_what_a_python_workers_function_raises_fails_its_task(how):
    # A GLib.Error keeps its domain and code; any other exception is
    # FastMap.Error.FAILED with its type and message (PyGObject alone
    # would print it and return NULL, which says nothing about it).
    mapper = FastMap.Mapper(argv=[sys.executable, os.path.join(HERE, 'worker_raises.py'), *how],
                            n_processes=1)
    fmap = mapper.map()
    for i in range(4):
        fmap.push(GLib.Variant('x', i))
    fmap.close()
    got = []
    while True:
        try:
            value, index = fmap.next()
        except GLib.Error as e:
            got.append((e.domain, e.code, e.message))
            continue
        if value is None:
            break
        got.append(value.get_int64())
    assert got == [0, ('fm-error-quark', int(FastMap.Error.FAILED),
                       'ValueError: one is not served here'),
                   ('worker-raises', 7, 'nor two'), 3]
    assert wait_no_children() == []


def test_properties_and_next():
    mapper = FastMap.Mapper(argv=C_WORKER, n_processes=1, threads_limit=3, ordered=False)
    assert (mapper.props.n_processes, mapper.props.threads_limit, mapper.props.ordered) == (1, 3, False)
    assert mapper.get_argv() == C_WORKER
    fmap = mapper.map()
    assert fmap.get_n_workers() == 1
    fmap.push(GLib.Variant('x', 7))
    fmap.close()
    value, index = fmap.next()
    assert (value.get_int64(), index) == (49, 0)
    value, index = fmap.next()
    assert value is None and index == 1


def test_push_array_and_next_array_take_numbers_in_bulk():
    # Through GI: one GLib.Variant for 20 000 tasks in, and an array of
    # results (with the index of its first) for many results out.
    mapper = FastMap.Mapper(argv=C_WORKER)
    fmap = mapper.map()
    fmap.push_array(GLib.Variant('ax', range(20000)))
    fmap.push(GLib.Variant('x', 20000))
    fmap.close()
    got, lengths = [], []
    while True:
        array, first = fmap.next_array()
        if array is None:
            break
        assert array.get_type_string() == 'ax' and first == len(got)
        got.extend(array.unpack())
        lengths.append(len(array))
    assert got == [i * i for i in range(20001)]
    assert max(lengths) > 100
    assert wait_no_children() == []


def test_leaving_the_with_block_ends_the_workers():
    mapper = FastMap.Mapper(argv=C_WORKER)
    with mapper.map() as fmap:
        fmap.push(GLib.Variant('x', 3))
        assert next(fmap).get_int64() == 9
        pids = [fmap.get_worker_pid(i) for i in range(fmap.get_n_workers())]
        assert all(pid > 0 for pid in pids)
    assert wait_no_children() == []


def test_source_is_pulled_lazily_in_the_consumer_thread():
    import threading
    pulled, threads = [], set()

    def source(*unused):
        threads.add(threading.get_ident())
        if len(pulled) == 50:
            return None
        pulled.append(len(pulled))
        return GLib.Variant('x', pulled[-1])

    mapper = FastMap.Mapper(argv=C_WORKER, max_in_flight=8)
    fmap = mapper.map()
    fmap.set_source(source)
    assert pulled == []
    first = next(fmap)
    assert first.get_int64() == 0
    assert len(pulled) <= 9                 # the window, and the one that made room
    assert [v.get_int64() for v in fmap] == [i * i for i in range(1, 50)]
    assert threads == {threading.get_ident()}


def test_worker_that_cannot_start_is_a_fastmap_error():
    mapper = FastMap.Mapper(argv=['/nonexistent/fastmap-worker'])
    fmap = mapper.map()
    fmap.push(GLib.Variant('x', 1))
    fmap.close()
    with pytest.raises(GLib.Error) as info:
        fmap.next()
    assert info.value.matches(FastMap.error_quark(), FastMap.Error.WORKER_FAILED)
    assert info.value.domain == 'fm-error-quark'


def test_signals_in_the_main_context_of_the_map():
    results, failures, finished = [], [], []
    loop = GLib.MainLoop()
    fmap = pushed_map(C_WORKER, 20)
    fmap.connect('result', lambda m, index, value: results.append((index, value.get_int64())))
    fmap.connect('task-failed', lambda m, index, error: failures.append(index))

    def on_finished(m, error):
        finished.append(error)
        loop.quit()

    fmap.connect('finished', on_finished)
    GLib.timeout_add_seconds(60, loop.quit)
    loop.run()
    assert results == [(i, i * i) for i in range(20)]
    assert failures == [] and finished == [None]


def test_next_async():
    loop = GLib.MainLoop()
    got = []
    fmap = pushed_map(C_WORKER, 5)

    def on_next(m, result, *unused):
        try:
            value, index = m.next_finish(result)
        except Exception as e:  # kept for the assert after the loop
            got.append(e)
            loop.quit()
            return
        if value is None:
            loop.quit()
            return
        got.append((index, value.get_int64()))
        m.next_async(None, on_next)

    fmap.next_async(None, on_next)
    loop.run()
    assert got == [(i, i * i) for i in range(5)]
