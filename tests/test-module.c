/* test-module.c: a module whose function fastmap-worker serves
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gmodule.h>
#include <fastmap.h>

G_MODULE_EXPORT GVariant *fm_test_square (GVariant *task, gpointer user_data, GError **error);

G_MODULE_EXPORT GVariant *
fm_test_square (GVariant  *task,
                gpointer   user_data,
                GError   **error)
{
  gint64 x = g_variant_get_int64 (task);

  return g_variant_new_int64 (x * x);
}
