#!/usr/bin/python3
"""Writes the seed corpus of fuzz-frame into corpus/ beside this script.

Each seed is one flags byte (bit 0: the other byte order) and then a
stream of frames as fm-wire.h lays them out: good frames of each kind,
and the bad ones the tests know. Run it again after a change of the
frame format; the files are committed.

    /usr/bin/python3 tests/fuzz/make-corpus.py
"""
import os
import struct
import sys

from gi.repository import GLib

MAGIC = 0x50414D46
VERSION = 1
LE = 1234
CONFIG, HELLO, TASKS, RESULTS, ERROR = 1, 2, 3, 4, 5


def frame(kind, payload, size=None):
    size = len(payload) if size is None else size
    return struct.pack('<IB3x', size, kind) + payload


def greeting(magic=MAGIC, version=VERSION, order=LE, extra=0, pid=None):
    p = struct.pack('<IIII', magic, version, order, extra)
    if pid is not None:
        p += struct.pack('<q', pid)
    return p


def batch(type_string, values, indexes=None, count=None, credit=8):
    indexes = list(range(len(values))) if indexes is None else indexes
    count = len(indexes) if count is None else count
    t = type_string.encode()
    pad = (-len(t)) % 8
    array = GLib.Variant('a' + type_string, values)
    data = array.get_data_as_bytes().get_data()
    return (struct.pack('<IIII', count, len(t), credit, 0)
            + b''.join(struct.pack('<Q', i) for i in indexes)
            + t + b'\0' * pad + data)


def error(index, domain, code, message, traceback=''):
    v = GLib.Variant('(tsiss)', (index, domain, code, message, traceback))
    return v.get_data_as_bytes().get_data()


def seeds():
    hello = frame(HELLO, greeting(pid=1234))
    yield 'config', frame(CONFIG, greeting(extra=4))
    yield 'hello', hello
    yield 'hello-results', hello + frame(RESULTS, batch('x', [0, 1, 4, 9]))
    yield 'results-strings', hello + frame(RESULTS, batch('s', ['a', 'bc', '']))
    yield 'results-tuples', frame(RESULTS, batch('(xu)', [(1, 2), (3, 4)]))
    yield 'results-variants', frame(RESULTS, batch('v', [GLib.Variant('i', 1), GLib.Variant('s', 'x')]))
    yield 'results-nested', frame(RESULTS, batch('a{sv}', [{'k': GLib.Variant('ay', b'xyz')}]))
    yield 'results-bytes', frame(RESULTS, batch('ay', [b'\0\1\2', b'']))
    yield 'tasks', frame(TASKS, batch('x', [5, 6], indexes=[7, 8]))
    yield 'error', hello + frame(ERROR, error(3, 'g-io-error-quark', 1, 'boom'))
    yield 'error-traceback', frame(ERROR, error(3, '', 0, 'boom', 'Traceback:\n  here'))
    yield 'error-then-results', (frame(ERROR, error(0, 'x', 1, 'm'))
                                 + frame(RESULTS, batch('x', [1], indexes=[1])))
    yield 'count-mismatch', frame(RESULTS, batch('x', [1], indexes=[0, 1]))
    yield 'bad-type', frame(RESULTS, batch('x', [1])[:16 + 8] + b'(\0\0\0\0\0\0\0' + b'\0' * 8)
    yield 'truncated-header', b'\x40\0\0\0\4'
    yield 'truncated-frame', frame(RESULTS, b'\1\0\0\0\1\0\0\0' + b'\0' * 12, size=100)
    yield 'oversized', frame(RESULTS, b'', size=64 * 1024 * 1024 + 1)
    yield 'garbage-length', frame(RESULTS, b'', size=0xFFFFFFFF)
    yield 'unknown-kind', frame(0x7F, b'\0' * 8)
    yield 'bad-hello', frame(HELLO, greeting(magic=0xDEADBEEF, pid=1))
    yield 'big-endian-hello', frame(HELLO, greeting(order=4321, pid=1))
    yield 'empty-frames', frame(RESULTS, b'') + frame(ERROR, b'') + frame(HELLO, b'')


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'corpus')
    os.makedirs(out, exist_ok=True)
    n = 0
    for name, stream in seeds():
        for flags in (0, 1):
            with open(os.path.join(out, f'{name}-{flags}'), 'wb') as f:
                f.write(bytes([flags]) + stream)
            n += 1
    print(f'{n} seeds in {out}', file=sys.stderr)


if __name__ == '__main__':
    main()
