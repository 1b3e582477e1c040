#!/usr/bin/python3
# run.py: runs the benchmark suite of docs/benchmarks.md (B1 to B6).
#
#   /usr/bin/python3 bench/run.py [--quick] [--builddir DIR] [--only B1,B2,...]
#
# Builds fastmap with the benchmark programs (release, in DIR, by default
# build/bench at the top of the tree), runs every row side by side in this
# one run, each in a fresh process under a timeout, and writes
# bench/results.md (the tables, the machine, the targets), bench/results.png
# (the plot) and bench/results.json (every raw measurement). Figures are
# ratios between rows of the same run: the machines are shared and noisy.
# No benchmark is a timed test; nothing here fails on a slow result.
#
# --quick: B1 at N = 8, 32 with 10^5 loops, B2 at 2 x 10^5 tasks, B4 at 10^5
# and 10^6 results, fewer repeats: a few minutes.
#
# SPDX-License-Identifier: LGPL-2.1-or-later
import argparse
import datetime
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
PEERS = os.path.join(HERE, 'peers.py')
PY = '/usr/bin/python3' if os.path.exists('/usr/bin/python3') else sys.executable


def log(*a, end='\n'):
    print(*a, file=sys.stderr, end=end, flush=True)


# ---- running one row -------------------------------------------------------

class Runner:
    def __init__(self, builddir, env):
        self.builddir = builddir
        self.env = env
        self.rows = []

    def run(self, argv, timeout, label, **expect):
        """Runs @argv in a session of its own; returns its JSON rows, or one
        row saying it timed out or failed. On time-out the whole process
        group it started is killed (process pools leave children)."""
        log('  %-58s' % label[:58], end='')
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=self.env, start_new_session=True, text=True)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
            row = dict(expect, timeout=timeout)
            log('> %d s timeout' % timeout)
            self.rows.append(row)
            return [row]
        finally:
            # Whatever the row left behind in its group (pool workers).
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        rows = []
        for line in out.splitlines():
            line = line.strip()
            if line.startswith('{'):
                rows.append(json.loads(line))
        if not rows:
            rows = [dict(expect, error='exit status %d: %s' % (p.returncode, err.strip()[-300:]))]
            p.returncode = 0
        for r in rows:
            for k, v in expect.items():
                r.setdefault(k, v)
        if p.returncode != 0 and rows:
            for r in rows:
                r.setdefault('error', 'exit status %d: %s' % (p.returncode, err.strip()[-200:]))
        log('%6.1f s%s' % (time.monotonic() - t0,
                           '  (%s)' % rows[0].get('unavailable', rows[0].get('error'))
                           if ('unavailable' in rows[0] or 'error' in rows[0]) else ''))
        self.rows.extend(rows)
        return rows

    def c(self, prog, *args, timeout, label, **expect):
        return self.run([os.path.join(self.builddir, 'bench', prog)] + [str(a) for a in args],
                        timeout, label, **expect)

    def py(self, *args, timeout, label, **expect):
        return self.run([PY, PEERS] + [str(a) for a in args], timeout, label, **expect)


# ---- the suite -------------------------------------------------------------

def suite_b1(r, quick):
    cores = os.cpu_count()
    sizes = [8, 32] if quick else [8, 32, 128, 512, 2048]
    for loops in ([100000] if quick else [100000, 1000000]):
        for n in sizes:
            # A bound on each row: four times the ideal time of a Python call
            # of ~20 ns per loop step, at least 60 s.
            bound = int(min(600, max(60, 4 * (1 + n * loops * 25e-9 / cores))))
            base = dict(bench='B1', n=n, loops=loops)
            r.c('bench-seed', n, loops, timeout=bound, label='B1 fastmap C   N=%d loops=%d' % (n, loops),
                impl='fastmap-c', **base)
            for impl in ('fastmap', 'fastmap-2x', 'ppe', 'tpe', 'imap', 'floor'):
                r.py('b1', impl, '--n', n, '--loops', loops, timeout=bound,
                     label='B1 %-12s N=%d loops=%d' % (impl, n, loops), impl=impl, **base)


