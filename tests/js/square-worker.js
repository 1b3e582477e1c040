// square-worker.js: a gjs program that is a fastmap worker
//
// Serves x -> x * x on GVariants of type "x"; the JS function runs in
// this program's main context (FastMap.worker_serve_async).
//
// SPDX-License-Identifier: LGPL-2.1-or-later

import GLib from 'gi://GLib';
import System from 'system';
import FastMap from '../../introspection/fastmap.js';

const loop = new GLib.MainLoop(null, false);
let status = 0;

FastMap.worker_serve_async(task => {
    const x = task.get_int64();
    return new GLib.Variant('x', x * x);
}, null).then(() => loop.quit()).catch(e => {
    printerr(`square-worker.js: ${e.message}`);
    status = 1;
    loop.quit();
});
loop.run();
System.exit(status);
