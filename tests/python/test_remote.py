# test_remote.py: fast_map(hosts=...), through a launcher that clears the
# environment as ssh does, so that the worker finds this uninstalled build
# only through what fastmap passes on. (tests/test-remote.c runs a real
# sshd; this checks the Python side without one.)
#
# SPDX-License-Identifier: LGPL-2.1-or-later
import os

import pytest

from fmhelpers import wait_no_children
from gi.repository import FastMap

# Runs its last argument with sh, in an empty environment, like
# `ssh host command` on a host that knows nothing of this build. The host
# name, the argument before, is ignored.
CLEAN_LAUNCHER = ['env', '-i', 'PATH=/usr/bin:/bin', 'sh', '-c', 'exec sh -c "$2"', 'fake-ssh']


def square_and_env(x):
    return x * x, os.environ.get('FM_TEST_REMOTE_VAR'), 'PYTHONPATH' in os.environ


def fail_on_three(x):
    if x == 3:
        raise ValueError('three over "ssh"')
    return x


def test_results_and_environment_through_a_launcher(monkeypatch):
    monkeypatch.setenv('FM_TEST_REMOTE_VAR', "it's $HOME")
    results = list(FastMap.fast_map(square_and_env, range(50), hosts='2/fakehost,1/:',
                                    launcher=CLEAN_LAUNCHER,
                                    forward_env=['FM_TEST_REMOTE_VAR']))
    assert [r[0] for r in results] == [x * x for x in range(50)]
    assert all(r[1] == "it's $HOME" for r in results)
    assert all(r[2] for r in results)
    assert wait_no_children() == []


def test_exceptions_come_back_from_another_host():
    gen = FastMap.fast_map(fail_on_three, range(6), hosts='1/fakehost', launcher=CLEAN_LAUNCHER)
    assert [next(gen) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(ValueError, match='three over "ssh"'):
        next(gen)


def test_a_host_that_cannot_be_reached_loses_nothing():
    launcher = ['sh', '-c', 'case "$1" in bad*) echo "no route to $1" >&2; exit 255;; esac; '
                'exec sh -c "$2"', 'fake-ssh']
    assert list(FastMap.fast_map(square_and_env, range(20), hosts='1/badhost,1/goodhost',
                                 launcher=launcher)) == [(x * x, None, True) for x in range(20)]


def test_bad_arguments():
    with pytest.raises(TypeError):
        FastMap.fast_map(square_and_env, range(3), hosts=['node1'])
    with pytest.raises(TypeError):
        FastMap.fast_map(square_and_env, range(3), hosts='node1', launcher='ssh')
