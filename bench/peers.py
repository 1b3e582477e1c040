#!/usr/bin/python3
# peers.py: the Python side of the benchmark suite, one measurement per run.
#
#   /usr/bin/python3 bench/peers.py BENCH IMPL [options]
#
# Prints one JSON object on stdout. bench/run.py runs it, each time in a
# fresh process under a timeout; run by hand, it is a quick way to time one
# row. IMPL "fastmap" is FastMap.fast_map, the Python binding, when the
# GI_TYPELIB_PATH / LD_LIBRARY_PATH / PYTHONPATH of the build make it
# importable; otherwise the row says why it is not available.
#
# SPDX-License-Identifier: LGPL-2.1-or-later
import argparse
import itertools
import json
import os
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_funcs  # noqa: E402


def cpu_self():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def load_fastmap():
    """FastMap.fast_map, or the reason it cannot be had."""
    try:
        import gi
        gi.require_version('FastMap', '1.0')
        from gi.repository import FastMap
        return FastMap.fast_map, None
    except Exception as e:  # ImportError, ValueError, AttributeError
        return None, '%s: %s' % (type(e).__name__, e)


def peak_rss_kib():
    """VmHWM: ru_maxrss would carry over the runner's peak across fork and exec."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1])
    return -1


def emit(**row):
    print(json.dumps(row), flush=True)


# ---- B1: the seed's workload --------------------------------------------

def call_cpu(loops, reps=11):
    t = []
    for _ in range(reps):
        t0 = time.thread_time()
        bench_funcs.spin(loops)
        t.append(time.thread_time() - t0)
    return statistics.median(t)


def b1(args):
    func = bench_funcs.SEED[args.loops]
    n = args.n
    row = dict(bench='B1', impl=args.impl, n=n, loops=args.loops,
               cores=os.cpu_count(), call_cpu=call_cpu(args.loops))
    procs = min(n, args.max_procs) if args.max_procs else n
    if args.impl == 'fastmap':
        fast_map, why = load_fastmap()
        if fast_map is None:
            return emit(unavailable=why, **row)
        row['settings'] = 'FastMap.fast_map(f, range(N)), defaults (threads_limit=None)'
        run = lambda: list(fast_map(func, range(n)))  # noqa: E731
    elif args.impl == 'fastmap-2x':
        # Not the default: two processes per core, so that a core whose
        # worker hands the GIL to a thread the system woke on the other
        # core has another process to run meanwhile (docs/benchmarks.md).
        fast_map, why = load_fastmap()
        if fast_map is None:
            return emit(unavailable=why, **row)
        twice = 2 * os.cpu_count()
        row['settings'] = 'FastMap.fast_map(f, range(N), procs_limit=%d)' % twice
        run = lambda: list(fast_map(func, range(n), procs_limit=twice))  # noqa: E731
    elif args.impl == 'ppe':
        from concurrent.futures import ProcessPoolExecutor
        row['settings'] = 'ProcessPoolExecutor(max_workers=%d).map(f, range(N))' % procs

        def run():
            with ProcessPoolExecutor(max_workers=procs) as ex:
                return list(ex.map(func, range(n)))
    elif args.impl == 'tpe':
        from concurrent.futures import ThreadPoolExecutor
        row['settings'] = 'ThreadPoolExecutor(max_workers=%d).map(f, range(N))' % n

        def run():
            with ThreadPoolExecutor(max_workers=n) as ex:
                return list(ex.map(func, range(n)))
    elif args.impl == 'floor':
        # Not a peer: what CPython's threads alone do with the items split
        # over one process per core, nothing sent back. It pays the GIL
        # handed between N / cores threads, which T* leaves out.
        import multiprocessing
        import threading
        cores = os.cpu_count()
        row['settings'] = ('%d forked processes of N/%d threads calling f, switch interval as '
                           "fastmap's workers set it, no results sent back" % (cores, cores))

        def part(lo, hi):
            sys.setswitchinterval(max(sys.getswitchinterval(), min(0.5, 0.0005 * (hi - lo))))
            threads = [threading.Thread(target=func, args=(x,)) for x in range(lo, hi)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

        def run():
            ctx = multiprocessing.get_context('fork')
            ps = [ctx.Process(target=part, args=(n * i // cores, n * (i + 1) // cores))
                  for i in range(cores)]
            for p in ps:
                p.start()
            for p in ps:
                p.join()
            if any(p.exitcode != 0 for p in ps):
                return None
            return [x * x for x in range(n)]
    elif args.impl == 'imap':
        import multiprocessing
        row['settings'] = 'Pool(processes=%d).imap(f, range(N), chunksize=1)' % procs

        def run():
            with multiprocessing.Pool(procs) as pool:
                return list(pool.imap(func, range(n), chunksize=1))
    else:
        sys.exit('unknown impl ' + args.impl)
    t0, c0 = time.monotonic(), cpu_self()
    out = run()
    row.update(wall=time.monotonic() - t0, caller_cpu=cpu_self() - c0)
    if out != [x * x for x in range(n)]:
        row['error'] = 'wrong results'
    emit(**row)


# ---- B2: tiny tasks ------------------------------------------------------

def b2(args):
    n, cs = args.n, args.chunksize
    row = dict(bench='B2', impl=args.impl, n=n, chunksize=cs)
    func = bench_funcs.square
    if args.impl == 'fastmap':
        fast_map, why = load_fastmap()
        if fast_map is None:
            return emit(unavailable=why, **row)
        row['settings'] = 'FastMap.fast_map(f, range(N))'
        run = lambda: fast_map(func, range(n))  # noqa: E731
        pool = None
    elif args.impl == 'imap':
        import multiprocessing
        pool = multiprocessing.Pool(os.cpu_count())
        row['settings'] = 'Pool(%d).imap(f, range(N), chunksize=%d)' % (os.cpu_count(), cs)
        run = lambda: pool.imap(func, range(n), chunksize=cs)  # noqa: E731
    elif args.impl == 'ppe':
        from concurrent.futures import ProcessPoolExecutor
        pool = ProcessPoolExecutor(os.cpu_count())
        row['settings'] = 'ProcessPoolExecutor(%d).map(f, range(N), chunksize=%d)' % (
            os.cpu_count(), cs)
        run = lambda: pool.map(func, range(n), chunksize=cs)  # noqa: E731
    else:
        sys.exit('unknown impl ' + args.impl)
    # The pool's start-up is part of the time, as it is for fastmap.
    t0, c0 = time.monotonic(), cpu_self()
    if pool is not None:
        with pool:
            total = sum(run())
    else:
        total = sum(run())
    wall = time.monotonic() - t0
    row.update(wall=wall, tasks_per_s=n / wall, caller_cpu=cpu_self() - c0)
    if total != sum(x * x for x in range(n)):
        row['error'] = 'wrong results'
    emit(**row)


# ---- B3: CPU-bound scaling -----------------------------------------------

def calibrate(ms):
    steps = 1000
    while True:
        t0 = time.thread_time()
        bench_funcs.cpu_task(steps)
        dt = time.thread_time() - t0
        if dt > 0.05:
            return int(steps * ms / 1e3 / dt)
        steps *= 4


def b3(args):
    steps = calibrate(args.ms)
    m, reps = args.n, args.reps
    fast_map, why = load_fastmap() if args.impl == 'fastmap' else (None, None)
    if args.impl == 'fastmap' and fast_map is None:
        return emit(bench='B3', impl='fastmap', unavailable=why)
    seq = min(timed(lambda: [bench_funcs.cpu_task(steps) for _ in range(m)]) for _ in range(reps))
    for p in range(1, os.cpu_count() + 1):
        if args.impl == 'fastmap':
            run = lambda: list(fast_map(bench_funcs.cpu_task, [steps] * m,  # noqa: E731
                                        threads_limit=p))
            settings = 'FastMap.fast_map(f, tasks, threads_limit=%d)' % p
        else:
            import multiprocessing

            def run():
                with multiprocessing.Pool(p) as pool:
                    return list(pool.imap(bench_funcs.cpu_task, [steps] * m, chunksize=1))
            settings = 'Pool(%d).imap(f, tasks, chunksize=1)' % p
        best = min(timed(run) for _ in range(reps))
        emit(bench='B3', impl=args.impl, cores=p, n=m, task_ms=seq / m * 1e3,
             sequential=seq, wall=best, speedup=seq / best, settings=settings)


def timed(f):
    t0 = time.monotonic()
    f()
    return time.monotonic() - t0


# ---- B4: memory with an endless source -------------------------------------

def b4(args):
    k = args.n
    row = dict(bench='B4', impl=args.impl, n=k)
    rss_start = peak_rss_kib()
    t0 = time.monotonic()
    if args.impl == 'fastmap':
        fast_map, why = load_fastmap()
        if fast_map is None:
            return emit(unavailable=why, **row)
        rss_start = peak_rss_kib()
        t0 = time.monotonic()
        row['settings'] = 'FastMap.fast_map(f, itertools.count()), K results taken'
        it = fast_map(bench_funcs.square, itertools.count())
        for _ in itertools.islice(it, k):
            pass
    elif args.impl == 'imap':
        # Pool.imap reads its whole input ahead of the workers: an endless
        # one would fill memory, so this row is given K tasks, not endless.
        import multiprocessing
        row['settings'] = 'Pool(%d).imap(f, range(K), chunksize=1000): finite input' % (
            os.cpu_count())
        with multiprocessing.Pool(os.cpu_count()) as pool:
            for _ in pool.imap(bench_funcs.square, range(k), chunksize=1000):
                pass
    else:
        sys.exit('unknown impl ' + args.impl)
    row.update(wall=time.monotonic() - t0, rss_at_start_kib=rss_start,
               peak_rss_kib=peak_rss_kib())
    emit(**row)
    sys.stdout.flush()
    os._exit(0)  # do not wait for an endless map to wind down


# ---- B5: latency to the first result -------------------------------------

def b5(args):
    reps = args.reps
    if args.impl == 'interpreter':
        # The floor: the interpreter's own start-up, and with gi and FastMap.
        # (subprocess is imported here only: a script that calls fast_map()
        # need not import it, and B1's first map would find it loaded.)
        import subprocess
        for what, code in (('python3 -c pass', 'pass'),
                           ('python3 -c "import gi; FastMap"',
                            "import gi; gi.require_version('FastMap', '1.0');"
                            "from gi.repository import FastMap")):
            t = []
            for _ in range(reps + 1):
                t0 = time.monotonic()
                rc = subprocess.call([sys.executable, '-c', code],
                                     stderr=subprocess.DEVNULL)
                t.append(time.monotonic() - t0)
            row = dict(bench='B5', impl='interpreter', mode=what, reps=reps,
                       median=statistics.median(t[1:]), min=min(t[1:]))
            if rc != 0:
                row['unavailable'] = 'exit status %d' % rc
            emit(**row)
        return
    if args.impl in ('fastmap', 'fastmap-spawn', 'fastmap-threaded'):
        fast_map, why = load_fastmap()
        if fast_map is None:
            return emit(bench='B5', impl=args.impl, unavailable=why)
        # The default forks the workers from this process; 'spawn' starts
        # an interpreter each, as every worker did before the fifth session.
        # 'threaded': the default in a caller that runs another thread (a
        # GUI, a server), which must not fork: its workers come from the
        # fork server that its first map (left out below) started.
        kwargs = {'start_method': 'spawn'} if args.impl == 'fastmap-spawn' else {}
        if args.impl == 'fastmap-threaded':
            import threading
            threading.Thread(target=threading.Event().wait, daemon=True).start()

        def first():
            it = fast_map(bench_funcs.trivial, [7], **kwargs)
            next(iter(it))
            return it
    elif args.impl == 'imap':
        import multiprocessing

        def first():
            pool = multiprocessing.Pool(os.cpu_count())
            next(pool.imap(bench_funcs.trivial, [7]))
            return pool
    elif args.impl == 'ppe':
        from concurrent.futures import ProcessPoolExecutor

        def first():
            ex = ProcessPoolExecutor(os.cpu_count())
            next(ex.map(bench_funcs.trivial, [7]))
            return ex
    else:
        sys.exit('unknown impl ' + args.impl)
    t = []
    for _ in range(reps + 1):
        t0 = time.monotonic()
        keep = first()
        t.append(time.monotonic() - t0)
        for end in ('terminate', 'shutdown', 'close'):
            if hasattr(keep, end):
                getattr(keep, end)()
                break
        del keep
    emit(bench='B5', impl=args.impl, reps=reps, median=statistics.median(t[1:]), min=min(t[1:]))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('bench', choices=['b1', 'b2', 'b3', 'b4', 'b5'])
    ap.add_argument('impl')
    ap.add_argument('--n', type=int, default=8)
    ap.add_argument('--loops', type=int, default=100000)
    ap.add_argument('--max-procs', type=int, default=0,
                    help='B1: cap on the process count of the process pools (0: one per task)')
    ap.add_argument('--chunksize', type=int, default=1000)
    ap.add_argument('--ms', type=float, default=10)
    ap.add_argument('--reps', type=int, default=3)
    args = ap.parse_args()
    globals()[args.bench](args)


if __name__ == '__main__':
    main()