def suite_b2(r, quick):
    n = 200000 if quick else 1000000
    base = dict(bench='B2', n=n)
    r.c('bench-tiny', 'inline', n, timeout=120, label='B2 inline C (floor)', impl='inline-c', **base)
    for mode in ('source', 'push', 'array', 'bulk'):
        for threads in (0, os.cpu_count()):
            r.c('bench-tiny', mode, n, 10000, threads, timeout=120,
                label='B2 fastmap C %s threads-limit=%d' % (mode, threads),
                impl='fastmap-c', mode=mode, threads_limit=threads, **base)
    # Tiny tasks in bulk at a window set to 65536: what the default widens
    # to for numbers taken in bulk since the eleventh session (8192 tasks in
    # flight drained while the consumer waited for a core: docs/benchmarks.md,
    # B2, bottleneck 34).
    r.c('bench-tiny', 'bulk', n, 10000, 0, 65536, timeout=120,
        label='B2 fastmap C bulk threads-limit=0 max-in-flight=65536',
        impl='fastmap-c', mode='bulk', threads_limit=0, **base)
    # One GVariant per task pushed, the results taken in bulk: what the
    # per-task push costs once the results cost nothing.
    r.c('bench-tiny', 'push-bulk', n, 10000, 0, timeout=120,
        label='B2 fastmap C push-bulk threads-limit=0',
        impl='fastmap-c', mode='push-bulk', threads_limit=0, **base)
    r.py('b2', 'fastmap', '--n', n, timeout=120, label='B2 fastmap Python', impl='fastmap', **base)
    for cs in ([1000, 10000] if quick else [100, 1000, 10000, 100000]):
        r.py('b2', 'imap', '--n', n, '--chunksize', cs, timeout=120,
             label='B2 Pool.imap chunksize=%d' % cs, impl='imap', chunksize=cs, **base)
    for cs in ([1000, 10000] if quick else [1000, 10000, 100000]):
        r.py('b2', 'ppe', '--n', n, '--chunksize', cs, timeout=120,
             label='B2 ProcessPoolExecutor chunksize=%d' % cs, impl='ppe', chunksize=cs, **base)


def suite_b3(r, quick):
    m, reps = (60, 1) if quick else (200, 3)
    r.c('bench-scaling', m, 10, reps, timeout=300, label='B3 fastmap C', bench='B3', impl='fastmap-c')
    r.py('b3', 'fastmap', '--n', m, '--reps', reps, timeout=300, label='B3 fastmap Python',
         bench='B3', impl='fastmap')
    r.py('b3', 'imap', '--n', m, '--reps', reps, timeout=300, label='B3 Pool.imap',
         bench='B3', impl='imap')


def suite_b4(r, quick):
    for k in ([100000, 1000000] if quick else [1000000, 10000000]):
        t = 120 if quick else 600
        r.c('bench-memory', k, timeout=t, label='B4 fastmap C K=%d' % k,
            bench='B4', impl='fastmap-c', n=k)
        r.py('b4', 'fastmap', '--n', k, timeout=t, label='B4 fastmap Python K=%d' % k,
             bench='B4', impl='fastmap', n=k)
        r.py('b4', 'imap', '--n', k, timeout=t, label='B4 Pool.imap (finite) K=%d' % k,
             bench='B4', impl='imap', n=k)


def suite_b5(r, quick):
    reps = 10 if quick else 30
    module = os.path.join(r.builddir, 'bench', 'fm-bench-module.so')
    r.c('bench-latency', reps, module, timeout=120, label='B5 fastmap C', bench='B5', impl='fastmap-c')
    for impl in ('fastmap', 'fastmap-threaded', 'fastmap-spawn', 'interpreter', 'imap', 'ppe'):
        r.py('b5', impl, '--reps', reps, timeout=120, label='B5 ' + impl, bench='B5', impl=impl)


class LoopbackSshd:
    """An sshd of B6's own on 127.0.0.1, a free port, keys made for the run
    (as tests/test-remote.c does); stopped by stop(), and killed with this
    program in any case (it is in the same session: run() kills groups)."""

    def __init__(self):
        import shutil
        import socket
        import tempfile
        self.proc = None
        self.why = None
        if not os.path.exists('/usr/sbin/sshd') or not shutil.which('ssh'):
            self.why = 'openssh-server is not installed'
            return
        self.dir = tempfile.mkdtemp(prefix='fm-bench-sshd-')
        with socket.socket() as sock:
            sock.bind(('127.0.0.1', 0))
            self.port = sock.getsockname()[1]
        d = self.dir
        for key in ('host_key', 'client_key'):
            subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', os.path.join(d, key)],
                           check=True, stdout=subprocess.DEVNULL)
        shutil.copy(os.path.join(d, 'client_key.pub'), os.path.join(d, 'authorized_keys'))
        with open(os.path.join(d, 'sshd_config'), 'w') as f:
            f.write('ListenAddress 127.0.0.1\nPort %d\nHostKey %s/host_key\n'
                    'AuthorizedKeysFile %s/authorized_keys\nPasswordAuthentication no\n'
                    'KbdInteractiveAuthentication no\nStrictModes no\nUsePAM no\n'
                    'PidFile %s/sshd.pid\nPermitRootLogin prohibit-password\n'
                    'MaxStartups 100\nMaxSessions 100\n' % (self.port, d, d, d))
        os.makedirs('/run/sshd', exist_ok=True)
        self.proc = subprocess.Popen(['/usr/sbin/sshd', '-D', '-e', '-f', os.path.join(d, 'sshd_config'),
                                      '-E', os.path.join(d, 'sshd.log')])
        for _ in range(500):
            try:
                socket.create_connection(('127.0.0.1', self.port), 0.1).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.01)
        self.why = 'sshd did not start'
        self.stop()

    def launcher(self):
        return ['ssh', '-F', '/dev/null', '-T', '-p', str(self.port), '-i',
                os.path.join(self.dir, 'client_key'), '-o', 'IdentitiesOnly=yes',
                '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no',
                '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR']

    def stop(self):
        import shutil
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait()
            self.proc = None
        if getattr(self, 'dir', None):
            shutil.rmtree(self.dir, ignore_errors=True)


