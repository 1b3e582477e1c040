# test_fast_map.py: FastMap.fast_map(), the seed's API
#
# SPDX-License-Identifier: LGPL-2.1-or-later
import itertools
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from fmhelpers import children, wait_no_children
from gi.repository import FastMap


def square(x):
    return x * x


def identity(x):
    return x


def add(a, b):
    return a + b


def sleep_and_record(x, seconds):
    start = time.monotonic()
    time.sleep(seconds)
    return (x, start, time.monotonic())


def wait_for_flag(x, flag):
    # Item 1 raises the flag as it ends; item 0 ends only after it, so
    # item 1's result is ready first.
    if x == 1:
        open(flag, 'w').close()
        return x
    deadline = time.monotonic() + 30
    while not os.path.exists(flag) and time.monotonic() < deadline:
        time.sleep(0.005)
    # Leave item 1's result time to travel, even on a loaded machine.
    time.sleep(0.5)
    return x


def max_overlap(intervals):
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    best = now = 0
    for _, step in events:
        now += step
        best = max(best, now)
    return best


def test_results_in_input_order():
    assert list(FastMap.fast_map(square, range(200))) == [x * x for x in range(200)]
    assert wait_no_children() == []


def test_several_iterables_are_zipped_as_map_does():
    assert list(FastMap.fast_map(add, [1, 2, 3, 4], (10, 20, 30))) == [11, 22, 33]
    assert list(FastMap.fast_map(pow, [2, 3, 10], [5, 2, 0])) == [32, 9, 1]


def test_any_picklable_value_none_zero_and_empty_included():
    values = [None, 0, '', b'', [], {}, False, 0.0, ('a', {1: [2]}), 'é' * 10]
    assert list(FastMap.fast_map(identity, values)) == values


def test_empty_input_yields_nothing_and_starts_no_process():
    gen = FastMap.fast_map(square, [])
    assert list(gen) == []
    assert children() == []


def test_returns_at_once_and_pulls_lazily():
    pulled = []

    def source():
        for i in itertools.count():
            pulled.append(i)
            yield i

    gen = FastMap.fast_map(square, source())
    assert pulled == []                        # nothing pulled before the first next()
    first = list(itertools.islice(gen, 1000))
    assert first == [x * x for x in range(1000)]
    # An endless input: the run is bounded by the window, nowhere near
    # the whole input (there is none).
    assert len(pulled) < 200000
    gen.close()
    assert wait_no_children() == []


def test_threads_limit_bounds_how_many_run_at_once():
    out = list(FastMap.fast_map(sleep_and_record, range(6), [0.25] * 6, threads_limit=2))
    assert [x for x, _, _ in out] == list(range(6))
    assert max_overlap([(s, e) for _, s, e in out]) <= 2


def test_no_threads_limit_runs_every_waiting_task_at_once():
    out = list(FastMap.fast_map(sleep_and_record, range(8), [0.5] * 8))
    assert [x for x, _, _ in out] == list(range(8))
    assert max_overlap([(s, e) for _, s, e in out]) == 8


def arrive_and_wait_for_all(_, path, n):
    # Each item counts itself in (a byte appended to a shared file), then
    # waits until all n have: none comes back before every one has started.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    os.write(fd, b'.')
    os.close(fd)
    deadline = time.monotonic() + 30
    while os.path.getsize(path) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    return os.path.getsize(path)


def test_items_that_wait_all_go_out_before_any_comes_back(tmp_path):
    # While no item has come back, the number out keeps growing (up to the
    # window), whatever the number of workers: a layer that waited for a
    # result to learn the cost would hold all but the first few forever.
    n = 600
    path = str(tmp_path / 'arrived')
    open(path, 'wb').close()
    seen = list(FastMap.fast_map(arrive_and_wait_for_all, range(n), [path] * n, [n] * n))
    assert seen == [n] * n


def values_of_enum_classes_at(_, pairs, at):
    # Waits until *at*, then takes the values (class name, value name) of
    # Gio's enum and flags classes with a switch interval of 1 µs: items
    # that first touch a class beside each other, which PyGObject 3.42
    # alone would hand half built to all but one of them.
    from gi.repository import Gio
    time.sleep(max(0.0, at - time.time()))
    sys.setswitchinterval(1e-6)
    for cls, value in pairs:
        getattr(getattr(Gio, cls), value)
    return len(pairs)


def test_items_may_first_use_an_enum_class_beside_each_other():
    from gi.repository import GObject, Gio
    pairs = []
    for name in dir(Gio):
        cls = getattr(Gio, name)
        if isinstance(cls, type) and issubclass(cls, (GObject.GEnum, GObject.GFlags)):
            pairs += [(name, v) for v, x in vars(cls).items() if isinstance(x, cls)][:3]
    assert len(pairs) > 100
    n = 32
    # Spawned: a worker forked from here would find the classes built.
    got = list(FastMap.fast_map(values_of_enum_classes_at, range(n), [pairs] * n,
                                [time.time() + 1.5] * n, procs_limit=1, start_method='spawn'))
    assert got == [len(pairs)] * n


