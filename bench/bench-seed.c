/* bench-seed.c: B1, the seed's own workload, from C
 *
 *   bench-seed N LOOPS [HOSTS LAUNCHER...]
 *
 * Maps a function that sleeps one second and then loops LOOPS (10^5 or
 * 10^6) times over N tasks, with the seed's defaults (one worker process
 * per core, as many threads as tasks in flight), and prints the wall
 * time, the caller's own CPU time (it must not busy-wait) and the CPU
 * time of one call's loop, measured here, for the ideal bound
 * T* = sleep + N × call / cores.
 *
 * With HOSTS and a LAUNCHER command line (B6), the workers run where
 * #FmMapper:hosts says, started by that launcher: bench/run.py gives
 * "2/127.0.0.1" and ssh to an sshd of its own on loopback.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "bench-common.h"

#define SLEEP_USEC G_USEC_PER_SEC

/* The loop of a call, one machine code for the workers' calls and for
 * call_cpu(), which T* is made of. Inlined into seed_1e6() with its
 * constant count, GCC 12 at -O3 made a loop that took 0.55 ms on an AMD
 * EPYC where the one call_cpu() timed took 0.27 ms: T* was made of half
 * of what the workers computed. noipa keeps GCC from inlining or cloning
 * it for a constant. */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__ ((noipa))
#else
G_GNUC_NO_INLINE
#endif
static guint64
spin (guint64 loops)
{
  volatile guint64 sink = 0;

  for (guint64 i = 0; i < loops; i++)
    sink += i;
  return sink;
}

static GVariant *
seed_1e5 (GVariant *task, gpointer user_data, GError **error)
{
  gint64 x = g_variant_get_int64 (task);

  g_usleep (SLEEP_USEC);
  spin (100000);
  return g_variant_new_int64 (x * x);
}

static GVariant *
seed_1e6 (GVariant *task, gpointer user_data, GError **error)
{
  gint64 x = g_variant_get_int64 (task);

  g_usleep (SLEEP_USEC);
  spin (1000000);
  return g_variant_new_int64 (x * x);
}

/* The CPU time of one call without its sleep: the median of a few. */
static double
call_cpu (guint64 loops)
{
  double t[31];

  for (guint i = 0; i < G_N_ELEMENTS (t); i++)
    {
      double t0 = bench_thread_cpu ();

      spin (loops);
      t[i] = bench_thread_cpu () - t0;
    }
  return bench_median (t, G_N_ELEMENTS (t));
}

int
main (int argc, char **argv)
{
  g_autoptr(FmMapper) mapper = NULL;
  g_autoptr(FmMap) map = NULL;
  guint64 n, loops, failed, n_results;
  double t0, c0, wall, cpu, one;
  guint cores = g_get_num_processors ();

  fm_init (&argc, &argv);

  n = bench_arg_u64 (argc, argv, 1, 8);
  loops = bench_arg_u64 (argc, argv, 2, 100000);
  if (loops != 100000 && loops != 1000000)
    {
      g_printerr ("LOOPS is 100000 or 1000000\n");
      return 2;
    }
  one = call_cpu (loops);

  t0 = bench_now ();
  c0 = bench_cpu (RUSAGE_SELF);
  mapper = fm_mapper_new_for_function (loops == 100000 ? seed_1e5 : seed_1e6);
  if (argc > 4)
    {
      fm_mapper_set_hosts (mapper, argv[3]);
      fm_mapper_set_launcher (mapper, (const char * const *) argv + 4);
    }
  map = fm_mapper_map (mapper, NULL);
  for (guint64 i = 0; i < n; i++)
    fm_map_push (map, g_variant_new_int64 (i));
  fm_map_close (map);
  failed = bench_drain (map, &n_results);
  wall = bench_now () - t0;
  cpu = bench_cpu (RUSAGE_SELF) - c0;

  if (argc > 4)
    {
      printf ("{\"bench\": \"B6\", \"impl\": \"fastmap-c-ssh\", \"n\": %" G_GUINT64_FORMAT
              ", \"loops\": %" G_GUINT64_FORMAT ", \"wall\": %.6f, \"caller_cpu\": %.6f"
              ", \"results\": %" G_GUINT64_FORMAT ", \"failed\": %" G_GUINT64_FORMAT
              ", \"settings\": \"hosts=%s, threads-limit=0\"}\n",
              n, loops, wall, cpu, n_results, failed, argv[3]);
      return failed == 0 && n_results == n ? 0 : 1;
    }
  printf ("{\"bench\": \"B1\", \"impl\": \"fastmap-c\", \"n\": %" G_GUINT64_FORMAT
          ", \"loops\": %" G_GUINT64_FORMAT ", \"wall\": %.6f, \"caller_cpu\": %.6f"
          ", \"call_cpu\": %.9f, \"cores\": %u, \"results\": %" G_GUINT64_FORMAT
          ", \"failed\": %" G_GUINT64_FORMAT
          ", \"settings\": \"n-processes=%u (one per core), threads-limit=0 (one thread per task)\"}\n",
          n, loops, wall, cpu, one, cores, n_results, failed, fm_map_get_n_workers (map));
  return failed == 0 && n_results == n ? 0 : 1;
}