def suite_b6(r, quick):
    """The seed's workload with its two workers over ssh to this machine,
    against the same run with local workers (B1's fastmap C row)."""
    sshd = LoopbackSshd()
    try:
        for n in [8, 32]:
            base = dict(bench='B6', n=n, loops=100000)
            if sshd.why:
                r.rows.append(dict(base, impl='fastmap-c-ssh', unavailable=sshd.why))
                continue
            for _ in range(1 if quick else 3):
                # bench-seed calls its local rows B1: these are B6's.
                for row in r.c('bench-seed', n, 100000, timeout=120,
                               label='B6 fastmap C local  N=%d' % n, **base):
                    row.update(bench='B6', impl='fastmap-c-local')
                r.c('bench-seed', n, 100000, '2/127.0.0.1', *sshd.launcher(), timeout=120,
                    label='B6 fastmap C ssh    N=%d' % n, impl='fastmap-c-ssh', **base)
    finally:
        sshd.stop()


SUITES = {'B1': suite_b1, 'B2': suite_b2, 'B3': suite_b3, 'B4': suite_b4, 'B5': suite_b5,
          'B6': suite_b6}


# ---- build and environment -------------------------------------------------

def build(builddir):
    if not os.path.exists(os.path.join(builddir, 'build.ninja')):
        subprocess.run(['meson', 'setup', builddir, TOP, '--buildtype=release',
                        '-Dbench=true', '-Dtests=false'], check=True, stdout=sys.stderr)
    subprocess.run(['ninja', '-C', builddir], check=True, stdout=sys.stderr)


def environment(builddir):
    env = dict(os.environ)
    lib = os.path.join(builddir, 'fastmap')

    def prepend(var, *paths):
        old = env.get(var)
        env[var] = os.pathsep.join(list(paths) + ([old] if old else []))
    prepend('LD_LIBRARY_PATH', lib)
    prepend('GI_TYPELIB_PATH', lib)
    prepend('PYTHONPATH', os.path.join(builddir, 'introspection'),
            os.path.join(TOP, 'introspection'), HERE)
    env['FASTMAP_WORKER_HELPER'] = os.path.join(lib, 'fastmap-worker')
    # Bytecode as an installed Python package has it, and as Python keeps
    # it for a module it imports, in the build dir rather than the source
    # tree. An environment that sets PYTHONDONTWRITEBYTECODE (this one
    # does; a user's rarely does) would have every run compile the
    # overrides (2.8 ms for _fastmap_worker.py) and a forked worker's
    # main script again, which the peers' stdlib modules never pay.
    env.pop('PYTHONDONTWRITEBYTECODE', None)
    env['PYTHONPYCACHEPREFIX'] = os.path.join(builddir, 'pycache')
    return env


def compile_python(env):
    """The bytecode of the overrides and of bench/, before any row runs."""
    subprocess.run([sys.executable, '-m', 'compileall', '-q',
                    os.path.join(TOP, 'introspection'), HERE],
                   check=True, env=env, stdout=sys.stderr)


def machine(env):
    def sh(*argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True, env=env).stdout.strip()
        except OSError:
            return ''
    lscpu = dict(line.split(':', 1) for line in sh('lscpu').splitlines() if ':' in line)
    mem_kib = 0
    with open('/proc/meminfo') as f:
        for line in f:
            if line.startswith('MemTotal:'):
                mem_kib = int(line.split()[1])
    os_name = ''
    if os.path.exists('/etc/os-release'):
        with open('/etc/os-release') as f:
            for line in f:
                if line.startswith('PRETTY_NAME='):
                    os_name = line.split('=', 1)[1].strip().strip('"')
    return {
        'CPU': lscpu.get('Model name', platform.processor()).strip(),
        'Cores': '%d (%s)' % (os.cpu_count(),
                             (lscpu.get('Hypervisor vendor', '').strip() + ' guest')
                             if 'Hypervisor vendor' in lscpu else 'bare metal'),
        'Memory': '%.1f GiB' % (mem_kib / 2 ** 20),
        'OS': os_name,
        'Kernel': platform.release(),
        'GLib': sh('pkg-config', '--modversion', 'glib-2.0'),
        'Python': sh(PY, '-c', 'import sys, gi; print(sys.version.split()[0], "/ PyGObject", gi.__version__)'),
        'Compiler': sh('cc', '--version').splitlines()[0] if sh('cc', '--version') else '',
        'fastmap': sh('git', '-C', TOP, 'describe', '--always', '--dirty'),
        'Date': datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z'),
    }


