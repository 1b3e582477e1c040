/* bench-waits.c: number tasks that wait, in bulk, from C
 *
 *   bench-waits N WAIT_MS [WINDOW]
 *
 * N tasks, 0 .. N - 1, given as one `ax` with fm_map_push_array(), each
 * of which sleeps WAIT_MS milliseconds and gives its number back; the
 * results taken with fm_map_next_array(). The defaults otherwise
 * (threads-limit 0: a thread per task in flight); WINDOW is
 * #FmMapper:max-in-flight (default 0: the library's default). This is the
 * shape of bulk that must not widen the default window as tiny tasks do
 * (bottleneck 35 in docs/benchmarks.md). Prints the wall time, and the
 * workers' threads and resident memory at their peak, summed over the
 * workers, from /proc every 20 ms.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "bench-common.h"

/* Sleeps for what FM_BENCH_WAIT_MS says, which the workers inherit. */
static GVariant *
wait_ms (GVariant *task, gpointer user_data, GError **error)
{
  g_usleep (g_ascii_strtoull (g_getenv ("FM_BENCH_WAIT_MS"), NULL, 10) * 1000);
  return g_variant_ref (task);
}

typedef struct
{
  FmMap    *map;
  gint      done;         /* atomic */
  guint64   peak_threads;
  guint64   peak_rss_kib;
} Sampler;

static guint64
status_field (GPid        pid,
              const char *name)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/status", (int) pid);
  g_autofree char *status = NULL;
  const char *p;

  if (pid <= 0 || !g_file_get_contents (path, &status, NULL, NULL) ||
      (p = strstr (status, name)) == NULL)
    return 0;
  return g_ascii_strtoull (p + strlen (name), NULL, 10);
}

static gpointer
sample (gpointer data)
{
  Sampler *s = data;

  while (!g_atomic_int_get (&s->done))
    {
      guint64 threads = 0, rss = 0;

      for (guint w = 0; w < fm_map_get_n_workers (s->map); w++)
        {
          GPid pid = fm_map_get_worker_pid (s->map, w);

          threads += status_field (pid, "Threads:");
          rss += status_field (pid, "VmRSS:");
        }
      s->peak_threads = MAX (s->peak_threads, threads);
      s->peak_rss_kib = MAX (s->peak_rss_kib, rss);
      g_usleep (20 * 1000);
    }
  return NULL;
}

int
main (int argc, char **argv)
{
  g_autoptr(FmMapper) mapper = NULL;
  g_autoptr(FmMap) map = NULL;
  g_autofree gint64 *tasks = NULL;
  guint64 n, window, failed, n_results = 0;
  g_autofree char *ms_text = NULL;
  guint ms;
  Sampler s = { 0 };
  GThread *sampler;
  double t0, wall;

  fm_init (&argc, &argv);
  if (argc < 3)
    {
      g_printerr ("usage: bench-waits N WAIT_MS [WINDOW]\n");
      return 2;
    }
  n = g_ascii_strtoull (argv[1], NULL, 10);
  ms = (guint) g_ascii_strtoull (argv[2], NULL, 10);
  ms_text = g_strdup_printf ("%u", ms);
  g_setenv ("FM_BENCH_WAIT_MS", ms_text, TRUE);
  window = argc > 3 ? g_ascii_strtoull (argv[3], NULL, 10) : 0;

  tasks = g_new (gint64, n);
  for (guint64 i = 0; i < n; i++)
    tasks[i] = (gint64) i;

  t0 = bench_now ();
  mapper = fm_mapper_new_for_function (wait_ms);
  if (window > 0)
    fm_mapper_set_max_in_flight (mapper, (guint) window);
  map = fm_mapper_map (mapper, NULL);
  s.map = map;
  sampler = g_thread_new ("sampler", sample, &s);
  fm_map_push_array (map, g_variant_new_fixed_array (G_VARIANT_TYPE_INT64, tasks, n,
                                                     sizeof (gint64)));
  fm_map_close (map);
  failed = 0;
  for (;;)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GVariant) array = NULL;
      guint64 first;

      array = fm_map_next_array (map, &first, &error);
      if (array == NULL && error == NULL)
        break;
      if (array == NULL)
        failed++;
      else
        n_results += g_variant_n_children (array);
    }
  wall = bench_now () - t0;
  g_atomic_int_set (&s.done, 1);
  g_thread_join (sampler);

  printf ("{\"bench\": \"waits\", \"impl\": \"fastmap-c\", \"n\": %" G_GUINT64_FORMAT
          ", \"wait_ms\": %u, \"max_in_flight\": %" G_GUINT64_FORMAT ", \"wall\": %.3f"
          ", \"results\": %" G_GUINT64_FORMAT ", \"failed\": %" G_GUINT64_FORMAT
          ", \"workers_peak_threads\": %" G_GUINT64_FORMAT
          ", \"workers_peak_rss_kib\": %" G_GUINT64_FORMAT "}\n",
          n, ms, window, wall, n_results, failed, s.peak_threads, s.peak_rss_kib);
  return n_results + failed == n ? 0 : 1;
}
