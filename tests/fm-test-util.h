/* fm-test-util.h: helpers the C tests share
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <fastmap.h>

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

/* The parent of @pid, or 0 when there is no such process. */
static inline GPid
fm_test_parent_of (GPid pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/stat", (int) pid);
  g_autofree char *stat = NULL;
  const char *end;
  int ppid = 0;

  if (!g_file_get_contents (path, &stat, NULL, NULL))
    return 0;
  /* "pid (comm) state ppid ...": comm may hold spaces and parentheses. */
  end = strrchr (stat, ')');
  if (end == NULL || sscanf (end + 1, " %*c %d", &ppid) != 1)
    return 0;
  return ppid;
}

/* Our child @pid is reaped within @ms: not even a zombie. GSubprocess
 * reaps its children in GLib's worker thread. The pid may be reused as
 * soon as it is reaped (pid_max can be 32768, and tests that run beside
 * this one make thousands of threads), so a process that is not our child
 * is not the one we look for. */
static inline gboolean
fm_test_process_gone (GPid  pid,
                      guint ms)
{
  for (guint i = 0; i <= ms / 10; i++)
    {
      if (fm_test_parent_of (pid) != getpid ())
        return TRUE;
      g_usleep (10000);
    }
  return FALSE;
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
