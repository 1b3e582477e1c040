// basic-usage.js: the original fast_map's example, in gjs
//
//     gjs -m examples/basic-usage.js
//
// The program is its own worker: the parent starts copies of itself with
// `--worker`, which serve the function with FastMap.worker_serve_async().
// gjs runs JavaScript in its main thread only, so a gjs worker runs one
// task at a time: the parent starts one worker per task here, and the
// eight one-second waits overlap (a C, Python or Vala worker runs many
// tasks at once on its thread pool).
//
// SPDX-License-Identifier: LGPL-2.1-or-later

import GLib from 'gi://GLib';
import System from 'system';
import FastMap from '../introspection/fastmap.js';

function ioAndCpuExpensiveFunction(task) {
    const x = task.get_int64();
    GLib.usleep(GLib.USEC_PER_SEC);
    let sink = 0;
    for (let i = 0; i < 10 ** 5; i++)
        sink += i;
    return new GLib.Variant('x', x * x);
}

const loop = new GLib.MainLoop(null, false);
const self = GLib.filename_from_uri(import.meta.url)[0];

async function worker() {
    await FastMap.worker_serve_async(ioAndCpuExpensiveFunction, null);
}

async function parent() {
    const start = GLib.get_monotonic_time();
    const mapper = new FastMap.Mapper({argv: ['gjs', '-m', self, '--worker'], n_processes: 8});
    const map = mapper.map(null);
    for (let i = 0; i < 8; i++)
        map.push(new GLib.Variant('x', i));
    map.close();

    for await (const value of map) {
        const elapsed = (GLib.get_monotonic_time() - start) / 1e6;
        print(`${elapsed.toFixed(3)} s  ${value.get_int64()}`);
    }
    print(`all done in ${((GLib.get_monotonic_time() - start) / 1e6).toFixed(3)} s (a plain loop takes 8 s)`);
}

let status = 0;
(ARGV.includes('--worker') ? worker() : parent()).catch(e => {
    printerr(e.message);
    status = 1;
}).finally(() => loop.quit());
loop.run();
System.exit(status);
