/* bench-common.h: what the benchmark programs share
 *
 * Each program prints one JSON object per measurement on its own line
 * on stdout; bench/run.py reads them. Nothing here is a test.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <fastmap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static inline double
bench_now (void)
{
  return g_get_monotonic_time () / 1e6;
}

/* CPU time (user + system) of this process, every thread, in seconds;
 * with @who = RUSAGE_CHILDREN, of its reaped children. */
static inline double
bench_cpu (int who)
{
  struct rusage ru;

  getrusage (who, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
         ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static inline double
bench_thread_cpu (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Peak resident set size of this program, in KiB: VmHWM, not getrusage's
 * ru_maxrss, which Linux carries over from the parent across fork and
 * exec (a program started by a big runner would report the runner's). */
static inline long
bench_peak_rss_kib (void)
{
  g_autofree char *status = NULL;
  const char *p;

  if (!g_file_get_contents ("/proc/self/status", &status, NULL, NULL) ||
      (p = strstr (status, "VmHWM:")) == NULL)
    return -1;
  return strtol (p + 6, NULL, 10);
}

static inline int
bench_cmp_double (const void *a,
                  const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return (x > y) - (x < y);
}

static inline double
bench_median (double *v,
              guint   n)
{
  qsort (v, n, sizeof *v, bench_cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Takes every result of @map; returns how many failed. */
static inline guint64
bench_drain (FmMap   *map,
             guint64 *n_results)
{
  g_autoptr(GError) error = NULL;
  guint64 failed = 0, n = 0, index;
  GVariant *result;

  while ((result = fm_map_next (map, &index, &error)) != NULL || error != NULL)
    {
      if (result == NULL)
        {
          failed++;
          if (failed == 1)
            g_printerr ("task %" G_GUINT64_FORMAT " failed: %s\n", index, error->message);
        }
      n++;
      g_clear_pointer (&result, g_variant_unref);
      g_clear_error (&error);
    }
  if (n_results != NULL)
    *n_results = n;
  return failed;
}

static inline guint64
bench_arg_u64 (int          argc,
               char       **argv,
               int          i,
               guint64      fallback)
{
  return argc > i ? g_ascii_strtoull (argv[i], NULL, 10) : fallback;
}