def test_one_item_tasks_out_double_every_step_while_none_is_back():
    from gi.overrides.FastMap import _PROBE_ITEMS, _PROBE_STEP, _WINDOW, _Run
    run = object.__new__(_Run)
    run.n_workers, run.slow_window, run.ready_at = 2, _WINDOW, None
    first = _PROBE_ITEMS * 2
    assert run._probe_room() == first            # a worker still starts
    run.ready_at = 100.0
    assert [run._probe_room(100.0 + (k + 0.5) * _PROBE_STEP) for k in range(4)] == \
        [first, 2 * first, 4 * first, 8 * first]
    assert run._probe_room(100.0 + 60 * _PROBE_STEP) == _WINDOW
    run.slow_window = 6                          # threads_limit=3
    assert run._probe_room(100.0 + 60 * _PROBE_STEP) == 6


def test_a_step_that_ends_after_the_pump_looked_is_not_waited_for():
    # pump() fills the room of a step; if the next step begins before the
    # consumer asks how long to wait, it must pump at once rather than
    # wait for a result, which items that wait for each other never give
    # (under load they waited until their deadline, 8 or 16 of 600 out).
    from gi.overrides.FastMap import _PROBE_ITEMS, _PROBE_STEP, _WINDOW, _Run
    run = object.__new__(_Run)
    run.n_workers, run.slow_window, run.cost, run.closed = 2, _WINDOW, None, False
    run.ready_at = time.monotonic() - 1.5 * _PROBE_STEP   # in the second step
    run.items_out = _PROBE_ITEMS * 2                      # the first step's room
    assert run._probe_timeout() == 0.0
    run.items_out = _PROBE_ITEMS * 4                      # the second's, filled:
    assert 0.0 <= run._probe_timeout() <= _PROBE_STEP    # until the third (0 if it began)
    run.items_out = _WINDOW
    assert run._probe_timeout() is None


def sleep_then_switch_interval(_):
    time.sleep(0.5)
    return sys.getswitchinterval()


def test_switch_interval_grows_with_the_items_running_at_once():
    # A thousand threads that want the GIL each ask for it every switch
    # interval: the worker makes the interval grow with them (and back).
    base = sys.getswitchinterval()
    intervals = list(FastMap.fast_map(sleep_then_switch_interval, range(400), procs_limit=1))
    assert max(intervals) >= 100 * 0.0005 > base
    assert max(intervals) <= 0.5
    alone = list(FastMap.fast_map(sleep_then_switch_interval, range(1), procs_limit=1))
    assert alone == [base]


def compute_then_count_threads(_):
    # A millisecond of pure Python: its threads wait for the GIL, asleep
    # in the kernel as threads that block are, but more would not help.
    t0 = time.thread_time()
    while time.thread_time() - t0 < 0.001:
        pass
    with open('/proc/self/status') as f:
        return int(next(line for line in f if line.startswith('Threads:')).split()[1])


def test_items_that_compute_do_not_start_a_thread_each():
    # The worker once judged "the process computes" over a millisecond;
    # a Python worker sharing the cores often used less in one, looked
    # blocked, and grew to hundreds of threads fighting for the GIL. A few
    # doublings on a loaded machine are no failure; a thread per item is.
    counts = list(FastMap.fast_map(compute_then_count_threads, range(1000)))
    assert len(counts) == 1000
    assert max(counts) < 128


def test_procs_limit():
    pids = list(FastMap.fast_map(worker_pid, range(50), procs_limit=1))
    assert len(set(pids)) == 1 and pids[0] != os.getpid()


def worker_pid(_):
    return os.getpid()


def sleep_then_pid(_):
    time.sleep(0.2)
    return os.getpid()


def test_procs_limit_above_the_cores():
    # Documented for items that wait and compute: twice the cores.
    n = 2 * os.cpu_count()
    pids = list(FastMap.fast_map(sleep_then_pid, range(8 * n), procs_limit=n))
    assert len(set(pids)) == n and os.getpid() not in pids
    assert wait_no_children() == []


@pytest.mark.parametrize('ordered, expected', [(True, [0, 1]), (False, [1, 0])])
def test_ordered_false_gives_results_as_they_are_done(tmp_path, ordered, expected):
    flag = str(tmp_path / 'flag')
    out = list(FastMap.fast_map(wait_for_flag, [0, 1], [flag, flag], ordered=ordered))
    assert out == expected


