/* basic-usage.c: the original fast_map's example, in C
 *
 * Eight tasks that each wait one second and then compute (a loop of
 * 10^5 steps), mapped over one worker process per core. All eight waits
 * overlap, so the results come in about one second, each printed as it
 * arrives; a plain loop takes eight.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <fastmap.h>

static GVariant *
io_and_cpu_expensive_function (GVariant  *task,
                               gpointer   user_data,
                               GError   **error)
{
  gint64 x = g_variant_get_int64 (task);
  volatile guint64 sink = 0;

  g_usleep (G_USEC_PER_SEC);
  for (guint i = 0; i < 100000; i++)
    sink += i;
  return g_variant_new_int64 (x * x);
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(FmMapper) mapper = NULL;
  g_autoptr(FmMap) map = NULL;
  g_autoptr(GError) error = NULL;
  gint64 start;
  GVariant *result;
  guint64 index;

  /* In the worker copies of this program, this serves the function and
   * never returns. */
  fm_init (&argc, &argv);

  start = g_get_monotonic_time ();
  mapper = fm_mapper_new_for_function (io_and_cpu_expensive_function);
  map = fm_mapper_map (mapper, NULL);
  for (gint64 i = 0; i < 8; i++)
    fm_map_push (map, g_variant_new_int64 (i));
  fm_map_close (map);

  g_print ("8 tasks over %u worker processes\n", fm_map_get_n_workers (map));
  while ((result = fm_map_next (map, &index, &error)) != NULL || error != NULL)
    {
      double elapsed = (g_get_monotonic_time () - start) / 1e6;

      if (result != NULL)
        g_print ("%5.3f s  task %" G_GUINT64_FORMAT ": %" G_GINT64_FORMAT "\n",
                 elapsed, index, g_variant_get_int64 (result));
      else
        g_print ("%5.3f s  task %" G_GUINT64_FORMAT " failed: %s\n",
                 elapsed, index, error->message);
      g_clear_pointer (&result, g_variant_unref);
      g_clear_error (&error);
    }

  g_print ("all done in %.3f s (a plain loop takes 8 s)\n",
           (g_get_monotonic_time () - start) / 1e6);
  return 0;
}
