/* fm-remote.c: workers on other hosts, through a launcher such as ssh
 *
 * A remote worker is the launcher's process (`ssh -T host command`) with
 * the socketpair as its stdin and stdout, exactly like a local worker:
 * the protocol cannot tell them apart. What is remote-only lives here:
 * reading the hosts list, the shell command the host runs (ssh joins its
 * arguments into one command line for the remote shell, so the command is
 * quoted here, once, with g_shell_quote()), and forwarding the worker's
 * stderr with a "[host] " prefix.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "fm-error.h"
#include "fm-private.h"

/* What locates fastmap and the user's code: passed on to every remote
 * worker when set here, before the variables the user names. */
static const char * const default_forward_env[] = {
  "PYTHONPATH",
  "GI_TYPELIB_PATH",
  "LD_LIBRARY_PATH",
  NULL
};

/* Each entry of a hosts list costs a process, two threads and three fds
 * here: a list that asks for more is surely a mistake. */
#define MAX_WORKERS 4096

static gboolean
parse_count (const char  *text,
             gsize        len,
             guint       *count)
{
  guint64 n = 0;

  if (len == 0 || len > 4)
    return FALSE;
  for (gsize i = 0; i < len; i++)
    {
      if (!g_ascii_isdigit (text[i]))
        return FALSE;
      n = n * 10 + (text[i] - '0');
    }
  *count = (guint) n;
  return n >= 1 && n <= 1024;
}

/* A host name for the launcher: `host` or `user@host`. Nothing that the
 * launcher could take for an option, nor anything with a space. */
static gboolean
host_is_valid (const char *host)
{
  if (host[0] == '\0' || host[0] == '-')
    return FALSE;
  for (const char *c = host; *c != '\0'; c++)
    if (g_ascii_isspace (*c) || g_ascii_iscntrl (*c))
      return FALSE;
  return TRUE;
}

/* Reads one entry, "N/host", "host", "N/:" or ":", appending a host per
 * worker ("" for this machine) to @out. */
static gboolean
parse_entry (const char  *entry,
             guint        default_count,
             GPtrArray   *out,
             GError     **error)
{
  const char *slash = strchr (entry, '/');
  const char *host = entry;
  guint count = default_count;

  if (slash != NULL)
    {
      if (!parse_count (entry, slash - entry, &count))
        {
          g_set_error (error, FM_ERROR, FM_ERROR_INVALID_ARGUMENT,
                       "Bad process count in the hosts entry “%s” (a number from 1 to 1024)",
                       entry);
          return FALSE;
        }
      host = slash + 1;
    }
  if (strcmp (host, ":") != 0 && !host_is_valid (host))
    {
      g_set_error (error, FM_ERROR, FM_ERROR_INVALID_ARGUMENT,
                   "Bad host in the hosts entry “%s”", entry);
      return FALSE;
    }
  if (out->len + count > MAX_WORKERS)
    {
      g_set_error (error, FM_ERROR, FM_ERROR_INVALID_ARGUMENT,
                   "The hosts list asks for more than %u workers", MAX_WORKERS);
      return FALSE;
    }
  for (guint i = 0; i < count; i++)
    g_ptr_array_add (out, g_strdup (strcmp (host, ":") == 0 ? "" : host));
  return TRUE;
}

/* Reads a #FmMapper:hosts list: comma-separated entries, blanks around
 * them ignored, and an entry without a count has @default_count workers.
 * Returns a host per worker, "" for this machine. */
char **
_fm_hosts_parse (const char  *hosts,
                 guint        default_count,
                 GError     **error)
{
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func (g_free);
  g_auto(GStrv) entries = g_strsplit (hosts, ",", -1);

  for (guint i = 0; entries[i] != NULL; i++)
    {
      char *entry = g_strstrip (entries[i]);

      if (*entry == '\0')
        continue;
      if (!parse_entry (entry, default_count, out, error))
        return NULL;
    }
  if (out->len == 0)
    {
      g_set_error (error, FM_ERROR, FM_ERROR_INVALID_ARGUMENT,
                   "The hosts list “%s” names no host", hosts);
      return NULL;
    }
  g_ptr_array_add (out, NULL);
  g_ptr_array_set_free_func (out, NULL);
  return (char **) g_ptr_array_free (g_steal_pointer (&out), FALSE);
}

static void
append_quoted (GString    *command,
               const char *word)
{
  g_autofree char *quoted = g_shell_quote (word);

  g_string_append_c (command, ' ');
  g_string_append (command, quoted);
}

static void
append_env (GString    *command,
            const char *name)
{
  const char *value = g_getenv (name);
  g_autofree char *pair = NULL;

  if (value == NULL)
    return;
  pair = g_strconcat (name, "=", value, NULL);
  append_quoted (command, pair);
}

