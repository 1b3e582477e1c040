/* fm-test-util.h: helpers the C tests share
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <errno.h>
#include <signal.h>

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

/* Reaped within @ms: not even a zombie. GSubprocess reaps its children
 * in GLib's worker thread. */
static inline gboolean
fm_test_process_gone (GPid  pid,
                      guint ms)
{
  for (guint i = 0; i <= ms / 10; i++)
    {
      if (kill (pid, 0) < 0 && errno == ESRCH)
        return TRUE;
      g_usleep (10000);
    }
  return FALSE;
}