# ---- the report ------------------------------------------------------------

def ok(r):
    return r is not None and 'timeout' not in r and 'error' not in r and 'unavailable' not in r


def why(r):
    if r is None:
        return 'not run'
    if 'timeout' in r:
        return '> %d s (timeout)' % r['timeout']
    if 'unavailable' in r:
        return 'not available'
    return 'failed'


def find(rows, **kw):
    out = [r for r in rows if all(r.get(k) == v for k, v in kw.items())]
    return out[0] if out else None


def pct(x):
    return '%.1f %%' % (100 * x)


def t_star(call_cpu, n, cores, sleep=1.0):
    return sleep + n * call_cpu / cores


B1_IMPLS = [('fastmap-c', 'fastmap C'), ('fastmap', 'fastmap Python'),
            ('fastmap-2x', 'fastmap Python, 2 processes a core'),
            ('ppe', 'ProcessPoolExecutor'), ('tpe', 'ThreadPoolExecutor'), ('imap', 'Pool.imap'),
            ('floor', 'Python threads alone (floor)')]
# Rows that are no peer of fastmap's: a floor to compare with, not to beat.
FLOORS = ('floor',)
# fastmap's rows: the targets are its defaults'; the others are no peers.
FASTMAP_B1 = ('fastmap-c', 'fastmap', 'fastmap-2x')


def call_cpus(rows, loops):
    """One call's CPU time, measured in this run: C's from bench-seed, Python's
    the median of what every Python row measured before it ran."""
    c = [r['call_cpu'] for r in rows if r.get('bench') == 'B1' and r.get('loops') == loops
         and r.get('impl') == 'fastmap-c' and 'call_cpu' in r]
    p = [r['call_cpu'] for r in rows if r.get('bench') == 'B1' and r.get('loops') == loops
         and r.get('impl') != 'fastmap-c' and 'call_cpu' in r]
    return (statistics.median(c) if c else None, statistics.median(p) if p else None)


def report_b1(rows, cores, md, checks):
    for loops in sorted({r['loops'] for r in rows if r.get('bench') == 'B1'}):
        c_call, p_call = call_cpus(rows, loops)
        md.append('\n### B1, the seed\'s workload: sleep 1 s, then %s loop steps\n' %
                  ('10^5' if loops == 100000 else '10^6'))
        md.append('One call\'s CPU time, measured in this run: C %s, Python %s. '
                  'T* = 1 s + N × call / %d cores, for each language. A cell is the wall time, '
                  'its ratio to its own language\'s T*, and the caller\'s CPU time as a share '
                  'of the wall time.\n' % (
                      '%.3f ms' % (c_call * 1e3) if c_call else '?',
                      '%.3f ms' % (p_call * 1e3) if p_call else '?', cores))
        md.append('| N | T* C | T* Python | ' + ' | '.join(name for _, name in B1_IMPLS) + ' |')
        md.append('|---:|---:|---:|' + '---|' * len(B1_IMPLS))
        for n in sorted({r['n'] for r in rows if r.get('bench') == 'B1' and r.get('loops') == loops}):
            ts_c = t_star(c_call, n, cores) if c_call else None
            ts_p = t_star(p_call, n, cores) if p_call else None
            cells = []
            walls = {}
            for impl, _ in B1_IMPLS:
                r = find(rows, bench='B1', loops=loops, n=n, impl=impl)
                ts = ts_c if impl == 'fastmap-c' else ts_p
                if not ok(r):
                    cells.append(why(r))
                    continue
                walls[impl] = r['wall']
                cells.append('%.2f s (%.2f×, cpu %s)' % (r['wall'], r['wall'] / ts,
                                                         pct(r['caller_cpu'] / r['wall'])))
                if impl in ('fastmap-c', 'fastmap'):
                    checks.append(('B1 %s N=%d loops=%d within 1.10 × T*' % (impl, n, loops),
                                   r['wall'] / ts <= 1.10, '%.3f × T*' % (r['wall'] / ts)))
            for impl in ('fastmap-c', 'fastmap'):
                if impl in walls:
                    others = {k: v for k, v in walls.items()
                              if k not in FASTMAP_B1 + FLOORS}
                    if others:
                        best = min(others, key=others.get)
                        checks.append(('B1 %s N=%d loops=%d faster than every peer' % (impl, n, loops),
                                       walls[impl] < others[best],
                                       '%.2f s vs %s %.2f s' % (walls[impl], best, others[best])))
            md.append('| %d | %s | %s | %s |' % (n, '%.2f s' % ts_c if ts_c else '?',
                                                '%.2f s' % ts_p if ts_p else '?', ' | '.join(cells)))
    settings = {}
    for r in rows:
        if r.get('bench') == 'B1' and 'settings' in r:
            settings.setdefault(r['impl'], r['settings'].replace(str(r['n']), 'N')
                                if r['impl'] != 'fastmap-c' else r['settings'])
    if settings:
        md.append('\nSettings (each at its best for this workload: one process, or thread, per task '
                  'for the pools, so that every wait overlaps):\n')
        for impl, name in B1_IMPLS:
            if impl in settings:
                md.append('- %s: `%s`' % (name, settings[impl]))


