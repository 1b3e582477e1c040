/* tiny-tasks.c: a million tasks of a few nanoseconds each, in bulk
 *
 * One GVariant per task and per result would cost more than the tasks
 * themselves. Here the tasks go in as arrays of numbers with
 * fm_map_push_array() (one GVariant per 10 000 tasks), and the results
 * come out with fm_map_next_array(): every result that is ready, as one
 * `ax` with the index of its first. Tiny tasks and results that are all
 * numbers, taken that way, widen the default window from 8192 tasks in
 * flight to 65536, which keeps the workers fed. Each result is checked;
 * the program fails if one is wrong or missing.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <fastmap.h>

#define N     1000000
#define CHUNK 10000

static GVariant *
square (GVariant  *task,
        gpointer   user_data,
        GError   **error)
{
  gint64 x = g_variant_get_int64 (task);

  return g_variant_new_int64 (x * x);
}

/* Pushes the tasks 0 .. N - 1 in arrays of CHUNK, from its own thread,
 * while the main thread takes the results. */
static gpointer
producer (gpointer data)
{
  FmMap *map = data;
  g_autofree gint64 *numbers = g_new (gint64, CHUNK);

  for (gint64 i = 0; i < N; i += CHUNK)
    {
      for (gint64 k = 0; k < CHUNK; k++)
        numbers[k] = i + k;
      fm_map_push_array (map, g_variant_new_fixed_array (G_VARIANT_TYPE_INT64, numbers,
                                                         CHUNK, sizeof (gint64)));
    }
  fm_map_close (map);
  return NULL;
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(FmMapper) mapper = NULL;
  g_autoptr(FmMap) map = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GThread) thread = NULL;
  GVariant *results;
  guint64 first, taken = 0, arrays = 0, wrong = 0;
  gint64 start;

  /* In the worker copies of this program, this serves square() and
   * never returns. */
  fm_init (&argc, &argv);

  start = g_get_monotonic_time ();
  mapper = fm_mapper_new_for_function (square);
  map = fm_mapper_map (mapper, NULL);
  thread = g_thread_new ("producer", producer, map);

  while ((results = fm_map_next_array (map, &first, &error)) != NULL)
    {
      gsize n;
      const gint64 *squares = g_variant_get_fixed_array (results, &n, sizeof (gint64));

      for (gsize k = 0; k < n; k++)
        wrong += first + k != taken + k || squares[k] != (gint64) ((first + k) * (first + k));
      taken += n;
      arrays++;
      g_variant_unref (results);
    }
  g_thread_join (g_steal_pointer (&thread));
  if (error != NULL)
    {
      g_printerr ("task %" G_GUINT64_FORMAT " failed: %s\n", first, error->message);
      return 1;
    }

  g_print ("%" G_GUINT64_FORMAT " results in %" G_GUINT64_FORMAT " arrays over %u worker"
           " processes, %.0f tasks/s, %" G_GUINT64_FORMAT " wrong\n",
           taken, arrays, fm_map_get_n_workers (map),
           taken / ((g_get_monotonic_time () - start) / 1e6), wrong);
  return taken == N && wrong == 0 ? 0 : 1;
}
