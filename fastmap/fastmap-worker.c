/* fastmap-worker.c: serves an FmFunction exported by a shared module
 *
 * Usage: fastmap-worker MODULE SYMBOL
 *
 * Started by the maps of fm_mapper_new_for_module(); not meant to be run
 * by hand.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <gmodule.h>
#include <stdlib.h>

#include <fastmap.h>

int
main (int    argc,
      char **argv)
{
  g_autoptr(GError) error = NULL;
  GModule *module;
  gpointer func = NULL;

  if (argc != 3)
    {
      g_printerr ("Usage: %s MODULE SYMBOL\n"
                  "Serves the FmFunction SYMBOL of MODULE as a fastmap worker.\n",
                  argv[0]);
      return 2;
    }

  module = g_module_open (argv[1], G_MODULE_BIND_LAZY | G_MODULE_BIND_LOCAL);
  if (module == NULL)
    {
      g_printerr ("fastmap-worker: %s\n", g_module_error ());
      return 1;
    }
  if (!g_module_symbol (module, argv[2], &func) || func == NULL)
    {
      g_printerr ("fastmap-worker: module “%s” has no function “%s”\n", argv[1], argv[2]);
      return 1;
    }

  if (!fm_worker_serve ((FmFunction) func, NULL, &error))
    {
      g_printerr ("fastmap-worker: %s\n", error->message);
      return 1;
    }
  return 0;
}
