// fastmap.js: FastMap for gjs, beyond what the GIR gives
//
// SPDX-License-Identifier: LGPL-2.1-or-later
//
//     import FastMap from '/usr/share/fastmap-1.0/gjs/fastmap.js';
//
//     for await (const value of mapper.map(null))
//         print(value.get_int64());
//
// - FastMap.Map is an async iterable of its results (GLib.Variant), taken
//   with next_async() in the thread-default main context of the loop's
//   caller; a task that failed rejects with its GLib.Error, which ends a
//   `for await` loop (call next_async() again to go on past it).
// - map.next_async(cancellable) without a callback returns a Promise of
//   [value, index], and map.next_array_async(cancellable) one of
//   [array, first index].
// - FastMap.worker_serve_async(func, cancellable) without a callback
//   returns a Promise: a gjs program serves a JS function as a worker,
//   called in its main context (gjs cannot run JS on the pool's threads).

import FastMap from 'gi://FastMap?version=1.0';
import Gio from 'gi://Gio';

Gio._promisify(FastMap.Map.prototype, 'next_async', 'next_finish');
Gio._promisify(FastMap.Map.prototype, 'next_array_async', 'next_array_finish');
Gio._promisify(FastMap, 'worker_serve_async', 'worker_serve_finish');

FastMap.Map.prototype[Symbol.asyncIterator] = async function* () {
    for (;;) {
        // eslint-disable-next-line no-await-in-loop
        const [value] = await this.next_async(null);
        if (value === null)
            return;
        yield value;
    }
};

export default FastMap;
