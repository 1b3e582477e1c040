/* bench-tiny.c: B2, tiny tasks (int -> int), from C
 *
 *   bench-tiny MODE N [CHUNK] [THREADS] [WINDOW]
 *
 * MODE is how the tasks go in:
 *   source  fm_map_set_source(): pulled lazily in the consumer's thread
 *   push    fm_map_push(), one GVariant per task, from a producer thread
 *   array   fm_map_push_array(), CHUNK tasks per `ax` array, from a producer
 *           thread
 *   bulk    the same tasks as array, and the results taken with
 *           fm_map_next_array(), as many as are ready at a time
 *   push-bulk  the tasks of push, the results taken as in bulk
 *   inline  no map: make, call, take apart in this one thread (the floor of
 *           an API with one GVariant per task, on one core)
 * and prints tasks per second end to end (from the mapper's creation to
 * the last result taken), the caller's CPU time and the workers' CPU time
 * (from /proc, at the last result). THREADS is #FmMapper:threads-limit
 * (default 0, the seed's default: no limit), WINDOW #FmMapper:max-in-flight
 * (default 0: the library's default). With FM_BENCH_PRODUCER_NS set, the
 * producer of push and push-bulk spends that long (a busy loop on the
 * monotonic clock) before each task, as a producer that computes its tasks
 * does: one slower than the workers. With FM_BENCH_LINGER_MS set,
 * it waits that long after ending the workers, so that a profiler running
 * them (valgrind --trace-children=yes) can write their profiles.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "bench-common.h"

#include <unistd.h>

static GVariant *
square (GVariant *task, gpointer user_data, GError **error)
{
  gint64 x = g_variant_get_int64 (task);

  return g_variant_new_int64 (x * x);
}

typedef struct
{
  FmMap   *map;
  guint64  n;
  guint64  chunk;
  guint64  next;
  gint64   spin_ns;   /* the producer's time per task, FM_BENCH_PRODUCER_NS */
} Feed;

static gint64
now_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * G_GINT64_CONSTANT (1000000000) + ts.tv_nsec;
}

static GVariant *
feed_source (gpointer user_data, GError **error)
{
  Feed *f = user_data;

  if (f->next >= f->n)
    return NULL;
  return g_variant_new_int64 (f->next++);
}

static gpointer
feed_push (gpointer data)
{
  Feed *f = data;

  for (guint64 i = 0; i < f->n; i++)
    {
      if (f->spin_ns > 0)
        {
          gint64 t0 = now_ns ();

          while (now_ns () - t0 < f->spin_ns)
            ;
        }
      fm_map_push (f->map, g_variant_new_int64 (i));
    }
  fm_map_close (f->map);
  return NULL;
}

static gpointer
feed_push_array (gpointer data)
{
  Feed *f = data;
  g_autofree gint64 *buf = g_new (gint64, f->chunk);

  for (guint64 i = 0; i < f->n; i += f->chunk)
    {
      guint64 len = MIN (f->chunk, f->n - i);

      for (guint64 k = 0; k < len; k++)
        buf[k] = i + k;
      fm_map_push_array (f->map, g_variant_new_fixed_array (G_VARIANT_TYPE_INT64,
                                                            buf, len, sizeof (gint64)));
    }
  fm_map_close (f->map);
  return NULL;
}

