/* fm-mapper.c: configuration and worker processes
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <string.h>

#include <gmodule.h>

#include "fm-error.h"
#include "fm-mapper.h"
#include "fm-private.h"

/**
 * SECTION:fm-mapper
 * @title: FmMapper
 * @short_description: Maps a function over tasks in worker processes
 *
 * An #FmMapper holds what a run of a function over a stream of tasks
 * needs: the worker program, how many worker processes to start
 * (#FmMapper:n-processes, one per core by default), how many threads they
 * may run at once (#FmMapper:threads-limit, no limit by default: one
 * thread per task in flight), whether results come back in input order
 * (#FmMapper:ordered) and how many tasks may be in flight at once
 * (#FmMapper:max-in-flight). Each call to fm_mapper_map() starts a run,
 * an #FmMap, with its own worker processes. Workers can also run on
 * other hosts, through ssh or another launcher: see #FmMapper:hosts.
 *
 * There are three ways to get a worker:
 *
 * - fm_mapper_new_for_function(): a C program maps one of its own
 *   functions. The program re-executes itself as the worker, and
 *   fm_init(), first in main(), turns the copy into a worker. No plugin,
 *   no extra binary.
 * - fm_mapper_new_for_module(): the installed `fastmap-worker` helper
 *   loads a #GModule and serves one of its functions.
 * - fm_mapper_new(): any program that calls fm_worker_serve(), in any
 *   language: a Python or gjs script, or a program of your own.
 *
 * The seed's example in C: eight tasks that each wait a second and then
 * compute, run in about one second of wall time on any machine:
 *
 * |[<!-- language="C" -->
 * #include <fastmap.h>
 *
 * static GVariant *
 * square (GVariant *task, gpointer user_data, GError **error)
 * {
 *   gint64 x = g_variant_get_int64 (task);
 *
 *   g_usleep (G_USEC_PER_SEC);
 *   return g_variant_new_int64 (x * x);
 * }
 *
 * int
 * main (int argc, char **argv)
 * {
 *   g_autoptr(FmMapper) mapper = NULL;
 *   g_autoptr(FmMap) map = NULL;
 *   GVariant *result;
 *   GError *error = NULL;
 *   guint64 index;
 *
 *   fm_init (&argc, &argv);    // a re-executed worker never returns from here
 *
 *   mapper = fm_mapper_new_for_function (square);
 *   map = fm_mapper_map (mapper, NULL);
 *   for (gint64 i = 0; i < 8; i++)
 *     fm_map_push (map, g_variant_new_int64 (i));
 *   fm_map_close (map);
 *
 *   while ((result = fm_map_next (map, &index, &error)) != NULL || error != NULL)
 *     {
 *       if (result != NULL)
 *         g_print ("%" G_GUINT64_FORMAT ": %" G_GINT64_FORMAT "\n",
 *                  index, g_variant_get_int64 (result));
 *       else
 *         g_printerr ("%" G_GUINT64_FORMAT ": %s\n", index, error->message);
 *       g_clear_pointer (&result, g_variant_unref);
 *       g_clear_error (&error);
 *     }
 *   return 0;
 * }
 * ]|
 */

/* The default window: enough tasks in flight for thousands of waits to
 * overlap and for batches of tiny tasks to keep two cores busy, and few
 * enough that the parent's bookkeeping stays well under a megabyte. */
#define DEFAULT_MAX_IN_FLIGHT 8192
/* The default window while tasks and results are numbers (see
 * #FmMapper:max-in-flight). */
#define WIDE_MAX_IN_FLIGHT    65536
#define DEFAULT_MAX_RETRIES   2

/* BatchMode: a host that would ask for a password or a passphrase fails
 * at once instead of waiting on a terminal nobody watches. -T: no pty,
 * which would mangle the binary stream. */
static const char * const default_launcher[] = { "ssh", "-T", "-o", "BatchMode=yes", NULL };

struct _FmMapper
{
  GObject   parent_instance;

  char    **argv;           /* owned, immutable after construction */
  char    **envp_extra;     /* owned, immutable after construction */
  guint     n_processes;
  guint     threads_limit;
  guint     max_in_flight;
  guint     max_retries;
  guint     task_timeout;
  gboolean  ordered;
  char     *hosts;          /* owned, NULL: all workers here */
  char    **launcher;       /* owned, never NULL */
  char    **forward_env;    /* owned, or NULL */
  GArray   *adopted;        /* FmAdopted, owned, or NULL: for the next map */
};

