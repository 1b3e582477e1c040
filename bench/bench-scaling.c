/* bench-scaling.c: B3, CPU-bound scaling, from C
 *
 *   bench-scaling M [MS] [REPS]
 *
 * Tasks of about MS (10) milliseconds of pure computation: M of them in a
 * sequential loop in this process, then mapped over 1, 2, ... worker
 * processes up to the number of cores (threads-limit = processes, one
 * thread per core: the tasks never wait). Prints the speed-up of each
 * over the loop. Each time is the best of REPS, all in this one run.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "bench-common.h"

static inline guint64
compute (guint64 steps)
{
  guint64 x = 88172645463325252ull;

  for (guint64 i = 0; i < steps; i++)
    {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
    }
  return x;
}

static GVariant *
cpu_task (GVariant *task, gpointer user_data, GError **error)
{
  return g_variant_new_uint64 (compute (g_variant_get_int64 (task)));
}

/* Steps of compute() that take about @ms milliseconds here. */
static guint64
calibrate (double ms)
{
  guint64 steps = 100000;
  volatile guint64 sink;

  for (;;)
    {
      double t0 = bench_thread_cpu (), dt;

      sink = compute (steps);
      dt = bench_thread_cpu () - t0;
      (void) sink;
      if (dt > 0.05)
        return (guint64) (steps * (ms / 1e3) / dt);
      steps *= 4;
    }
}

static double
run_sequential (guint64 m, guint64 steps)
{
  double t0 = bench_now ();
  guint64 sum = 0;

  for (guint64 i = 0; i < m; i++)
    {
      GVariant *task = g_variant_ref_sink (g_variant_new_int64 (steps));
      GVariant *result = g_variant_ref_sink (cpu_task (task, NULL, NULL));

      sum += g_variant_get_uint64 (result);
      g_variant_unref (result);
      g_variant_unref (task);
    }
  if (sum == 42)
    g_printerr (" ");
  return bench_now () - t0;
}

static double
run_mapped (guint64 m, guint64 steps, guint procs)
{
  g_autoptr(FmMapper) mapper = NULL;
  g_autoptr(FmMap) map = NULL;
  double t0 = bench_now ();
  guint64 n_results;

  mapper = fm_mapper_new_for_function (cpu_task);
  fm_mapper_set_n_processes (mapper, procs);
  fm_mapper_set_threads_limit (mapper, procs);
  map = fm_mapper_map (mapper, NULL);
  for (guint64 i = 0; i < m; i++)
    fm_map_push (map, g_variant_new_int64 (steps));
  fm_map_close (map);
  if (bench_drain (map, &n_results) != 0 || n_results != m)
    return -1;
  return bench_now () - t0;
}

int
main (int argc, char **argv)
{
  guint64 m, steps, reps;
  double ms, seq = G_MAXDOUBLE;
  guint cores = g_get_num_processors ();

  fm_init (&argc, &argv);

  m = bench_arg_u64 (argc, argv, 1, 200);
  ms = argc > 2 ? g_ascii_strtod (argv[2], NULL) : 10;
  reps = bench_arg_u64 (argc, argv, 3, 3);
  steps = calibrate (ms);

  for (guint64 r = 0; r < reps; r++)
    seq = MIN (seq, run_sequential (m, steps));
  for (guint p = 1; p <= cores; p++)
    {
      double best = G_MAXDOUBLE;

      for (guint64 r = 0; r < reps; r++)
        {
          double t = run_mapped (m, steps, p);

          if (t < 0)
            return 1;
          best = MIN (best, t);
        }
      printf ("{\"bench\": \"B3\", \"impl\": \"fastmap-c\", \"cores\": %u, \"n\": %" G_GUINT64_FORMAT
              ", \"task_ms\": %.3f, \"sequential\": %.6f, \"wall\": %.6f, \"speedup\": %.4f}\n",
              p, m, seq / m * 1e3, seq, best, seq / best);
    }
  return 0;
}
