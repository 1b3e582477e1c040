/* fm-test-util.h: helpers the C tests share
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fastmap.h>

/* The function most tests map: an int64 to its square. */
static inline GVariant *
fm_test_square (GVariant  *task,
                gpointer   user_data,
                GError   **error)
{
  gint64 x = g_variant_get_int64 (task);

  return g_variant_new_int64 (x * x);
}

/* Computes, without a system call, for @us microseconds. */
static inline void
fm_test_spin_us (gint64 us)
{
  gint64 until = g_get_monotonic_time () + us;

  while (g_get_monotonic_time () < until)
    ;
}

/* Whether the test runs under valgrind (meson's "valgrind" setup). */
static inline gboolean
fm_test_under_valgrind (void)
{
  return g_getenv ("FASTMAP_UNDER_VALGRIND") != NULL;
}

/* A mapper whose workers are re-executed copies of the test serving @func. */
static inline FmMapper *
fm_test_mapper_for (FmFunction func,
                    guint      n_processes)
{
  FmMapper *mapper = fm_mapper_new_for_function (func);

  g_assert_nonnull (mapper);
  fm_mapper_set_n_processes (mapper, n_processes);
  return mapper;
}

/* #FmMapper:max-in-flight's default, and what it widens to for tiny
 * numbers taken in bulk. */
#define FM_TEST_DEFAULT_WINDOW 8192
#define FM_TEST_WIDE_WINDOW    65536

/* bad-worker's window mode finds the tasks before this one tiny. */
#define FM_TEST_WINDOW_TINY_UNTIL 16384

/* Pushes tasks 0 .. @n - 1 as one array of int64: numbers in bulk. */
static inline void
fm_test_push_range (FmMap  *map,
                    gint64  n)
{
  g_autofree gint64 *numbers = g_new (gint64, n);

  for (gint64 i = 0; i < n; i++)
    numbers[i] = i;
  fm_map_push_array (map, g_variant_new_fixed_array (G_VARIANT_TYPE_INT64, numbers, n,
                                                     sizeof (gint64)));
}

/* The value of the line @name ("PPid:", "Tgid:", "State:"...) of the
 * text of a /proc/PID/status, or NULL. */
static inline char *
fm_test_status_field (const char *status,
                      const char *name)
{
  g_auto(GStrv) lines = g_strsplit (status, "\n", -1);

  for (guint i = 0; lines[i] != NULL; i++)
    if (g_str_has_prefix (lines[i], name))
      return g_strstrip (g_strdup (lines[i] + strlen (name)));
  return NULL;
}

/* The line @name of /proc/@pid/status, or NULL when there is no such
 * process. */
static inline char *
fm_test_status_line (GPid        pid,
                     const char *name)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/status", (int) pid);
  g_autofree char *status = NULL;

  if (!g_file_get_contents (path, &status, NULL, NULL))
    return NULL;
  return fm_test_status_field (status, name);
}

/* Our child @pid is dead within @ms: reaped, or a zombie. GSubprocess
 * reaps its children in GLib's worker thread, and under AddressSanitizer
 * with the suites side by side it left a killed worker a zombie for more
 * than 20 s in about one run of three (also before the changes of
 * 2026-11-25: reproduced at 9afd425; a SIGCHLD of our own did not make
 * GLib reap it), so after waiting the whole time a zombie counts as gone,
 * and the log says so. The pid may be reused as soon as it is reaped
 * (pid_max can be 32768, and tests that run beside this one make
 * thousands of threads), so a process that is not our child is not the
 * one we look for, nor is a thread (its "pid" is a thread id of another
 * process: of one of our other children, its parent is us). On failure,
 * says what the process is. */
static inline gboolean
fm_test_process_gone (GPid  pid,
                      guint ms)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/status", (int) pid);

  for (guint i = 0; ; i++)
    {
      g_autofree char *status = NULL, *ppid = NULL, *tgid = NULL, *state = NULL, *name = NULL;

      if (!g_file_get_contents (path, &status, NULL, NULL))
        return TRUE;
      ppid = fm_test_status_field (status, "PPid:");
      tgid = fm_test_status_field (status, "Tgid:");
      state = fm_test_status_field (status, "State:");
      if (ppid == NULL || tgid == NULL || atoi (ppid) != getpid () || atoi (tgid) != pid)
        return TRUE;
      if (i < ms / 10)
        {
          g_usleep (10000);
          continue;
        }
      if (state != NULL && state[0] == 'Z')
        {
          g_test_message ("pid %d is dead but not reaped after %u ms (a zombie)", (int) pid, ms);
          return TRUE;
        }
      name = fm_test_status_field (status, "Name:");
      g_test_message ("pid %d is still our child after %u ms: %s, state %s",
                      (int) pid, ms, name ? name : "?", state ? state : "?");
      return FALSE;
    }
}

/* Takes every result of a map of twice(): each must succeed, come in
 * order and be twice its index. Returns how many there were. */
static inline guint64
fm_test_take_twice (FmMap *map)
{
  GVariant *value;
  GError *error = NULL;
  guint64 index, expected = 0;

  while ((value = fm_map_next (map, &index, &error)) != NULL)
    {
      g_assert_cmpuint (index, ==, expected);
      g_assert_cmpint (g_variant_get_int64 (value), ==, 2 * (gint64) expected);
      g_variant_unref (value);
      expected++;
    }
  g_assert_no_error (error);
  return expected;
}
