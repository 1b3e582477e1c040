/* fm-worker.h: the worker side of the protocol
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#if !defined(FASTMAP_INSIDE) && !defined(FASTMAP_COMPILATION)
# error "Only <fastmap.h> can be included directly."
#endif

#include <gio/gio.h>

#include "fm-version-macros.h"
#include "fm-function.h"

G_BEGIN_DECLS

FM_AVAILABLE_IN_ALL
void        fm_init          (int         *argc,
                              char      ***argv);

FM_AVAILABLE_IN_ALL
gboolean    fm_worker_serve  (FmFunction   func,
                              gpointer     user_data,
                              GError     **error);

FM_AVAILABLE_IN_ALL
gboolean    fm_worker_serve_bytes (FmBytesFunction   func,
                                   gpointer          user_data,
                                   GError          **error);

FM_AVAILABLE_IN_ALL
void        fm_worker_serve_async  (FmFunction           func,
                                    gpointer             user_data,
                                    GDestroyNotify       destroy,
                                    GCancellable        *cancellable,
                                    GAsyncReadyCallback  callback,
                                    gpointer             callback_data);
FM_AVAILABLE_IN_ALL
gboolean    fm_worker_serve_finish (GAsyncResult        *result,
                                    GError             **error);

G_END_DECLS