def b2_name(r):
    if r['impl'] == 'inline-c':
        return 'C, no map: make, call, take apart in one thread (floor)'
    if r['impl'] == 'fastmap-c':
        how = {'source': 'fm_map_set_source()', 'push': 'fm_map_push() from a thread',
               'array': 'fm_map_push_array() of %d' % r.get('chunk', 10000),
               'bulk': 'fm_map_push_array() of %d, fm_map_next_array()' % r.get('chunk', 10000),
               'push-bulk': 'fm_map_push() from a thread, fm_map_next_array()',
               }[r['mode']]
        return 'fastmap C, %s, threads-limit=%d%s' % (
            how, r.get('threads_limit', 0),
            ', max-in-flight=%d' % r['max_in_flight'] if r.get('max_in_flight') else '')
    if r['impl'] == 'fastmap':
        return 'fastmap Python, `FastMap.fast_map(f, range(N))`'
    return '`%s`' % r.get('settings', r['impl'])


def report_b2(rows, md, checks):
    b2 = [r for r in rows if r.get('bench') == 'B2']
    if not b2:
        return
    imaps = [r for r in b2 if r['impl'] == 'imap' and ok(r)]
    best_imap = max(imaps, key=lambda r: r['tasks_per_s']) if imaps else None
    md.append('\n### B2, tiny tasks (int → int, %d of them)\n' % b2[0]['n'])
    md.append('Tasks per second end to end, pool start-up included; the ratio is to Pool.imap at '
              'its best chunksize in this run%s. CPU: the caller\'s own, and the workers\' '
              '(fastmap C only, from /proc), per task.\n' % (
                  ' (%d)' % best_imap['chunksize'] if best_imap else ''))
    md.append('| row | tasks/s | × Pool.imap best | caller CPU / task | workers CPU / task |')
    md.append('|---|---:|---:|---:|---:|')
    for r in b2:
        if not ok(r):
            md.append('| %s | %s | | | |' % (b2_name(r), why(r)))
            continue
        ratio = r['tasks_per_s'] / best_imap['tasks_per_s'] if best_imap else None
        md.append('| %s | %s | %s | %s | %s |' % (
            b2_name(r), '{:,.0f}'.format(r['tasks_per_s']),
            '%.2f' % ratio if ratio else '', '%.0f ns' % (r['caller_cpu'] / r['n'] * 1e9),
            '%.0f ns' % (r['workers_cpu'] / r['n'] * 1e9) if 'workers_cpu' in r else ''))
    if best_imap:
        def best(**kw):
            c = [r for r in b2 if ok(r) and all(r.get(k) in (v if isinstance(v, tuple) else (v,))
                                                for k, v in kw.items())]
            return max(c, key=lambda r: r['tasks_per_s']) if c else None
        for label, r, need in (('B2 fastmap C one GVariant per task ≥ 1.0 × Pool.imap best',
                                best(impl='fastmap-c', mode=('push', 'push-bulk'), threads_limit=0),
                                1.0),
                               ('B2 fastmap C fm_map_push_array, fm_map_next ≥ 1.3 × Pool.imap best',
                                best(impl='fastmap-c', mode='array', threads_limit=0), 1.3),
                               ('B2 fastmap C fm_map_push_array, fm_map_next_array ≥ 1.3 × '
                                'Pool.imap best',
                                best(impl='fastmap-c', mode='bulk', threads_limit=0), 1.3),
                               ('B2 fastmap Python ≥ 1.0 × Pool.imap best',
                                best(impl='fastmap'), 1.0)):
            if r is None:
                checks.append((label, None, 'not available'))
            else:
                x = r['tasks_per_s'] / best_imap['tasks_per_s']
                checks.append((label, x >= need, '%.2f ×%s' % (
                    x, ' (max-in-flight=%d)' % r['max_in_flight'] if r.get('max_in_flight') else '')))