def test_100000_items():
    n = 100000
    assert sum(FastMap.fast_map(square, range(n))) == sum(x * x for x in range(n))
    assert wait_no_children() == []


HERE = os.path.dirname(os.path.abspath(__file__))


def run_start_methods(*runs):
    out = subprocess.run([sys.executable, os.path.join(HERE, 'start_methods.py'), *runs],
                         capture_output=True, text=True, cwd=HERE, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    # The caller's own top-level print, once; the workers' went to their
    # stderr, not into the stream (a worker's stdout is the protocol until
    # it serves).
    assert lines[0] == 'TOP LEVEL OUTPUT' and 'TOP LEVEL OUTPUT' not in lines[1:], out.stdout
    return {r['run']: r for r in map(json.loads, lines[1:])}


def test_workers_are_forked_when_no_other_thread_runs():
    runs = run_start_methods('default', 'default-again', 'gio-subprocess', 'fork',
                             'with-a-thread', 'spawn', 'default-after-spawn')
    # A run leaves no thread behind, so the next one forks too, and its
    # workers have GLib whole (they reap a GSubprocess). A spawn starts
    # GLib's worker thread (GSubprocess's child watch), for good: after
    # it, the workers come from the fork server, which the first run with
    # a thread started as it ended (its own workers were spawned).
    for name, forked, parent in (
            ('default', True, 'caller'), ('default-again', True, 'caller'),
            ('gio-subprocess', True, 'caller'), ('fork', True, 'caller'),
            ('with-a-thread', False, 'caller'), ('spawn', False, 'caller'),
            ('default-after-spawn', True, 'fork-server')):
        r = runs[name]
        assert r['right'], r
        assert r['parents'] == [parent], r
        # Either way the workers import the main script again, as spawn
        # does: what the caller set under `if __name__ == "__main__":` is
        # not theirs.
        assert not r['saw_callers_global'], r
        assert r['names'] == ['__mp_main__'], r
        # A forked worker runs it from the code its forker compiled (once
        # for all runs: the file did not change), not from the file.
        assert r['from_compiled_code'] == [forked], r


CACHED_MAIN = """
import json, sys
import gi
gi.require_version('FastMap', '1.0')
from gi.repository import FastMap

VALUE = {value}


def probe(x):
    main = sys.modules['gi.overrides._fastmap_worker']._main_code
    return (VALUE, 'multiprocessing' in sys.modules,
            main is not None and probe.__code__ in main[2].co_consts)


if __name__ == '__main__':
    got = list(FastMap.fast_map(probe, range(4), procs_limit=2))
    print(json.dumps({{'values': sorted({{g[0] for g in got}}),
                      'compiled': all(g[2] for g in got),
                      'multiprocessing': [any(g[1] for g in got),
                                          'multiprocessing' in sys.modules]}}))
"""


def test_a_forked_workers_script_comes_from_its_bytecode_cache(tmp_path):
    script = tmp_path / 'cached_main.py'
    env = {k: v for k, v in os.environ.items()
           if k not in ('PYTHONDONTWRITEBYTECODE', 'PYTHONPYCACHEPREFIX')}

    def run(value, mtime_ns=None, **extra):
        script.write_text(CACHED_MAIN.format(value=value))
        if mtime_ns is not None:
            os.utime(script, ns=(mtime_ns, mtime_ns))
        out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                             env=dict(env, **extra), cwd=tmp_path, timeout=60)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout.splitlines()[-1])

    def cached():
        return list((tmp_path / '__pycache__').glob('cached_main.*.pyc'))

    # Neither the caller nor its forked workers import multiprocessing
    # (1.8 ms each); the workers run the code the caller compiled, and no
    # bytecode is written where Python would write none.
    assert run(1, PYTHONDONTWRITEBYTECODE='1') == {
        'values': [1], 'compiled': True, 'multiprocessing': [False, False]}
    assert not cached()
    # Else it is cached as a module's: the same file, at the same time and
    # size, is not compiled again (this one says 2, and its cache 1, as
    # for a module edited within a second without changing its size).
    assert run(1)['values'] == [1]
    assert cached()
    mtime_ns = script.stat().st_mtime_ns
    assert run(2, mtime_ns=mtime_ns)['values'] == [1]
    # An edit that changes either is compiled again.
    assert run(33)['values'] == [33]


FLAGS = """
import json, sys
sys.path.insert(0, sys.argv[1])     # -E and -I ignore PYTHONPATH
import gi
gi.require_version('FastMap', '1.0')
from gi.repository import FastMap
argv = sys.modules['gi.overrides.FastMap']._worker_command(b'')[0]
imported = 'subprocess' in sys.modules
import subprocess
print(json.dumps([argv[1:-1], subprocess._args_from_interpreter_flags(), imported]))
"""


