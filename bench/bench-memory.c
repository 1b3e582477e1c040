/* bench-memory.c: B4, memory with an endless source, from C
 *
 *   bench-memory K
 *
 * An endless source of tiny tasks (int -> int), pulled lazily; the caller
 * takes K results, then drops the map. Prints this process's peak RSS
 * (getrusage's ru_maxrss), which must not grow with K.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "bench-common.h"

static GVariant *
square (GVariant *task, gpointer user_data, GError **error)
{
  gint64 x = g_variant_get_int64 (task);

  return g_variant_new_int64 (x * x);
}

static GVariant *
endless (gpointer user_data, GError **error)
{
  gint64 *next = user_data;

  return g_variant_new_int64 ((*next)++);
}

int
main (int argc, char **argv)
{
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(FmMapper) mapper = NULL;
  g_autoptr(FmMap) map = NULL;
  g_autoptr(GError) error = NULL;
  guint64 k, taken = 0, index;
  gint64 next = 0;
  long rss_start;
  double t0, wall;

  fm_init (&argc, &argv);
  k = bench_arg_u64 (argc, argv, 1, 1000000);

  t0 = bench_now ();
  mapper = fm_mapper_new_for_function (square);
  map = fm_mapper_map (mapper, cancellable);
  fm_map_set_source (map, endless, &next, NULL);
  rss_start = bench_peak_rss_kib ();
  while (taken < k)
    {
      GVariant *result = fm_map_next (map, &index, &error);

      if (result == NULL)
        {
          g_printerr ("result %" G_GUINT64_FORMAT ": %s\n", taken,
                      error ? error->message : "the endless source ended");
          return 1;
        }
      g_variant_unref (result);
      taken++;
    }
  wall = bench_now () - t0;
  printf ("{\"bench\": \"B4\", \"impl\": \"fastmap-c\", \"n\": %" G_GUINT64_FORMAT
          ", \"peak_rss_kib\": %ld, \"rss_at_start_kib\": %ld, \"pulled\": %" G_GINT64_FORMAT
          ", \"wall\": %.6f}\n", k, bench_peak_rss_kib (), rss_start, next, wall);
  fflush (stdout);
  g_cancellable_cancel (cancellable);
  return 0;
}