def report_b3(rows, md, checks):
    b3 = [r for r in rows if r.get('bench') == 'B3']
    if not b3:
        return
    md.append('\n### B3, CPU-bound scaling (tasks of ~10 ms of pure computation)\n')
    md.append('Speed-up over a sequential loop in one process of the same language, best of the '
              'repeats in this run.\n')
    md.append('| row | task | tasks | cores | sequential | mapped | speed-up |')
    md.append('|---|---:|---:|---:|---:|---:|---:|')
    name = {'fastmap-c': 'fastmap C', 'fastmap': 'fastmap Python', 'imap': 'Pool.imap'}
    for r in b3:
        if not ok(r):
            md.append('| %s | %s | | | | | |' % (name.get(r['impl'], r['impl']), why(r)))
            continue
        md.append('| %s | %.1f ms | %d | %d | %.2f s | %.2f s | %.2f × |' % (
            name.get(r['impl'], r['impl']), r['task_ms'], r['n'], r['cores'], r['sequential'],
            r['wall'], r['speedup']))
        if r['cores'] == 2 and r['impl'] in ('fastmap-c', 'fastmap'):
            checks.append(('B3 %s ≥ 1.9 × on 2 cores' % name[r['impl']], r['speedup'] >= 1.9,
                           '%.2f ×' % r['speedup']))


def report_b4(rows, md, checks):
    b4 = [r for r in rows if r.get('bench') == 'B4']
    if not b4:
        return
    md.append('\n### B4, memory: an endless source of tiny tasks\n')
    md.append('The caller\'s peak RSS (VmHWM) after taking K results. Pool.imap reads its input '
              'ahead without bound, so it is given a finite range(K) instead (an endless one would '
              'fill memory).\n')
    md.append('| row | K | peak RSS | RSS at start | time | results/s |')
    md.append('|---|---:|---:|---:|---:|---:|')
    name = {'fastmap-c': 'fastmap C', 'fastmap': 'fastmap Python', 'imap': 'Pool.imap (finite)'}
    for r in b4:
        if not ok(r):
            md.append('| %s | %d | %s | | | |' % (name.get(r['impl'], r['impl']), r['n'], why(r)))
            continue
        md.append('| %s | %d | %.1f MiB | %.1f MiB | %.1f s | %s |' % (
            name[r['impl']], r['n'], r['peak_rss_kib'] / 1024, r['rss_at_start_kib'] / 1024,
            r['wall'], '{:,.0f}'.format(r['n'] / r['wall'])))
    for impl in ('fastmap-c', 'fastmap'):
        rs = sorted([r for r in b4 if r['impl'] == impl and ok(r)], key=lambda r: r['n'])
        if len(rs) == 2:
            g = rs[1]['peak_rss_kib'] / rs[0]['peak_rss_kib']
            checks.append(('B4 %s peak RSS at K=%d within 10 %% of K=%d' % (name[impl], rs[1]['n'], rs[0]['n']),
                           g <= 1.10, '%.3f ×' % g))
        if impl == 'fastmap-c' and rs:
            checks.append(('B4 fastmap C peak RSS < 32 MiB', rs[-1]['peak_rss_kib'] < 32 * 1024,
                           '%.1f MiB' % (rs[-1]['peak_rss_kib'] / 1024)))
        elif len(rs) < 2:
            checks.append(('B4 %s peak RSS flat' % name[impl], None, 'not measured'))


def report_b5(rows, md, checks):
    b5 = [r for r in rows if r.get('bench') == 'B5']
    if not b5:
        return
    md.append('\n### B5, latency: from creating the map to the first result of a trivial task\n')
    md.append('Fresh workers each time; median and minimum of the repeats.\n')
    md.append('| row | median | min |')
    md.append('|---|---:|---:|')
    name = {('fastmap-c', 'spawn'): 'floor: spawn this C program and wait for it (no fastmap)',
            ('fastmap-c', 'reexec'): 'fastmap C, `fm_mapper_new_for_function()` (re-exec)',
            ('fastmap-c', 'module'): 'fastmap C, `fm_mapper_new_for_module()` (fastmap-worker)',
            ('fastmap', None): 'fastmap Python, `FastMap.fast_map(f, [7])` (workers forked)',
            ('fastmap-threaded', None): 'fastmap Python, `FastMap.fast_map(f, [7])` beside another thread (fork server)',
            ('fastmap-spawn', None): 'fastmap Python, `fast_map(f, [7], start_method="spawn")`',
            ('imap', None): '`Pool(2).imap(f, [7])`',
            ('ppe', None): '`ProcessPoolExecutor(2).map(f, [7])`'}
    for r in b5:
        label = name.get((r['impl'], r.get('mode')), 'floor: `%s`' % r.get('mode', r['impl']))
        if not ok(r):
            md.append('| %s | %s | |' % (label, why(r)))
            continue
        md.append('| %s | %.1f ms | %.1f ms |' % (label, r['median'] * 1e3, r['min'] * 1e3))
        if r['impl'] == 'fastmap-c' and r.get('mode') in ('reexec', 'module'):
            checks.append(('B5 fastmap C %s ≤ 10 ms' % r['mode'], r['median'] <= 0.010,
                           '%.1f ms' % (r['median'] * 1e3)))
    py = find(b5, impl='fastmap')
    interp = find(b5, impl='interpreter', mode='python3 -c pass')
    if ok(py) and ok(interp):
        checks.append(('B5 fastmap Python vs interpreter start-up (stated, no target)', None,
                       '%.1f ms vs %.1f ms' % (py['median'] * 1e3, interp['median'] * 1e3)))