G_DEFINE_FINAL_TYPE (FmMapper, fm_mapper, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_ARGV,
  PROP_N_PROCESSES,
  PROP_THREADS_LIMIT,
  PROP_ORDERED,
  PROP_MAX_IN_FLIGHT,
  PROP_MAX_RETRIES,
  PROP_TASK_TIMEOUT,
  PROP_HOSTS,
  PROP_LAUNCHER,
  PROP_FORWARD_ENV,
  N_PROPS
};

static GParamSpec *properties [N_PROPS];

static void
fm_mapper_finalize (GObject *object)
{
  FmMapper *self = (FmMapper *)object;

  g_clear_pointer (&self->argv, g_strfreev);
  g_clear_pointer (&self->envp_extra, g_strfreev);
  g_clear_pointer (&self->hosts, g_free);
  g_clear_pointer (&self->launcher, g_strfreev);
  g_clear_pointer (&self->forward_env, g_strfreev);
  for (guint i = 0; self->adopted != NULL && i < self->adopted->len; i++)
    _fm_adopted_end (&g_array_index (self->adopted, FmAdopted, i));
  g_clear_pointer (&self->adopted, g_array_unref);

  G_OBJECT_CLASS (fm_mapper_parent_class)->finalize (object);
}

static void
fm_mapper_get_property (GObject    *object,
                        guint       prop_id,
                        GValue     *value,
                        GParamSpec *pspec)
{
  FmMapper *self = FM_MAPPER (object);

  switch (prop_id)
    {
    case PROP_ARGV:
      g_value_set_boxed (value, self->argv);
      break;
    case PROP_N_PROCESSES:
      g_value_set_uint (value, self->n_processes);
      break;
    case PROP_THREADS_LIMIT:
      g_value_set_uint (value, self->threads_limit);
      break;
    case PROP_ORDERED:
      g_value_set_boolean (value, self->ordered);
      break;
    case PROP_MAX_IN_FLIGHT:
      g_value_set_uint (value, self->max_in_flight);
      break;
    case PROP_MAX_RETRIES:
      g_value_set_uint (value, self->max_retries);
      break;
    case PROP_TASK_TIMEOUT:
      g_value_set_uint (value, self->task_timeout);
      break;
    case PROP_HOSTS:
      g_value_set_string (value, self->hosts);
      break;
    case PROP_LAUNCHER:
      g_value_set_boxed (value, self->launcher);
      break;
    case PROP_FORWARD_ENV:
      g_value_set_boxed (value, self->forward_env);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
set_uint_property (FmMapper *self,
                   guint    *field,
                   guint     value,
                   guint     prop_id)
{
  if (*field == value)
    return;
  *field = value;
  g_object_notify_by_pspec (G_OBJECT (self), properties[prop_id]);
}

static void
fm_mapper_set_property (GObject      *object,
                        guint         prop_id,
                        const GValue *value,
                        GParamSpec   *pspec)
{
  FmMapper *self = FM_MAPPER (object);

  switch (prop_id)
    {
    case PROP_ARGV:
      self->argv = g_value_dup_boxed (value);
      break;
    case PROP_N_PROCESSES:
      fm_mapper_set_n_processes (self, g_value_get_uint (value));
      break;
    case PROP_THREADS_LIMIT:
      fm_mapper_set_threads_limit (self, g_value_get_uint (value));
      break;
    case PROP_ORDERED:
      fm_mapper_set_ordered (self, g_value_get_boolean (value));
      break;
    case PROP_MAX_IN_FLIGHT:
      fm_mapper_set_max_in_flight (self, g_value_get_uint (value));
      break;
    case PROP_MAX_RETRIES:
      fm_mapper_set_max_retries (self, g_value_get_uint (value));
      break;
    case PROP_TASK_TIMEOUT:
      fm_mapper_set_task_timeout (self, g_value_get_uint (value));
      break;
    case PROP_HOSTS:
      fm_mapper_set_hosts (self, g_value_get_string (value));
      break;
    case PROP_LAUNCHER:
      fm_mapper_set_launcher (self, g_value_get_boxed (value));
      break;
    case PROP_FORWARD_ENV:
      fm_mapper_set_forward_env (self, g_value_get_boxed (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
fm_mapper_class_init (FmMapperClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = fm_mapper_finalize;
  object_class->get_property = fm_mapper_get_property;
  object_class->set_property = fm_mapper_set_property;

  /**
   * FmMapper:argv:
   *
   * The command line of a worker: a program that calls fm_worker_serve().
   */
  properties [PROP_ARGV] =
    g_param_spec_boxed ("argv", "Argv", "The command line of a worker",
                        G_TYPE_STRV,
                        G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * FmMapper:n-processes:
   *
   * How many worker processes a map starts. 0, the default, starts one
   * per core (g_get_num_processors()).
   */
  properties [PROP_N_PROCESSES] =
    g_param_spec_uint ("n-processes", "Processes", "How many worker processes, 0 for one per core",
                       0, 1024, 0,
                       G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * FmMapper:threads-limit:
   *
   * How many tasks may run at once, in all worker processes together,
   * spread evenly over them (a limit below #FmMapper:n-processes starts
   * only that many processes). 0, the default, sets no limit: as in the
   * original `fast_map`, each task in flight gets a thread, so up to
   * #FmMapper:max-in-flight tasks that wait overlap. Where the system
   * refuses a thread, tasks wait for a free one.
   */
  properties [PROP_THREADS_LIMIT] =
    g_param_spec_uint ("threads-limit", "Threads limit", "How many tasks may run at once, 0 for no limit",
                       0, G_MAXUINT, 0,
                       G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * FmMapper:ordered:
   *
   * Whether results come back in input order (the default), each as soon
   * as it and all before it are done; %FALSE gives each as it is done.
   */
  properties [PROP_ORDERED] =
    g_param_spec_boolean ("ordered", "Ordered", "Whether results come back in input order",
                          TRUE,
                          G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * FmMapper:max-in-flight:
   *
   * The window: how many tasks may be taken from the input and not yet
   * handed back to the consumer, at most. It bounds the memory of a run
   * (the tasks and results it holds) and how far ahead of the consumer a
   * lazy source is pulled. In both orders it also bounds the span of
   * indexes in flight: a task that is still running holds back the
   * dispatch of tasks #FmMapper:max-in-flight indexes after it.
   *
   * 0 picks the default: 8192, and 65536 while the tasks are tiny
   * numbers and so are the results that the consumer takes in bulk. That
   * is, from the first run of numbers that fm_map_next_array() (or its
   * async form) takes, for as long as every task of the map came in an
   * array of a basic fixed-size type given to fm_map_push_array(), every
   * result is a number (of such a type, but a boolean), and every worker
   * finds the tasks tiny (they take under 100 µs each, so that it runs
   * them in chunks): each task and result then costs its bytes and a slot
   * of the ring (48 bytes), about 5 MiB at 65536, and a window of 8192
   * tasks of a microsecond or less runs dry in the workers while the
   * consumer waits for a core. A task of another kind, pushed or pulled,
   * or a result of another type, brings the window back to 8192 for good;
   * a worker that no longer finds the tasks tiny (they wait, or grew
   * slower) brings it back until every worker finds them tiny again.
   * Tasks already sent beyond the window finish. So number tasks that
   * wait rather than compute keep the bound of 8192, and with
   * #FmMapper:threads-limit 0 (a thread per task in flight) the bound on
   * threads that it gives. A value set here is the window, always.
   */
  properties [PROP_MAX_IN_FLIGHT] =
    g_param_spec_uint ("max-in-flight", "Max in flight", "How many tasks may be in flight, 0 for the default",
                       0, 1 << 24, 0,
                       G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * FmMapper:max-retries:
   *
   * How many times a task whose worker died under it runs again on
   * another worker. A task that has killed #FmMapper:max-retries + 1
   * workers fails with %FM_ERROR_WORKER_DIED, whose message names the
   * task and how its last worker ended; the run goes on.
   *
   * When a worker that held several tasks dies, fastmap cannot tell which
   * one killed it: such a death counts against each of them, but never
   * beyond #FmMapper:max-retries. A task that reached it runs again alone
   * in a worker, where a death can only be its own. So a task that kills
   * every worker it runs in fails, and the tasks that shared a worker with
   * it do not. With #FmMapper:max-retries 0, any death fails every task
   * the worker held.
   */
  properties [PROP_MAX_RETRIES] =
    g_param_spec_uint ("max-retries", "Max retries", "How many times a task runs again after its worker died",
                       0, 100, DEFAULT_MAX_RETRIES,
                       G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * FmMapper:task-timeout:
   *
   * How long, in milliseconds, a task may run (0, the default: no
   * limit). A task that runs longer fails with %FM_ERROR_TIMED_OUT. A
   * thread cannot be stopped, so its worker process is killed and
   * replaced; the other tasks it held run again, and that death does not
   * count against their #FmMapper:max-retries. The worker watches its own
   * tasks, from the moment each starts, so time spent waiting in a queue
   * does not count.
   */
  properties [PROP_TASK_TIMEOUT] =
    g_param_spec_uint ("task-timeout", "Task timeout", "How long a task may run, in ms, 0 for no limit",
                       0, G_MAXUINT, 0,
                       G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * FmMapper:hosts:
   *
   * Where the worker processes run, as in GNU parallel's `--sshlogin`: a
   * comma-separated list of entries `N/host`, where `N` is how many worker
   * processes run on `host`. `host` is a host name for
   * #FmMapper:launcher, `user@host` for ssh, or `:` for this machine. An
   * entry without `N/` gets #FmMapper:n-processes workers (0: as many as
   * this machine has cores). So `"4/node1,8/node2,:"` runs 4 workers on
   * node1, 8 on node2 and one per local core here.
   *
   * %NULL or an empty string, the default, runs every worker here, as
   * #FmMapper:n-processes says. #FmMapper:threads-limit still caps the
   * number of workers, keeping the first ones of the list.
   *
   * A worker on another host runs the same command line as a local one
   * (#FmMapper:argv; fm_mapper_new_for_function() re-executes this
   * program's path), found there by path: the hosts need the same
   * installation, or a shared file system. It runs in the same directory
   * as here if the host has it, with the variables of
   * #FmMapper:forward-env. Its stderr comes to this process's stderr,
   * each line prefixed with `[host] `. Protocol version and byte order
   * are settled when it starts, so hosts of another byte order work.
   *
   * A host that cannot be reached, or whose connection drops, loses no
   * work: the tasks its workers held run again elsewhere, as when a local
   * worker dies (see #FmMapper:max-retries), and the debug message and
   * any error say which host. A worker that drops after it started is
   * replaced by a new connection; one that never answered is not.
   *
   * A list that cannot be read makes each map fail at once with
   * %FM_ERROR_INVALID_ARGUMENT.
   */
  properties [PROP_HOSTS] =
    g_param_spec_string ("hosts", "Hosts", "Where the worker processes run, such as \"4/node1,:\"",
                         NULL,
                         G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * FmMapper:launcher:
   *
   * The command that runs a worker on another host (see #FmMapper:hosts):
   * fastmap appends the host name and then one argument, a command line
   * for the host's shell (which must be a POSIX shell), and speaks to the
   * worker through the launcher's stdin and stdout. That is how ssh
   * works; a launcher that runs its arguments without a shell, such as
   * Slurm's `srun` or `kubectl exec`, needs a two-line wrapper script
   * (see "Running across machines" in the documentation).
   *
   * The default is `ssh -T -o BatchMode=yes`; setting %NULL restores it.
   */
  properties [PROP_LAUNCHER] =
    g_param_spec_boxed ("launcher", "Launcher", "The command that runs a worker on another host",
                        G_TYPE_STRV,
                        G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * FmMapper:forward-env:
   *
   * The names of environment variables to pass on to workers on other
   * hosts, as GNU parallel's `--env` does, with the values they have
   * here when a map starts. `PYTHONPATH`, `GI_TYPELIB_PATH` and
   * `LD_LIBRARY_PATH`, which locate fastmap and the user's code, are
   * always passed on when set, so that an uninstalled build works over
   * ssh too. Workers on this machine inherit the whole environment.
   */
  properties [PROP_FORWARD_ENV] =
    g_param_spec_boxed ("forward-env", "Forward environment",
                        "Names of variables to pass on to workers on other hosts",
                        G_TYPE_STRV,
                        G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
fm_mapper_init (FmMapper *self)
{
  self->ordered = TRUE;
  self->max_retries = DEFAULT_MAX_RETRIES;
  self->launcher = g_strdupv ((char **) default_launcher);
}

/**
 * fm_mapper_new:
 * @argv: (array zero-terminated=1): the command line of a worker program
 *
 * Creates a mapper whose workers run @argv: any program that calls
 * fm_worker_serve(). The program is looked up in `PATH` when @argv[0]
 * holds no slash. A program that cannot be started makes the maps of
 * this mapper fail with %FM_ERROR_WORKER_FAILED.
 *
 * Returns: (transfer full): a new #FmMapper
 */
FmMapper *
fm_mapper_new (const char * const *argv)
{
  g_return_val_if_fail (argv != NULL && argv[0] != NULL, NULL);

  return g_object_new (FM_TYPE_MAPPER, "argv", argv, NULL);
}

/**
 * fm_mapper_new_for_module:
 * @path: the file name of a shared module (see g_module_open())
 * @symbol: the name of an #FmFunction exported by the module
 * @error: return location for a #GError
 *
 * Creates a mapper whose workers are the `fastmap-worker` helper serving
 * the function @symbol of the module @path. The module is opened here
 * once, to check that the function is there, so a bad path or symbol is
 * an error now and not a failure of every map later.
 *
 * Returns: (transfer full): a new #FmMapper, or %NULL with @error set
 *   (%FM_ERROR_INVALID_ARGUMENT) if the module or the symbol is missing
 */
FmMapper *
fm_mapper_new_for_module (const char  *path,
                          const char  *symbol,
                          GError     **error)
{
  g_autofree char *helper = NULL;
  g_autofree char *abs_path = NULL;
  GModule *module;
  gpointer func = NULL;

  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (symbol != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  abs_path = g_canonicalize_filename (path, NULL);
  module = g_module_open (abs_path, G_MODULE_BIND_LAZY | G_MODULE_BIND_LOCAL);
  if (module == NULL)
    {
      g_set_error (error, FM_ERROR, FM_ERROR_INVALID_ARGUMENT,
                   "Could not open module “%s”: %s", path, g_module_error ());
      return NULL;
    }
  if (!g_module_symbol (module, symbol, &func) || func == NULL)
    {
      g_set_error (error, FM_ERROR, FM_ERROR_INVALID_ARGUMENT,
                   "Module “%s” has no function “%s”", path, symbol);
      g_module_close (module);
      return NULL;
    }
  g_module_close (module);

  helper = _fm_helper_path ();
  return fm_mapper_new ((const char * const[]) { helper, abs_path, symbol, NULL });
}

/**
 * fm_mapper_new_for_function: (skip)
 * @func: a function of this program
 *
 * Creates a mapper whose workers are copies of this very program that
 * serve @func: the program must call fm_init() first in main(). @func
 * may live in the executable or in a library it loaded; it is called
 * with a %NULL user_data, since no pointer of this process means
 * anything in the copy.
 *
 * This is a C API: bindings use fm_mapper_new() with a worker program.
 *
 * Returns: (transfer full): a new #FmMapper
 */
FmMapper *
fm_mapper_new_for_function (FmFunction func)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *exe = NULL;
  g_autofree char *value = NULL;
  FmMapper *self;

  g_return_val_if_fail (func != NULL, NULL);

  if (!_fm_function_locate (func, &exe, &value, &error))
    {
      /* A worker that fails at once carries the reason to the map. */
      g_critical ("fm_mapper_new_for_function: %s", error->message);
      return NULL;
    }

  self = fm_mapper_new ((const char * const[]) { exe, NULL });
  self->envp_extra = g_new0 (char *, 2);
  self->envp_extra[0] = g_strconcat (FM_REEXEC_ENV "=", value, NULL);
  return self;
}

/**
 * fm_mapper_get_argv:
 * @self: an #FmMapper
 *
 * Gets the command line of the workers.
 *
 * Returns: (transfer none) (array zero-terminated=1): the command line
 */
const char * const *
fm_mapper_get_argv (FmMapper *self)
{
  g_return_val_if_fail (FM_IS_MAPPER (self), NULL);

  return (const char * const *) self->argv;
}

/**
 * fm_mapper_get_n_processes:
 * @self: an #FmMapper
 *
 * Gets #FmMapper:n-processes.
 *
 * Returns: how many worker processes a map starts, 0 for one per core
 */
guint
fm_mapper_get_n_processes (FmMapper *self)
{
  g_return_val_if_fail (FM_IS_MAPPER (self), 0);

  return self->n_processes;
}

/**
 * fm_mapper_set_n_processes:
 * @self: an #FmMapper
 * @n_processes: how many worker processes, 0 for one per core
 *
 * Sets #FmMapper:n-processes. Maps already running keep theirs.
 */
void
fm_mapper_set_n_processes (FmMapper *self,
                           guint     n_processes)
{
  g_return_if_fail (FM_IS_MAPPER (self));

  set_uint_property (self, &self->n_processes, n_processes, PROP_N_PROCESSES);
}

/**
 * fm_mapper_get_threads_limit:
 * @self: an #FmMapper
 *
 * Gets #FmMapper:threads-limit.
 *
 * Returns: how many tasks may run at once, 0 for no limit
 */
guint
fm_mapper_get_threads_limit (FmMapper *self)
{
  g_return_val_if_fail (FM_IS_MAPPER (self), 0);

  return self->threads_limit;
}

/**
 * fm_mapper_set_threads_limit:
 * @self: an #FmMapper
 * @threads_limit: how many tasks may run at once, 0 for no limit
 *
 * Sets #FmMapper:threads-limit. Maps already running keep theirs.
 */
void
fm_mapper_set_threads_limit (FmMapper *self,
                             guint     threads_limit)
{
  g_return_if_fail (FM_IS_MAPPER (self));

  set_uint_property (self, &self->threads_limit, threads_limit, PROP_THREADS_LIMIT);
}

/**
 * fm_mapper_get_ordered:
 * @self: an #FmMapper
 *
 * Gets #FmMapper:ordered.
 *
 * Returns: whether results come back in input order
 */
gboolean
fm_mapper_get_ordered (FmMapper *self)
{
  g_return_val_if_fail (FM_IS_MAPPER (self), TRUE);

  return self->ordered;
}

/**
 * fm_mapper_set_ordered:
 * @self: an #FmMapper
 * @ordered: whether results come back in input order
 *
 * Sets #FmMapper:ordered. Maps already running keep theirs.
 */
void
fm_mapper_set_ordered (FmMapper *self,
                       gboolean  ordered)
{
  g_return_if_fail (FM_IS_MAPPER (self));

  ordered = !!ordered;
  if (self->ordered == ordered)
    return;
  self->ordered = ordered;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_ORDERED]);
}

/**
 * fm_mapper_get_max_in_flight:
 * @self: an #FmMapper
 *
 * Gets #FmMapper:max-in-flight.
 *
 * Returns: the window of a map, 0 for the default
 */
guint
fm_mapper_get_max_in_flight (FmMapper *self)
{
  g_return_val_if_fail (FM_IS_MAPPER (self), 0);

  return self->max_in_flight;
}

/**
 * fm_mapper_set_max_in_flight:
 * @self: an #FmMapper
 * @max_in_flight: the window of a map, 0 for the default
 *
 * Sets #FmMapper:max-in-flight. Maps already running keep theirs.
 */
void
fm_mapper_set_max_in_flight (FmMapper *self,
                             guint     max_in_flight)
{
  g_return_if_fail (FM_IS_MAPPER (self));

  set_uint_property (self, &self->max_in_flight, max_in_flight, PROP_MAX_IN_FLIGHT);
}

/**
 * fm_mapper_get_max_retries:
 * @self: an #FmMapper
 *
 * Gets #FmMapper:max-retries.
 *
 * Returns: how many times a task whose worker died runs again
 */
guint
fm_mapper_get_max_retries (FmMapper *self)
{
  g_return_val_if_fail (FM_IS_MAPPER (self), 0);

  return self->max_retries;
}

/**
 * fm_mapper_set_max_retries:
 * @self: an #FmMapper
 * @max_retries: how many times a task whose worker died runs again
 *
 * Sets #FmMapper:max-retries. Maps already running keep theirs.
 */
void
fm_mapper_set_max_retries (FmMapper *self,
                           guint     max_retries)
{
  g_return_if_fail (FM_IS_MAPPER (self));
  g_return_if_fail (max_retries <= 100);

  set_uint_property (self, &self->max_retries, max_retries, PROP_MAX_RETRIES);
}

/**
 * fm_mapper_get_task_timeout:
 * @self: an #FmMapper
 *
 * Gets #FmMapper:task-timeout.
 *
 * Returns: how long a task may run, in milliseconds, 0 for no limit
 */
guint
fm_mapper_get_task_timeout (FmMapper *self)
{
  g_return_val_if_fail (FM_IS_MAPPER (self), 0);

  return self->task_timeout;
}

/**
 * fm_mapper_set_task_timeout:
 * @self: an #FmMapper
 * @task_timeout: how long a task may run, in milliseconds, 0 for no limit
 *
 * Sets #FmMapper:task-timeout. Maps already running keep theirs.
 */
void
fm_mapper_set_task_timeout (FmMapper *self,
                            guint     task_timeout)
{
  g_return_if_fail (FM_IS_MAPPER (self));

  set_uint_property (self, &self->task_timeout, task_timeout, PROP_TASK_TIMEOUT);
}

/**
 * fm_mapper_get_hosts:
 * @self: an #FmMapper
 *
 * Gets #FmMapper:hosts.
 *
 * Returns: (nullable): where the workers run, or %NULL for all here
 */
const char *
fm_mapper_get_hosts (FmMapper *self)
{
  g_return_val_if_fail (FM_IS_MAPPER (self), NULL);

  return self->hosts;
}

/**
 * fm_mapper_set_hosts:
 * @self: an #FmMapper
 * @hosts: (nullable): where the workers run, such as `"4/node1,:"`, or
 *   %NULL for all here
 *
 * Sets #FmMapper:hosts. Maps already running keep theirs.
 */
void
fm_mapper_set_hosts (FmMapper   *self,
                     const char *hosts)
{
  g_return_if_fail (FM_IS_MAPPER (self));

  if (hosts != NULL && *hosts == '\0')
    hosts = NULL;
  if (g_strcmp0 (self->hosts, hosts) == 0)
    return;
  g_free (self->hosts);
  self->hosts = g_strdup (hosts);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_HOSTS]);
}

/**
 * fm_mapper_get_launcher:
 * @self: an #FmMapper
 *
 * Gets #FmMapper:launcher.
 *
 * Returns: (transfer none) (array zero-terminated=1): the command that
 *   runs a worker on another host
 */
const char * const *
fm_mapper_get_launcher (FmMapper *self)
{
  g_return_val_if_fail (FM_IS_MAPPER (self), NULL);

  return (const char * const *) self->launcher;
}

/**
 * fm_mapper_set_launcher:
 * @self: an #FmMapper
 * @launcher: (nullable) (array zero-terminated=1): the command that runs
 *   a worker on another host, or %NULL for the default,
 *   `ssh -T -o BatchMode=yes`
 *
 * Sets #FmMapper:launcher. Maps already running keep theirs.
 */
void
fm_mapper_set_launcher (FmMapper           *self,
                        const char * const *launcher)
{
  g_return_if_fail (FM_IS_MAPPER (self));

  if (launcher == NULL || launcher[0] == NULL)
    launcher = default_launcher;
  if (g_strv_equal ((const char * const *) self->launcher, launcher))
    return;
  g_strfreev (self->launcher);
  self->launcher = g_strdupv ((char **) launcher);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_LAUNCHER]);
}

/**
 * fm_mapper_get_forward_env:
 * @self: an #FmMapper
 *
 * Gets #FmMapper:forward-env.
 *
 * Returns: (transfer none) (nullable) (array zero-terminated=1): the
 *   names of the variables passed on to workers on other hosts
 */
const char * const *
fm_mapper_get_forward_env (FmMapper *self)
{
  g_return_val_if_fail (FM_IS_MAPPER (self), NULL);

  return (const char * const *) self->forward_env;
}

/**
 * fm_mapper_set_forward_env:
 * @self: an #FmMapper
 * @names: (nullable) (array zero-terminated=1): names of environment
 *   variables, or %NULL
 *
 * Sets #FmMapper:forward-env. Maps already running keep theirs.
 */
void
fm_mapper_set_forward_env (FmMapper           *self,
                           const char * const *names)
{
  g_return_if_fail (FM_IS_MAPPER (self));

  if (names != NULL && names[0] == NULL)
    names = NULL;
  if (names == NULL && self->forward_env == NULL)
    return;
  if (names != NULL && self->forward_env != NULL &&
      g_strv_equal ((const char * const *) self->forward_env, names))
    return;
  g_strfreev (self->forward_env);
  self->forward_env = g_strdupv ((char **) names);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_FORWARD_ENV]);
}

/* Fills in where each worker runs, from #FmMapper:hosts. */
static void
resolve_hosts (FmMapper    *self,
               FmMapConfig *config,
               guint        per_host)
{
  g_autoptr(GError) error = NULL;
  guint n;

  config->hosts = _fm_hosts_parse (self->hosts, per_host, &error);
  if (config->hosts == NULL)
    {
      config->error = g_steal_pointer (&error);
      return;
    }
  n = g_strv_length (config->hosts);
  if (self->threads_limit > 0 && n > self->threads_limit)
    {
      for (guint i = self->threads_limit; i < n; i++)
        g_clear_pointer (&config->hosts[i], g_free);
      n = self->threads_limit;
    }
  config->n_processes = n;
  for (guint i = 0; i < n; i++)
    if (config->hosts[i][0] != '\0')
      {
        config->remote_command = _fm_remote_command ((const char * const *) self->argv,
                                                     (const char * const *) self->envp_extra,
                                                     (const char * const *) self->forward_env);
        break;
      }
}

/**
 * fm_mapper_take_worker:
 * @self: an #FmMapper
 * @fd: a connected stream socket (such as one end of a `socketpair()`)
 *   whose other end is the protocol stream of a worker: standard input and
 *   output of a process that runs fm_worker_serve()
 * @pid: that process: a child of this one, or a child of one of its
 *   children (a fork server's)
 * @error: return location for a #GError, or %NULL
 *
 * Gives @self a worker that the caller started itself, for the next
 * fm_mapper_map() to use instead of starting one of #FmMapper:argv. A
 * language binding that can fork its interpreter uses this: Python's
 * `FastMap.fast_map` forks its workers from the caller, which is about
 * ten times faster than starting an interpreter and importing gi.
 *
 * The next map uses the workers given this way, in that order, for its
 * local processes, as many as it has (#FmMapper:n-processes); it starts
 * the others from #FmMapper:argv, and so it does for every worker that
 * replaces one that died. Workers the map has no process for are ended
 * with it, and those given to a mapper that makes no map end when the
 * mapper is finalized.
 *
 * A worker given this way that says nothing (no hello) for 30 s after
 * the map starts is taken for one that hangs, as a child forked while
 * another thread of its parent held a lock can: it is killed, and one of
 * #FmMapper:argv runs its tasks. (The environment variable
 * `FASTMAP_HELLO_TIMEOUT_MS` sets another time.)
 *
 * Call it from the thread that sets up @self, as its property setters,
 * before fm_mapper_map(); the map then reads the worker's stream in a
 * reader thread of its own, as it does any worker's.
 *
 * On success fastmap owns @fd (it closes it) and the process: it reaps
 * it and kills it when the map ends, as it does its own workers, so the
 * caller must not wait for it. A grandchild is killed the same way, but
 * reaped by its own parent, which fastmap leaves alone: a fork server
 * (a clean process that forks workers for a caller that runs threads)
 * ignores `SIGCHLD` or waits for its children, and a worker's death is
 * then reported without its exit status. On failure (@fd is not a stream
 * socket, @pid is neither a child of this process nor a child of one, or
 * this kernel cannot watch a process through a pidfd: Linux 5.4 or
 * later) both stay the caller's, with %FM_ERROR_INVALID_ARGUMENT or
 * %FM_ERROR_FAILED.
 *
 * Returns: %TRUE if @self took the worker
 */
gboolean
fm_mapper_take_worker (FmMapper  *self,
                       int        fd,
                       GPid       pid,
                       GError   **error)
{
  FmAdopted w;

  g_return_val_if_fail (FM_IS_MAPPER (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!_fm_adopted_init (&w, fd, pid, error))
    return FALSE;
  if (self->adopted == NULL)
    self->adopted = g_array_new (FALSE, FALSE, sizeof (FmAdopted));
  g_array_append_val (self->adopted, w);
  return TRUE;
}

/**
 * fm_mapper_map:
 * @self: an #FmMapper
 * @cancellable: (nullable): a #GCancellable, or %NULL
 *
 * Starts a run of the function over a stream of tasks: starts the
 * worker processes and returns the #FmMap that takes the tasks (with
 * fm_map_push() or fm_map_set_source()) and gives the results.
 *
 * The map's signals are emitted in the thread-default main context of
 * the thread that calls this function.
 *
 * Cancelling @cancellable ends the map: its workers are killed and
 * fm_map_next() fails with %G_IO_ERROR_CANCELLED.
 *
 * A worker that cannot be started is not an error here: the map reports
 * it, with %FM_ERROR_WORKER_FAILED, where its results are taken.
 *
 * Returns: (transfer full): a new #FmMap
 */
FmMap *
fm_mapper_map (FmMapper     *self,
               GCancellable *cancellable)
{
  FmMapConfig config;
  FmMap *map;
  guint n;

  g_return_val_if_fail (FM_IS_MAPPER (self), NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (self->argv != NULL, NULL);

  n = self->n_processes ? self->n_processes : (guint) g_get_num_processors ();

  memset (&config, 0, sizeof config);
  if (self->hosts != NULL)
    resolve_hosts (self, &config, n);
  else if (self->threads_limit > 0)
    n = MIN (n, self->threads_limit);

  config.argv = self->argv;
  config.envp_extra = self->envp_extra;
  config.n_processes = MAX (config.hosts != NULL ? config.n_processes : n, 1);
  config.launcher = self->launcher;
  config.threads_limit = self->threads_limit;
  config.ordered = self->ordered;
  config.max_in_flight = self->max_in_flight ? self->max_in_flight : DEFAULT_MAX_IN_FLIGHT;
  config.wide_window = self->max_in_flight ? 0 : WIDE_MAX_IN_FLIGHT;
  config.max_retries = self->max_retries;
  config.task_timeout = self->task_timeout;
  config.adopted = g_steal_pointer (&self->adopted);
  map = _fm_map_new (&config, cancellable);

  g_strfreev (config.hosts);
  g_free (config.remote_command);
  g_clear_error (&config.error);
  return map;
}
