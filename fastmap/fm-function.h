/* fm-function.h: the callback types
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#if !defined(FASTMAP_INSIDE) && !defined(FASTMAP_COMPILATION)
# error "Only <fastmap.h> can be included directly."
#endif

#include <glib.h>

G_BEGIN_DECLS

/**
 * FmFunction:
 * @task: the task, a non-floating #GVariant owned by fastmap
 * @user_data: (closure): the data given with the function
 * @error: return location for the task's error
 *
 * The function that fastmap maps over the tasks. It runs in a worker
 * process, on one of the threads of that worker's #GThreadPool, so it
 * must be safe to call from several threads at once.
 *
 * A function that fails returns %NULL and sets @error: the task then
 * fails at its index with that error, domain and code kept, and the run
 * goes on.
 *
 * Returns: (transfer full) (nullable): the result, which may be floating,
 *   or %NULL with @error set
 */
typedef GVariant *(*FmFunction) (GVariant  *task,
                                 gpointer   user_data,
                                 GError   **error);

/**
 * FmBytesFunction:
 * @task: (array length=task_len): the task's bytes, owned by fastmap and
 *   valid until the function returns
 * @task_len: their number
 * @user_data: (closure): the data given with the function
 * @error: return location for the task's error
 *
 * An #FmFunction over bytes, for language bindings that carry their own
 * values as bytes (Python's override pickles them): fm_worker_serve_bytes()
 * calls it with the bytes of a task of type `ay`, and its result is the
 * bytes of a result of type `ay`. It runs as an #FmFunction does, in a
 * worker process, on the threads of its #GThreadPool, several at once:
 * it must be safe to call from several threads.
 *
 * In a binding, the bytes in and out are the language's own (a Python
 * `bytes`): the function makes no call into GLib to read its task or to
 * make its result. In Python each such call releases the interpreter's
 * lock and takes it back, and taking it back while other threads
 * compute waits up to the switch interval (5 ms by default) each time.
 *
 * Returns: (transfer full) (nullable): the result's bytes, which fastmap
 *   takes (and frees), or %NULL with @error set
 */
typedef GByteArray *(*FmBytesFunction) (const guint8  *task,
                                        gsize          task_len,
                                        gpointer       user_data,
                                        GError       **error);

/**
 * FmSourceFunc:
 * @user_data: (closure): the data given with the function
 * @error: return location for an error
 *
 * Gives the next task of a map fed lazily (see fm_map_set_source()).
 * fastmap calls it from the consumer's side: from the thread that calls
 * fm_map_next(), from the thread-default main context of the caller of
 * fm_map_next_async(), or from the main context the map was created in
 * when results are taken as signals. It is called only while the map
 * has room for another task, so an endless source runs in bounded
 * memory.
 *
 * Returns: (transfer full) (nullable): the next task (it may be
 *   floating), or %NULL at the end of the input. %NULL with @error set
 *   ends the map with that error.
 */
typedef GVariant *(*FmSourceFunc) (gpointer   user_data,
                                   GError   **error);

G_END_DECLS