def report_b6(rows, md, checks):
    b6 = [r for r in rows if r.get('bench') == 'B6']
    if not b6:
        return
    md.append('\n### B6, across machines: the seed\'s workload over ssh to this machine\n')
    md.append('Sleep 1 s then 10^5 loop steps, N tasks, two workers either here or over ssh to '
              'an sshd on 127.0.0.1 (`hosts="2/127.0.0.1"`): what the ssh hop costs, connection '
              'set-up and stream included. Median of the runs; the ratio is ssh / local.\n')
    md.append('| N | local | over ssh | ssh / local |')
    md.append('|---:|---:|---:|---:|')
    for n in sorted({r['n'] for r in b6}):
        walls = {}
        for impl in ('fastmap-c-local', 'fastmap-c-ssh'):
            w = [r['wall'] for r in b6 if r['n'] == n and r['impl'] == impl and ok(r)]
            walls[impl] = statistics.median(w) if w else None
        loc, ssh = walls['fastmap-c-local'], walls['fastmap-c-ssh']
        if loc is None or ssh is None:
            bad = [r for r in b6 if r['n'] == n and not ok(r)]
            md.append('| %d | %s | %s | |' % (n, '%.2f s' % loc if loc else '', why(bad[0]) if bad else ''))
            continue
        md.append('| %d | %.2f s | %.2f s | %.2f × |' % (n, loc, ssh, ssh / loc))
        checks.append(('B6 fastmap C over ssh N=%d (stated, no target)' % n, None,
                       '%.2f × local' % (ssh / loc)))


def write_report(rows, info, args, path):
    cores = os.cpu_count()
    md = ['# fastmap benchmarks: results', '',
          'Written by `%s` (%s mode). Every figure below comes from this one run, rows side by '
          'side; compare ratios, not absolute times, across runs.' % (
              ' '.join(['/usr/bin/python3', 'bench/run.py'] + (['--quick'] if args.quick else [])),
              'quick' if args.quick else 'full'),
          '', '| machine | |', '|---|---|']
    md += ['| %s | %s |' % (k, v) for k, v in info.items()]
    checks = []
    report_b1(rows, cores, md, checks)
    report_b2(rows, md, checks)
    report_b3(rows, md, checks)
    report_b4(rows, md, checks)
    report_b5(rows, md, checks)
    report_b6(rows, md, checks)
    md.append('\n### The targets of issue 5, checked against this run\n')
    md.append('| target | met | measured |')
    md.append('|---|:-:|---|')
    for label, met, val in checks:
        md.append('| %s | %s | %s |' % (label, {True: 'yes', False: '**no**', None: '–'}[met], val))
    md.append('\n![results](results.png)\n')
    with open(path, 'w') as f:
        f.write('\n'.join(md) + '\n')


# ---- the plot --------------------------------------------------------------

