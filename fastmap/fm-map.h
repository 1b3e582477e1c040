/* fm-map.h: one run of a function over a stream of tasks
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

#define FM_TYPE_MAP (fm_map_get_type ())

FM_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (FmMap, fm_map, FM, MAP, GObject)

FM_AVAILABLE_IN_ALL
void        fm_map_push         (FmMap               *self,
                                 GVariant            *task);
FM_AVAILABLE_IN_ALL
void        fm_map_push_array   (FmMap               *self,
                                 GVariant            *tasks);
FM_AVAILABLE_IN_ALL
void        fm_map_close        (FmMap               *self);
FM_AVAILABLE_IN_ALL
void        fm_map_set_source   (FmMap               *self,
                                 FmSourceFunc         func,
                                 gpointer             user_data,
                                 GDestroyNotify       destroy);

FM_AVAILABLE_IN_ALL
GVariant   *fm_map_next         (FmMap               *self,
                                 guint64             *index,
                                 GError             **error);
FM_AVAILABLE_IN_ALL
GVariant   *fm_map_next_array   (FmMap               *self,
                                 guint64             *first_index,
                                 GError             **error);
FM_AVAILABLE_IN_ALL
void        fm_map_next_async   (FmMap               *self,
                                 GCancellable        *cancellable,
                                 GAsyncReadyCallback  callback,
                                 gpointer             user_data);
FM_AVAILABLE_IN_ALL
GVariant   *fm_map_next_finish  (FmMap               *self,
                                 GAsyncResult        *result,
                                 guint64             *index,
                                 GError             **error);

FM_AVAILABLE_IN_ALL
void        fm_map_next_array_async  (FmMap               *self,
                                      GCancellable        *cancellable,
                                      GAsyncReadyCallback  callback,
                                      gpointer             user_data);
FM_AVAILABLE_IN_ALL
GVariant   *fm_map_next_array_finish (FmMap               *self,
                                      GAsyncResult        *result,
                                      guint64             *first_index,
                                      GError             **error);

FM_AVAILABLE_IN_ALL
guint       fm_map_get_n_workers (FmMap              *self);
FM_AVAILABLE_IN_ALL
GPid        fm_map_get_worker_pid (FmMap             *self,
                                   guint              worker);

G_END_DECLS
