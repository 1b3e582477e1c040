/* basic-usage.vala: the original fast_map's example, in Vala
 *
 * Eight tasks that each wait one second and then compute, mapped over
 * one worker process per core. The program is its own worker:
 * FastMap.init() turns the re-executed copies into workers that serve
 * io_and_cpu_expensive_function() on their thread pools, so all eight
 * waits overlap and the results come in about one second.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

static Variant? io_and_cpu_expensive_function (Variant task, void* user_data) throws Error {
    int64 x = task.get_int64 ();
    uint64 sink = 0;

    Thread.usleep (1000000);
    for (uint i = 0; i < 100000; i++)
        sink += i;
    return new Variant.int64 (x * x);
}

/* 0 when every result came, in order: the example doubles as a test. */
static int status = 1;

static async void run (MainLoop loop) {
    uint64 n_results = 0;

    int64 start = get_monotonic_time ();
    var mapper = new FastMap.Mapper.for_function (io_and_cpu_expensive_function);
    var map = mapper.map ();

    for (int64 i = 0; i < 8; i++)
        map.push (new Variant.int64 (i));
    map.close ();
    print ("8 tasks over %u worker processes\n", map.get_n_workers ());

    while (true) {
        uint64 index;
        try {
            Variant? result = yield map.next_async (null, out index);
            if (result == null) {
                if (n_results == 8)
                    status = 0;
                break;
            }
            if (index != n_results || result.get_int64 () != (int64) (index * index))
                break;
            n_results++;
            print ("%5.3f s  task %llu: %lld\n", (get_monotonic_time () - start) / 1e6,
                   index, result.get_int64 ());
        } catch (FastMap.Error e) {
            printerr ("fastmap failed: %s\n", e.message);
            break;
        } catch (Error e) {
            printerr ("a task failed: %s\n", e.message);
        }
    }
    print ("all done in %.3f s (a plain loop takes 8 s)\n", (get_monotonic_time () - start) / 1e6);
    loop.quit ();
}

int main (string[] args) {
    /* In the worker copies of this program, this serves the function and
     * never returns. */
    FastMap.init (ref args);

    var loop = new MainLoop ();
    run.begin (loop);
    loop.run ();
    return status;
}
