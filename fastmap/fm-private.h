/* fm-private.h: what the library's files share and users do not see
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "fastmap.h"

G_BEGIN_DECLS

/* The environment variable that turns a re-executed copy of a program
 * into a worker: "<offset hex>:<build-id hex>:<object path>". */
#define FM_REEXEC_ENV "FASTMAP_WORKER_FUNCTION"

/* Overrides where fm_mapper_new_for_module() finds fastmap-worker. */
#define FM_HELPER_ENV "FASTMAP_WORKER_HELPER"

/* What a map needs from its mapper, copied when the map starts so that
 * changing the mapper later does not change a running map. */
typedef struct
{
  char   **argv;
  char   **envp_extra;       /* "NAME=value" strings, or NULL */
  guint    n_processes;      /* resolved: never 0 */
  guint    threads_limit;    /* 0: no limit */
  gboolean ordered;
  guint    max_in_flight;    /* resolved: never 0 */
  guint    wide_window;      /* what the default window widens to for numbers
                              * (see widen_locked()), or 0: the caller set it */
  guint    max_retries;
  guint    task_timeout;     /* ms, 0: none */
  char   **hosts;            /* a host per worker, "" for this machine; NULL: all here */
  char   **launcher;         /* the argv prefix that runs a command on a host */
  char    *remote_command;   /* what a remote worker runs, for the host's shell */
  GError  *error;            /* a configuration that cannot run: the map fails with it */
  GArray  *adopted;          /* FmAdopted: workers the caller started, the map's own */
} FmMapConfig;

/* A worker process that the caller started itself and gave to a mapper
 * (fm_mapper_take_worker()): its stream and a pidfd, which signals
 * exactly that process even once it has been reaped. */
typedef struct
{
  int  fd;
  int  pidfd;
  GPid pid;
} FmAdopted;

gboolean  _fm_adopted_init         (FmAdopted          *w,
                                    int                 fd,
                                    GPid                pid,
                                    GError            **error);
void      _fm_adopted_end          (FmAdopted          *w);

FmMap    *_fm_map_new              (const FmMapConfig  *config,
                                    GCancellable       *cancellable);

gboolean  _fm_function_locate      (FmFunction          func,
                                    char              **exe_path,
                                    char              **env_value,
                                    GError            **error);

char     *_fm_helper_path          (void);

/* fm-remote.c */
char    **_fm_hosts_parse          (const char          *hosts,
                                    guint                default_count,
                                    GError             **error);
char     *_fm_remote_command       (const char * const  *argv,
                                    const char * const  *envp_extra,
                                    const char * const  *forward_env);

typedef struct _FmStderrForward FmStderrForward;

FmStderrForward *_fm_stderr_forward_new (GInputStream    *stream,
                                         const char      *host);
char            *_fm_stderr_forward_end (FmStderrForward *fwd,
                                         guint            timeout_ms);

/* Runs @func in @context @ms milliseconds from now (0: at its next
 * iteration), always later and never in the calling thread.
 * (g_main_context_invoke() runs it at once in any thread that can acquire
 * @context: a reader thread holding the map's lock would deadlock, and
 * gjs refuses calls from threads other than its own.) */
static inline void
_fm_post_after (GMainContext *context,
                guint         ms,
                GSourceFunc   func,
                gpointer      data)
{
  GSource *source = ms == 0 ? g_idle_source_new () : g_timeout_source_new (ms);

  g_source_set_priority (source, G_PRIORITY_DEFAULT);
  g_source_set_callback (source, func, data, NULL);
  g_source_set_static_name (source, "[fastmap] post");
  g_source_attach (source, context);
  g_source_unref (source);
}

static inline void
_fm_post (GMainContext *context,
          GSourceFunc   func,
          gpointer      data)
{
  _fm_post_after (context, 0, func, data);
}

G_END_DECLS