@pytest.mark.parametrize('options', [
    [], ['-O'], ['-OO'], ['-B'], ['-s'], ['-E'], ['-I'], ['-P'], ['-b'], ['-bb'], ['-q'],
    ['-W', 'always::UserWarning'], ['-X', 'dev'], ['-X', 'utf8'], ['-X', 'faulthandler'], ['-X', 'utf8=0'],
    ['-X', 'frozen_modules=off'], ['-O', '-s', '-W', 'ignore', '-X', 'tracemalloc=2']])
def test_a_spawned_worker_gets_the_interpreters_options(options):
    # The options subprocess gives a new interpreter, without importing
    # subprocess when there are none (0.66 ms of a first map).
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONDONTWRITEBYTECODE',)}
    override = sys.modules['gi.overrides.FastMap'].__file__
    top = os.path.dirname(os.path.dirname(os.path.dirname(override)))
    out = subprocess.run([sys.executable, *options, '-c', FLAGS, top],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    ours, theirs, imported = json.loads(out.stdout.splitlines()[-1])
    assert ours == theirs
    if not options:
        assert not imported


PRINTS = """
import sys
import gi
gi.require_version('FastMap', '1.0')
from gi.repository import FastMap


def say(x):
    print('item', x, 'says hello')
    return x


if __name__ == '__main__':
    assert list(FastMap.fast_map(say, range(60), start_method=sys.argv[1])) == list(range(60))
"""


@pytest.mark.parametrize('start_method', ['fork', 'spawn'])
def test_what_the_function_prints_is_not_lost(tmp_path, start_method):
    # A worker's stdout is block-buffered (it is no terminal), and the
    # workers are killed once their results are in: each line must be
    # out by then.
    script = tmp_path / 'prints.py'
    script.write_text(PRINTS)
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONUNBUFFERED'}
    out = subprocess.run([sys.executable, str(script), start_method], capture_output=True,
                         text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    said = sorted(line for line in out.stderr.splitlines() if line.endswith('says hello'))
    assert said == sorted(f'item {x} says hello' for x in range(60)), out.stderr


def test_a_caller_with_threads_has_its_workers_forked_by_the_fork_server():
    runs = run_start_methods('with-a-thread', 'with-a-thread-served', 'kill-fork-server',
                             'with-a-thread-after-a-kill', 'with-a-thread-served-again',
                             'forkserver', 'fork-server-pid')
    # The first run spawns and starts the server as it ends; from then on
    # the server forks the workers. One killed between runs leaves the
    # next run to spawn, which starts another.
    for name, parent in (('with-a-thread', 'caller'), ('with-a-thread-served', 'fork-server'),
                         ('with-a-thread-after-a-kill', 'caller'),
                         ('with-a-thread-served-again', 'fork-server'),
                         ('forkserver', 'fork-server')):
        r = runs[name]
        assert r['right'], r
        assert r['parents'] == [parent], r
        assert not r['saw_callers_global'], r
        assert r['names'] == ['__mp_main__'], r
    # The server ends with its caller.
    server = runs['fork-server-pid']['pid']
    deadline = time.monotonic() + 10
    while os.path.exists(f'/proc/{server}') and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not os.path.exists(f'/proc/{server}')


def test_bad_start_method():
    with pytest.raises(ValueError, match='start_method'):
        FastMap.fast_map(square, [1], start_method='vfork')


def dies_once(x, flag):
    if x == 3 and not os.path.exists(flag):
        open(flag, 'w').close()
        os.kill(os.getpid(), signal.SIGKILL)
    return x


@pytest.mark.parametrize('method', ['fork', 'forkserver', 'spawn'])
def test_a_worker_that_dies_loses_nothing(tmp_path, method):
    flag = str(tmp_path / 'died')
    got = list(FastMap.fast_map(dies_once, range(50), itertools.repeat(flag),
                                procs_limit=2, start_method=method))
    assert got == list(range(50))
    assert os.path.exists(flag)
    assert wait_no_children() == []


def private_dirty_after_gc(_):
    import gc
    gc.collect()
    with open('/proc/self/smaps_rollup') as f:
        for line in f:
            if line.startswith('Private_Dirty:'):
                return int(line.split()[1]) * 1024
    raise AssertionError('no Private_Dirty in smaps_rollup')


def test_a_forked_worker_shares_the_callers_heap():
    # A million lists, ~100 MB, that a worker's collection would walk (and
    # so copy, page by page) if they were not frozen at the fork. (Not
    # tuples of ints: the collector stops tracking those.)
    heap = [[i] for i in range(1_000_000)]
    dirty = list(FastMap.fast_map(private_dirty_after_gc, range(2), procs_limit=2,
                                  start_method='fork'))
    assert len(heap) == 1_000_000
    assert max(dirty) < 40 * 1024 * 1024, dirty