def plot(rows, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    cores = os.cpu_count()
    fig, axes = plt.subplots(2, 3, figsize=(17, 9.5))
    loops_all = sorted({r['loops'] for r in rows if r.get('bench') == 'B1'})
    for ax, loops in zip(axes[0][:2], loops_all + [None] * (2 - len(loops_all))):
        if loops is None:
            ax.axis('off')
            continue
        c_call, p_call = call_cpus(rows, loops)
        ns = sorted({r['n'] for r in rows if r.get('bench') == 'B1' and r.get('loops') == loops})
        for impl, name in B1_IMPLS:
            pts = [(n, find(rows, bench='B1', loops=loops, n=n, impl=impl)) for n in ns]
            pts = [(n, r['wall']) for n, r in pts if ok(r)]
            if pts:
                ax.plot(*zip(*pts), marker='o', label=name)
        if p_call:
            ax.plot(ns, [t_star(p_call, n, cores) for n in ns], 'k--', label='T* (Python call)')
        if c_call:
            ax.plot(ns, [t_star(c_call, n, cores) for n in ns], 'k:', label='T* (C call)')
        ax.set_xscale('log', base=2)
        ax.set_yscale('log')
        ax.set_xlabel('tasks N')
        ax.set_ylabel('wall time (s)')
        ax.set_title('B1: sleep 1 s + %s loop steps' % ('10^5' if loops == 100000 else '10^6'))
        ax.legend(fontsize=7)

    ax = axes[0][2]
    b2 = [r for r in rows if r.get('bench') == 'B2' and ok(r)]
    if b2:
        labels = [b2_name(r).replace('`', '').replace('fastmap C, ', 'C ')
                  .replace('fastmap Python, ', 'Py ')[:48] for r in b2]
        vals = [r['tasks_per_s'] / 1e6 for r in b2]
        colors = ['tab:blue' if r['impl'].startswith('fastmap') else
                  'tab:gray' if r['impl'] == 'inline-c' else 'tab:orange' for r in b2]
        ax.barh(range(len(b2)), vals, color=colors)
        ax.set_yticks(range(len(b2)))
        ax.set_yticklabels(labels, fontsize=6)
        ax.invert_yaxis()
        ax.set_xlabel('million tasks / s')
        ax.set_title('B2: tiny tasks, %d' % b2[0]['n'])

    ax = axes[1][0]
    b3 = [r for r in rows if r.get('bench') == 'B3' and ok(r)]
    for impl, name in (('fastmap-c', 'fastmap C'), ('fastmap', 'fastmap Python'), ('imap', 'Pool.imap')):
        pts = [(r['cores'], r['speedup']) for r in b3 if r['impl'] == impl]
        if pts:
            ax.plot(*zip(*pts), marker='o', label=name)
    ax.plot([1, cores], [1, cores], 'k--', label='ideal')
    ax.set_xlabel('cores')
    ax.set_ylabel('speed-up over a loop')
    ax.set_title('B3: CPU-bound scaling, ~10 ms tasks')
    ax.legend(fontsize=7)

    ax = axes[1][1]
    b4 = [r for r in rows if r.get('bench') == 'B4' and ok(r)]
    if b4:
        labels = ['%s K=%.0e' % (r['impl'], r['n']) for r in b4]
        ax.bar(range(len(b4)), [r['peak_rss_kib'] / 1024 for r in b4],
               color=['tab:blue' if r['impl'].startswith('fastmap') else 'tab:orange' for r in b4])
        ax.set_xticks(range(len(b4)))
        ax.set_xticklabels(labels, fontsize=7, rotation=30)
        ax.axhline(32, color='k', ls='--', lw=0.8)
        ax.set_ylabel('caller peak RSS (MiB)')
        ax.set_title('B4: memory, endless source')

    ax = axes[1][2]
    b5 = [r for r in rows if r.get('bench') == 'B5' and ok(r)]
    if b5:
        labels = [(r['impl'] + (' ' + r['mode'] if 'mode' in r else ''))[:30] for r in b5]
        ax.barh(range(len(b5)), [r['median'] * 1e3 for r in b5],
                color=['lightsteelblue' if r['impl'] == 'fastmap-spawn'
                       else 'tab:blue' if r['impl'].startswith('fastmap') and r.get('mode') != 'spawn'
                       else 'tab:gray' if r['impl'] == 'interpreter' or r.get('mode') == 'spawn'
                       else 'tab:orange' for r in b5])
        ax.set_yticks(range(len(b5)))
        ax.set_yticklabels(labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel('ms to the first result (median)')
        ax.set_title('B5: latency')

    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    ap = argparse.ArgumentParser(description='Runs the fastmap benchmark suite (docs/benchmarks.md).')
    ap.add_argument('--quick', action='store_true', help='a smaller run of a few minutes')
    ap.add_argument('--builddir', default=os.path.join(TOP, 'build', 'bench'),
                    help='the meson build directory to use (made, release, if missing)')
    ap.add_argument('--only', default='B1,B2,B3,B4,B5,B6', help='comma-separated benchmarks to run')
    ap.add_argument('--out', default=HERE, help='where results.{md,png,json} go')
    ap.add_argument('--report-only', action='store_true',
                    help='rewrite results.md and results.png from results.json')
    args = ap.parse_args()
    builddir = os.path.abspath(args.builddir)
    out_json = os.path.join(args.out, 'results.json')

    env = environment(builddir)
    if args.report_only:
        with open(out_json) as f:
            saved = json.load(f)
        rows, info = saved['rows'], saved['machine']
        args.quick = saved.get('quick', False)
    else:
        build(builddir)
        compile_python(env)
        info = machine(env)
        r = Runner(builddir, env)
        for name in args.only.split(','):
            log(name)
            SUITES[name.strip().upper()](r, args.quick)
        rows = r.rows
        with open(out_json, 'w') as f:
            json.dump({'machine': info, 'quick': args.quick, 'rows': rows}, f, indent=1)
    write_report(rows, info, args, os.path.join(args.out, 'results.md'))
    plot(rows, os.path.join(args.out, 'results.png'))
    log('wrote %s, results.png, results.json' % os.path.join(args.out, 'results.md'))


if __name__ == '__main__':
    main()
