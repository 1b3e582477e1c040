/* bench-module.c: the trivial function of B5, as a module for fastmap-worker
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <fastmap.h>
#include <gmodule.h>

G_MODULE_EXPORT GVariant *bench_trivial (GVariant  *task,
                                         gpointer   user_data,
                                         GError   **error);

G_MODULE_EXPORT GVariant *
bench_trivial (GVariant  *task,
               gpointer   user_data,
               GError   **error)
{
  return g_variant_ref_sink (task);
}
