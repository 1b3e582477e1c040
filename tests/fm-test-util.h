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

/* A line of /proc/@pid/status ("State:", "Tgid:"...), without its name,
 * or NULL. */
static inline char *
fm_test_status_line (GPid        pid,
                     const char *name)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/status", (int) pid);
  g_autofree char *text = NULL;
  const char *line, *end;

  if (!g_file_get_contents (path, &text, NULL, NULL))
    return NULL;
  for (line = text; line != NULL && *line != '\0'; line = end != NULL ? end + 1 : NULL)
    {
      end = strchr (line, '\n');
      if (g_str_has_prefix (line, name))
        return g_strstrip (g_strndup (line + strlen (name),
                                      end != NULL ? (gsize) (end - line) - strlen (name)
                                                  : strlen (line + strlen (name))));
    }
  return NULL;
}

/* Our child @pid is dead within @ms: reaped, or a zombie. GSubprocess
 * reaps its children in GLib's worker thread, and under AddressSanitizer
 * with the suites side by side it left a killed worker a zombie for more
 * than 20 s in about one run of three (also before the changes of
 * 2026-11-25: reproduced at 9afd425; a SIGCHLD of our own did not make
 * GLib reap it), so a zombie counts as gone, and the log says so. The pid
 * may be reused as soon as it is reaped (pid_max can be 32768, and tests
 * that run beside this one make thousands of threads), so a process that
 * is not our child is not the one we look for, nor is a thread (its "pid"
 * is a thread id of another process: of one of our other children, its
 * parent is us). On failure, says what the process is. */
static inline gboolean
fm_test_process_gone (GPid  pid,
                      guint ms)
{
  g_autofree char *tgid = NULL, *state = NULL, *name = NULL;

  for (guint i = 0; i <= ms / 10; i++)
    {
      g_free (tgid);
      g_free (state);
      tgid = fm_test_status_line (pid, "Tgid:");
      state = fm_test_status_line (pid, "State:");
      if (fm_test_parent_of (pid) != getpid () ||
          (tgid != NULL && g_ascii_strtoll (tgid, NULL, 10) != pid))
        return TRUE;
      if (state != NULL && state[0] == 'Z' && i == ms / 10)
        {
          g_test_message ("pid %d is dead but not reaped after %u ms (a zombie)", (int) pid, ms);
          return TRUE;
        }
      g_usleep (10000);
    }
  g_free (state);
  state = fm_test_status_line (pid, "State:");
  name = fm_test_status_line (pid, "Name:");
  g_test_message ("pid %d is still our child after %u ms: %s, state %s, thread group %s",
                  (int) pid, ms, name ? name : "?", state ? state : "?", tgid ? tgid : "?");
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
