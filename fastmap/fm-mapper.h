/* fm-mapper.h: configuration and worker processes
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
#include "fm-map.h"

G_BEGIN_DECLS

#define FM_TYPE_MAPPER (fm_mapper_get_type ())

FM_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (FmMapper, fm_mapper, FM, MAPPER, GObject)

FM_AVAILABLE_IN_ALL
FmMapper   *fm_mapper_new                 (const char * const *argv);
FM_AVAILABLE_IN_ALL
FmMapper   *fm_mapper_new_for_module      (const char         *path,
                                           const char         *symbol,
                                           GError            **error);
FM_AVAILABLE_IN_ALL
FmMapper   *fm_mapper_new_for_function    (FmFunction          func);

FM_AVAILABLE_IN_ALL
const char * const *fm_mapper_get_argv    (FmMapper           *self);

FM_AVAILABLE_IN_ALL
guint       fm_mapper_get_n_processes     (FmMapper           *self);
FM_AVAILABLE_IN_ALL
void        fm_mapper_set_n_processes     (FmMapper           *self,
                                           guint               n_processes);
FM_AVAILABLE_IN_ALL
guint       fm_mapper_get_threads_limit   (FmMapper           *self);
FM_AVAILABLE_IN_ALL
void        fm_mapper_set_threads_limit   (FmMapper           *self,
                                           guint               threads_limit);
FM_AVAILABLE_IN_ALL
gboolean    fm_mapper_get_ordered         (FmMapper           *self);
FM_AVAILABLE_IN_ALL
void        fm_mapper_set_ordered         (FmMapper           *self,
                                           gboolean            ordered);
FM_AVAILABLE_IN_ALL
guint       fm_mapper_get_max_in_flight   (FmMapper           *self);
FM_AVAILABLE_IN_ALL
void        fm_mapper_set_max_in_flight   (FmMapper           *self,
                                           guint               max_in_flight);

FM_AVAILABLE_IN_ALL
guint       fm_mapper_get_max_retries     (FmMapper           *self);
FM_AVAILABLE_IN_ALL
void        fm_mapper_set_max_retries     (FmMapper           *self,
                                           guint               max_retries);
FM_AVAILABLE_IN_ALL
guint       fm_mapper_get_task_timeout    (FmMapper           *self);
FM_AVAILABLE_IN_ALL
void        fm_mapper_set_task_timeout    (FmMapper           *self,
                                           guint               task_timeout);

FM_AVAILABLE_IN_ALL
const char *fm_mapper_get_hosts           (FmMapper           *self);
FM_AVAILABLE_IN_ALL
void        fm_mapper_set_hosts           (FmMapper           *self,
                                           const char         *hosts);
FM_AVAILABLE_IN_ALL
const char * const *fm_mapper_get_launcher (FmMapper          *self);
FM_AVAILABLE_IN_ALL
void        fm_mapper_set_launcher        (FmMapper           *self,
                                           const char * const *launcher);
FM_AVAILABLE_IN_ALL
const char * const *fm_mapper_get_forward_env (FmMapper       *self);
FM_AVAILABLE_IN_ALL
void        fm_mapper_set_forward_env     (FmMapper           *self,
                                           const char * const *names);

FM_AVAILABLE_IN_ALL
gboolean    fm_mapper_take_worker         (FmMapper           *self,
                                           int                 fd,
                                           GPid                pid,
                                           GError            **error);

FM_AVAILABLE_IN_ALL
FmMap      *fm_mapper_map                 (FmMapper           *self,
                                           GCancellable       *cancellable);

G_END_DECLS
