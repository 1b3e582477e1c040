/* test-worker.c: a worker program for fm_mapper_new(), and misbehaving ones
 *
 * Usage: fm-test-worker MODE
 *   square       serves x → x * x with fm_worker_serve()
 *   exit-early   exits with status 3 before saying anything
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <stdlib.h>
#include <string.h>

#include <fastmap.h>

static GVariant *
square (GVariant  *task,
        gpointer   user_data,
        GError   **error)
{
  gint64 x = g_variant_get_int64 (task);

  g_assert (strcmp (user_data, "square") == 0);
  return g_variant_new_int64 (x * x);
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(GError) error = NULL;
  const char *mode = argc > 1 ? argv[1] : "square";

  if (strcmp (mode, "exit-early") == 0)
    return 3;

  if (!fm_worker_serve (square, (gpointer) "square", &error))
    {
      g_printerr ("fm-test-worker: %s\n", error->message);
      return 1;
    }
  return 0;
}