/* utime + stime of @pid, in seconds, or -1. */
static double
proc_cpu (GPid pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/stat", (int) pid);
  g_autofree char *text = NULL;
  unsigned long ut, st;
  char *p;

  if (!g_file_get_contents (path, &text, NULL, NULL) || (p = strrchr (text, ')')) == NULL)
    return -1;
  /* After "pid (comm)": state is field 3, utime 14, stime 15. */
  if (sscanf (p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
    return -1;
  return (double) (ut + st) / sysconf (_SC_CLK_TCK);
}

static int
run_inline (guint64 n)
{
  double t0 = bench_now (), wall;
  gint64 sum = 0;

  for (guint64 i = 0; i < n; i++)
    {
      GVariant *task = g_variant_ref_sink (g_variant_new_int64 (i));
      GVariant *result = g_variant_ref_sink (square (task, NULL, NULL));

      sum += g_variant_get_int64 (result);
      g_variant_unref (result);
      g_variant_unref (task);
    }
  wall = bench_now () - t0;
  printf ("{\"bench\": \"B2\", \"impl\": \"inline-c\", \"mode\": \"inline\", \"n\": %"
          G_GUINT64_FORMAT ", \"wall\": %.6f, \"tasks_per_s\": %.1f, \"caller_cpu\": %.6f,"
          " \"checksum\": %" G_GINT64_FORMAT "}\n", n, wall, n / wall, wall, sum);
  return 0;
}

int
main (int argc, char **argv)
{
  g_autoptr(FmMapper) mapper = NULL;
  g_autoptr(FmMap) map = NULL;
  g_autoptr(GThread) producer = NULL;
  Feed feed = { 0 };
  const char *mode;
  gboolean producer_array, bulk_results;
  guint64 n, failed, n_results, threads, window;
  double t0, c0, wall, cpu, workers_cpu = 0;

  fm_init (&argc, &argv);

  mode = argc > 1 ? argv[1] : "source";
  n = bench_arg_u64 (argc, argv, 2, 1000000);
  feed.n = n;
  if (g_getenv ("FM_BENCH_PRODUCER_NS") != NULL)
    feed.spin_ns = g_ascii_strtoll (g_getenv ("FM_BENCH_PRODUCER_NS"), NULL, 10);
  feed.chunk = bench_arg_u64 (argc, argv, 3, 10000);
  threads = bench_arg_u64 (argc, argv, 4, 0);
  window = bench_arg_u64 (argc, argv, 5, 0);

  if (g_str_equal (mode, "inline"))
    return run_inline (n);
  producer_array = g_str_equal (mode, "array") || g_str_equal (mode, "bulk");
  bulk_results = g_str_equal (mode, "bulk") || g_str_equal (mode, "push-bulk");

  t0 = bench_now ();
  c0 = bench_cpu (RUSAGE_SELF);
  mapper = fm_mapper_new_for_function (square);
  fm_mapper_set_threads_limit (mapper, threads);
  fm_mapper_set_max_in_flight (mapper, window);
  map = fm_mapper_map (mapper, NULL);
  feed.map = map;
  if (g_str_equal (mode, "source"))
    fm_map_set_source (map, feed_source, &feed, NULL);
  else if (g_str_equal (mode, "push") || g_str_equal (mode, "push-bulk"))
    producer = g_thread_new ("producer", feed_push, &feed);
  else if (producer_array)
    producer = g_thread_new ("producer", feed_push_array, &feed);
  else
    {
      g_printerr ("unknown mode %s\n", mode);
      return 2;
    }

  failed = n_results = 0;
  if (bulk_results)
    {
      g_autoptr(GError) error = NULL;
      GVariant *results;
      guint64 first;

      while ((results = fm_map_next_array (map, &first, &error)) != NULL || error != NULL)
        {
          gsize len = 0;
          const gint64 *r = results != NULL
            ? g_variant_get_fixed_array (results, &len, sizeof (gint64)) : NULL;

          failed += results == NULL;
          for (gsize k = 0; k < len; k++)
            failed += r[k] != (gint64) ((first + k) * (first + k));
          if (n_results < n && n_results + MAX (len, 1) >= n)
            for (guint w = 0; w < fm_map_get_n_workers (map); w++)
              workers_cpu += proc_cpu (fm_map_get_worker_pid (map, w));
          n_results += MAX (len, 1);
          g_clear_pointer (&results, g_variant_unref);
          g_clear_error (&error);
        }
    }
  else
    {
      g_autoptr(GError) error = NULL;
      GVariant *result;
      guint64 index;

      while ((result = fm_map_next (map, &index, &error)) != NULL || error != NULL)
        {
          if (result == NULL)
            failed++;
          else if (g_variant_get_int64 (result) != (gint64) (index * index))
            failed++;
          if (++n_results == n)
            for (guint w = 0; w < fm_map_get_n_workers (map); w++)
              workers_cpu += proc_cpu (fm_map_get_worker_pid (map, w));
          g_clear_pointer (&result, g_variant_unref);
          g_clear_error (&error);
        }
    }
  wall = bench_now () - t0;
  cpu = bench_cpu (RUSAGE_SELF) - c0;
  if (producer != NULL)
    g_thread_join (g_steal_pointer (&producer));

  printf ("{\"bench\": \"B2\", \"impl\": \"fastmap-c\", \"mode\": \"%s\", \"n\": %" G_GUINT64_FORMAT
          ", \"chunk\": %" G_GUINT64_FORMAT ", \"wall\": %.6f, \"tasks_per_s\": %.1f"
          ", \"caller_cpu\": %.6f, \"workers_cpu\": %.3f, \"results\": %" G_GUINT64_FORMAT
          ", \"failed\": %" G_GUINT64_FORMAT ", \"workers\": %u, \"threads_limit\": %"
          G_GUINT64_FORMAT ", \"max_in_flight\": %u}\n",
          mode, n, producer_array ? feed.chunk : 1, wall, n / wall, cpu,
          workers_cpu, n_results, failed, fm_map_get_n_workers (map), threads,
          fm_mapper_get_max_in_flight (mapper));
  fflush (stdout);
  if (g_getenv ("FM_BENCH_LINGER_MS") != NULL)
    {
      /* For profilers (callgrind): end the workers, then give them time
       * to write their profiles before this process exits. */
      g_clear_object (&map);
      g_usleep (g_ascii_strtoull (g_getenv ("FM_BENCH_LINGER_MS"), NULL, 10) * 1000);
    }
  return failed == 0 && n_results == n ? 0 : 1;
}
