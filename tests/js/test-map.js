// test-map.js: FastMap from gjs
//
// Exceptions inside callbacks would be swallowed: everything is collected
// and checked after the loops. Prints TAP.
//
// SPDX-License-Identifier: LGPL-2.1-or-later

import GLib from 'gi://GLib';
import System from 'system';
import FastMap from '../../introspection/fastmap.js';

const here = GLib.path_get_dirname(GLib.filename_from_uri(import.meta.url)[0]);
const cWorker = [GLib.getenv('FM_TEST_WORKER'), 'square'];
const jsWorker = ['gjs', '-m', `${here}/square-worker.js`];

let n = 0;
let failed = 0;
function ok(cond, name) {
    n++;
    if (!cond)
        failed++;
    print(`${cond ? 'ok' : 'not ok'} ${n} - ${name}`);
}

function pushedMap(argv, count) {
    const mapper = new FastMap.Mapper({argv});
    const map = mapper.map(null);
    for (let i = 0; i < count; i++)
        map.push(new GLib.Variant('x', i));
    map.close();
    return map;
}

const expected = k => Array.from({length: k}, (_, i) => i * i).join(',');

async function forAwaitInOrder(argv, what) {
    const got = [];
    for await (const value of pushedMap(argv, 50))
        got.push(value.get_int64());
    ok(got.join(',') === expected(50), `for await gives the results in order (${what})`);
}

async function nextAsyncGivesIndexes() {
    const map = pushedMap(cWorker, 3);
    const got = [];
    for (;;) {
        // eslint-disable-next-line no-await-in-loop
        const [value, index] = await map.next_async(null);
        if (value === null)
            break;
        got.push(`${index}:${value.get_int64()}`);
    }
    ok(got.join(',') === '0:0,1:1,2:4', 'next_async() resolves to [value, index]');
}

async function errorDomain() {
    const map = pushedMap(['/nonexistent/fastmap-worker'], 1);
    let error = null;
    try {
        await map.next_async(null);
    } catch (e) {
        error = e;
    }
    ok(error !== null && error.matches(FastMap.Error, FastMap.Error.WORKER_FAILED),
        'a worker that cannot start rejects with FastMap.Error.WORKER_FAILED');
}

// A map of the C worker fed 0 .. count - 1 as one array.
function pushedArrayMap(count) {
    const map = new FastMap.Mapper({argv: cWorker}).map(null);
    map.push_array(new GLib.Variant('ax', Array.from({length: count}, (_, i) => i)));
    map.close();
    return map;
}

function nextArrayInBulk() {
    const map = pushedArrayMap(5000);
    const got = [];
    let inOrder = true;
    for (;;) {
        const [array, first] = map.next_array();
        if (array === null)
            break;
        inOrder = inOrder && first === got.length && array.get_type_string() === 'ax';
        got.push(...array.deepUnpack());
    }
    ok(inOrder && got.join(',') === expected(5000),
        'next_array() returns [array, first index], push_array() takes an array');
}

async function nextArrayAsync() {
    const map = pushedArrayMap(5000);
    const got = [];
    let inOrder = true;
    for (;;) {
        // eslint-disable-next-line no-await-in-loop
        const [array, first] = await map.next_array_async(null);
        if (array === null)
            break;
        inOrder = inOrder && first === got.length;
        got.push(...array.deepUnpack());
    }
    ok(inOrder && got.join(',') === expected(5000),
        'next_array_async() resolves to [array, first index]');
}

function signals() {
    const loop = new GLib.MainLoop(null, false);
    const results = [];
    let finished = 'not emitted';
    const map = pushedMap(cWorker, 20);
    map.connect('result', (_m, index, value) => results.push(`${index}:${value.get_int64()}`));
    map.connect('finished', (_m, error) => {
        finished = error;
        loop.quit();
    });
    loop.run();
    ok(results.length === 20 && results[19] === '19:361', 'result signals in order');
    ok(finished === null, 'finished without an error');
}

function properties() {
    const mapper = new FastMap.Mapper({argv: cWorker, threads_limit: 4, ordered: false});
    ok(mapper.threads_limit === 4 && mapper.ordered === false && mapper.n_processes === 0,
        'properties');
}

const loop = new GLib.MainLoop(null, false);
let crash = null;
(async () => {
    try {
        properties();
        await forAwaitInOrder(cWorker, 'C worker');
        await forAwaitInOrder(jsWorker, 'gjs worker');
        await nextAsyncGivesIndexes();
        await errorDomain();
        nextArrayInBulk();
        await nextArrayAsync();
        signals();
    } catch (e) {
        crash = e;
    }
    loop.quit();
})();
loop.run();
ok(crash === null, `no exception escaped${crash ? `: ${crash}\n${crash.stack}` : ''}`);
print(`1..${n}`);
System.exit(failed ? 1 : 0);
