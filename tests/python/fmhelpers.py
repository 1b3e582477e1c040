# fmhelpers.py: what the Python tests share
#
# SPDX-License-Identifier: LGPL-2.1-or-later
import os
import time

import gi

gi.require_version('FastMap', '1.0')


def is_fork_server(pid):
    """Whether @pid is fast_map()'s fork server, which a caller that ran
    threads keeps for its next runs (it ends with the caller)."""
    try:
        with open(f'/proc/{pid}/cmdline', 'rb') as f:
            return b'--fork-server' in f.read().split(b'\0')
    except OSError:
        return False


def children(pid=None):
    """The live (not zombie) child processes of @pid, this process by
    default, fast_map()'s fork server left out."""
    pid = os.getpid() if pid is None else pid
    found = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/stat') as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(')') + 2:].split()
        if int(fields[1]) == pid and fields[0] != 'Z' and not is_fork_server(entry):
            found.append(int(entry))
    return found


def wait_no_children(timeout=10.0):
    """Waits for the children to go: killed workers are reaped by GLib's
    worker thread. Returns those still there after @timeout."""
    deadline = time.monotonic() + timeout
    while children() and time.monotonic() < deadline:
        time.sleep(0.02)
    return children()
