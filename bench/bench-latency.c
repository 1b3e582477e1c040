/* bench-latency.c: B5, time to the first result, from C
 *
 *   bench-latency REPS MODULE
 *
 * From the creation of the mapper to the first result of a trivial task,
 * REPS times, fresh workers each time:
 *   reexec  fm_mapper_new_for_function(): this program re-executed
 *   module  fm_mapper_new_for_module(MODULE): the fastmap-worker helper
 *   spawn   no fastmap: spawn this program with --noop and wait for it,
 *           the floor that process start-up sets
 * Prints the median and the minimum of each.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "bench-common.h"

static GVariant *
trivial (GVariant *task, gpointer user_data, GError **error)
{
  return g_variant_ref_sink (task);
}

static void
first_result (FmMapper *mapper)
{
  g_autoptr(FmMap) map = fm_mapper_map (mapper, NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) result = NULL;
  guint64 index;

  fm_map_push (map, g_variant_new_int64 (7));
  fm_map_close (map);
  result = fm_map_next (map, &index, &error);
  if (result == NULL)
    {
      g_printerr ("no first result: %s\n", error ? error->message : "the end");
      exit (1);
    }
}

static double
once (const char *mode, const char *module, const char *self)
{
  double t0 = bench_now ();

  if (g_str_equal (mode, "spawn"))
    {
      const char *argv[] = { self, "--noop", NULL };
      g_autoptr(GSubprocess) p = g_subprocess_newv (argv, G_SUBPROCESS_FLAGS_NONE, NULL);

      g_subprocess_wait (p, NULL, NULL);
    }
  else
    {
      g_autoptr(FmMapper) mapper = NULL;
      g_autoptr(GError) error = NULL;

      if (g_str_equal (mode, "reexec"))
        mapper = fm_mapper_new_for_function (trivial);
      else
        mapper = fm_mapper_new_for_module (module, "bench_trivial", &error);
      if (mapper == NULL)
        {
          g_printerr ("%s\n", error->message);
          exit (1);
        }
      first_result (mapper);
      /* The clock stops before the workers are ended. */
      return bench_now () - t0;
    }
  return bench_now () - t0;
}

int
main (int argc, char **argv)
{
  static const char *modes[] = { "spawn", "reexec", "module" };
  g_autofree char *self = NULL;
  const char *module;
  guint64 reps;

  fm_init (&argc, &argv);
  if (argc > 1 && g_str_equal (argv[1], "--noop"))
    return 0;

  reps = bench_arg_u64 (argc, argv, 1, 20);
  module = argc > 2 ? argv[2] : NULL;
  self = g_file_read_link ("/proc/self/exe", NULL);

  for (guint m = 0; m < G_N_ELEMENTS (modes); m++)
    {
      g_autofree double *t = g_new (double, reps);
      double min = G_MAXDOUBLE;

      if (g_str_equal (modes[m], "module") && module == NULL)
        continue;
      once (modes[m], module, self);   /* warm the page cache */
      for (guint64 r = 0; r < reps; r++)
        {
          t[r] = once (modes[m], module, self);
          min = MIN (min, t[r]);
        }
      printf ("{\"bench\": \"B5\", \"impl\": \"fastmap-c\", \"mode\": \"%s\", \"reps\": %"
              G_GUINT64_FORMAT ", \"median\": %.6f, \"min\": %.6f}\n",
              modes[m], reps, bench_median (t, reps), min);
    }
  return 0;
}