/* The command line a remote host runs for a worker, for a POSIX shell:
 * in the same directory as here when the host has it, with the variables
 * that locate the code (those set here), then @envp_extra, then
 * the variables named in @forward_env, and then @argv. */
char *
_fm_remote_command (const char * const *argv,
                    const char * const *envp_extra,
                    const char * const *forward_env)
{
  GString *command = g_string_new (NULL);
  g_autofree char *cwd = g_get_current_dir ();
  g_autofree char *quoted_cwd = g_shell_quote (cwd);

  g_string_append_printf (command, "cd %s 2>/dev/null; exec env", quoted_cwd);
  for (guint i = 0; default_forward_env[i] != NULL; i++)
    append_env (command, default_forward_env[i]);
  for (guint i = 0; envp_extra != NULL && envp_extra[i] != NULL; i++)
    append_quoted (command, envp_extra[i]);
  for (guint i = 0; forward_env != NULL && forward_env[i] != NULL; i++)
    if (!g_strv_contains (default_forward_env, forward_env[i]))
      append_env (command, forward_env[i]);
  /* env would take a first word with a '=' for one more variable. */
  if (strchr (argv[0], '=') != NULL)
    g_string_append (command, " --");
  for (guint i = 0; argv[i] != NULL; i++)
    append_quoted (command, argv[i]);
  return g_string_free (command, FALSE);
}

/* ---- forwarding stderr ---------------------------------------------- */

/* One thread per remote worker reads its stderr (the launcher's, which
 * carries the remote one) and writes each line to ours, prefixed. */
struct _FmStderrForward
{
  GThread          *thread;      /* owned, joined by _fm_stderr_forward_end() */
  GDataInputStream *input;       /* owned by the thread until it ends */
  GCancellable     *cancellable; /* owned */
  char             *prefix;      /* "[host] " */
  char             *last_line;   /* owned by the thread until it ends */

  GMutex            lock;        /* guards done */
  GCond             cond;
  gboolean          done;
};

static void
write_all (int         fd,
           const char *data,
           gsize       len)
{
  while (len > 0)
    {
      gssize n = write (fd, data, len);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return;
      data += n;
      len -= n;
    }
}

static void
forward_line (FmStderrForward *fwd,
              char            *line)
{
  g_autofree char *out = NULL;
  gsize len = strlen (line);

  if (len > 0 && line[len - 1] == '\r')
    line[--len] = '\0';
  /* One write per line, so that lines of several hosts do not mix. */
  out = g_strconcat (fwd->prefix, line, "\n", NULL);
  write_all (STDERR_FILENO, out, strlen (out));
  if (len > 0)
    {
      g_free (fwd->last_line);
      fwd->last_line = line;
    }
  else
    g_free (line);
}

static gpointer
forward_thread (gpointer data)
{
  FmStderrForward *fwd = data;
  char *line;

  while ((line = g_data_input_stream_read_line (fwd->input, NULL, fwd->cancellable, NULL)) != NULL)
    forward_line (fwd, line);

  g_mutex_lock (&fwd->lock);
  fwd->done = TRUE;
  g_cond_signal (&fwd->cond);
  g_mutex_unlock (&fwd->lock);
  return NULL;
}

/* Starts forwarding @stream, the stderr of the worker on @host. */
FmStderrForward *
_fm_stderr_forward_new (GInputStream *stream,
                        const char   *host)
{
  FmStderrForward *fwd = g_new0 (FmStderrForward, 1);

  g_mutex_init (&fwd->lock);
  g_cond_init (&fwd->cond);
  fwd->input = g_data_input_stream_new (stream);
  fwd->cancellable = g_cancellable_new ();
  fwd->prefix = g_strdup_printf ("[%s] ", host);
  fwd->thread = g_thread_new ("fm-stderr", forward_thread, fwd);
  return fwd;
}

/* Ends forwarding, once the stream has ended or after @timeout_ms (a
 * process the launcher left behind may hold the stream open), and frees
 * @fwd. Returns the last line that was not blank, or NULL. */
char *
_fm_stderr_forward_end (FmStderrForward *fwd,
                        guint            timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + timeout_ms * G_TIME_SPAN_MILLISECOND;
  char *last_line;

  g_mutex_lock (&fwd->lock);
  while (!fwd->done)
    if (!g_cond_wait_until (&fwd->cond, &fwd->lock, deadline))
      break;
  g_mutex_unlock (&fwd->lock);

  g_cancellable_cancel (fwd->cancellable);
  g_thread_join (fwd->thread);

  last_line = g_steal_pointer (&fwd->last_line);
  g_object_unref (fwd->input);
  g_object_unref (fwd->cancellable);
  g_free (fwd->prefix);
  g_mutex_clear (&fwd->lock);
  g_cond_clear (&fwd->cond);
  g_free (fwd);
  return last_line;
}
