/* test-reliability.c: nothing is lost when workers die, hang, lie, or the
 * caller goes away
 *
 * Each guarantee of docs/reliability.md has a test here. The functions
 * mapped live in this program (fm_init() turns the re-executed copies into
 * workers); workers that break the protocol are tests/bad-worker.c.
 *
 * Run as "test-reliability --parent-killed-child", this program is the
 * parent that /reliability/parent-killed kills: it starts busy workers,
 * prints their pids and waits.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <fastmap.h>

#include "fm-test-util.h"

/* ---- functions the workers run ------------------------------------- */

/* x → 2x, after about 20 µs of work: long enough that a stress run lasts
 * a second or two, so that workers are killed while they hold tasks. */
static GVariant *
spin_twice (GVariant  *task,
            gpointer   user_data,
            GError   **error)
{
  fm_test_spin_us (20);
  return g_variant_new_int64 (2 * g_variant_get_int64 (task));
}

/* ms → ms, after sleeping ms milliseconds. */
static GVariant *
sleeper (GVariant  *task,
         gpointer   user_data,
         GError   **error)
{
  gint64 ms = g_variant_get_int64 (task);

  g_usleep (ms * 1000);
  return g_variant_new_int64 (ms);
}

/* Each run of a crashing task leaves a line in $FM_TEST_CRASH_LOG, so that
 * a test can count how many workers a task killed. */
static void
log_crash (gint64 x)
{
  const char *path = g_getenv ("FM_TEST_CRASH_LOG");
  FILE *f;

  if (path == NULL || (f = fopen (path, "a")) == NULL)
    return;
  fprintf (f, "%" G_GINT64_FORMAT "\n", x);
  fclose (f);
}

/* x → x * x, except that 7 segfaults, every time. The default action is
 * restored first: a sanitizer's handler would turn the signal into an
 * exit status. */
static GVariant *
segv_on_seven (GVariant  *task,
               gpointer   user_data,
               GError   **error)
{
  gint64 x = g_variant_get_int64 (task);

  if (x == 7)
    {
      log_crash (x);
      signal (SIGSEGV, SIG_DFL);
      raise (SIGSEGV);
    }
  g_usleep (5000);
  return g_variant_new_int64 (x * x);
}

static GVariant *
abort_on_seven (GVariant  *task,
                gpointer   user_data,
                GError   **error)
{
  gint64 x = g_variant_get_int64 (task);

  if (x == 7)
    {
      log_crash (x);
      signal (SIGABRT, SIG_DFL);
      abort ();
    }
  g_usleep (5000);
  return g_variant_new_int64 (x * x);
}

static GVariant *
exit_on_seven (GVariant  *task,
               gpointer   user_data,
               GError   **error)
{
  gint64 x = g_variant_get_int64 (task);

  if (x == 7)
    {
      log_crash (x);
      _exit (5);
    }
  g_usleep (5000);
  return g_variant_new_int64 (x * x);
}

static GVariant *
segv_always (GVariant  *task,
             gpointer   user_data,
             GError   **error)
{
  signal (SIGSEGV, SIG_DFL);
  raise (SIGSEGV);
  return NULL;
}

static void
hang_forever (void)
{
  for (;;)
    g_usleep (G_USEC_PER_SEC);
}

/* x → x * x after 20 ms, except that 3 and 17 never return. */
static GVariant *
hang_on_3_and_17 (GVariant  *task,
                  gpointer   user_data,
                  GError   **error)
{
  gint64 x = g_variant_get_int64 (task);

  if (x == 3 || x == 17)
    hang_forever ();
  g_usleep (20000);
  return g_variant_new_int64 (x * x);
}

static GVariant *
hang_always (GVariant  *task,
             gpointer   user_data,
             GError   **error)
{
  hang_forever ();
  return NULL;
}

/* ---- helpers -------------------------------------------------------- */

/* The one bound on wall time these tests use: a hang is a failure, not
 * a stuck CI job. */
static void
on_alarm (int sig)
{
  static const char msg[] = "test-reliability: a test hung (alarm)\n";

  if (write (2, msg, sizeof msg - 1) < 0)
    _exit (99);
  _exit (99);
}

static void
watchdog (guint seconds)
{
  signal (SIGALRM, on_alarm);
  alarm (fm_test_under_valgrind () ? seconds * 10 : seconds);
}

static FmMapper *
bad_mapper (const char *mode,
            const char *marker,
            guint       n_processes)
{
  const char *argv[] = { FM_BAD_WORKER, mode, marker, NULL };
  FmMapper *mapper = fm_mapper_new (argv);

  fm_mapper_set_n_processes (mapper, n_processes);
  return mapper;
}

static gboolean
set_task_timeout (FmMapper *mapper,
                  guint     ms)
{
  fm_mapper_set_task_timeout (mapper, ms);
  g_assert_cmpuint (fm_mapper_get_task_timeout (mapper), ==, ms);
  return TRUE;
}

static void
set_max_retries (FmMapper *mapper,
                 guint     n)
{
  fm_mapper_set_max_retries (mapper, n);
  g_assert_cmpuint (fm_mapper_get_max_retries (mapper), ==, n);
}

/* What fm_map_next() gave, one call. */
typedef struct
{
  guint64   index;
  GVariant *value;
  GError   *error;
} Outcome;

static void
outcome_clear (gpointer data)
{
  Outcome *o = data;

  g_clear_pointer (&o->value, g_variant_unref);
  g_clear_error (&o->error);
}

/* Takes everything until the end. @limit guards against a map that
 * gives more than it was given. */
static GArray *
take_outcomes (FmMap *map,
               guint  limit)
{
  GArray *all = g_array_new (FALSE, TRUE, sizeof (Outcome));

  g_array_set_clear_func (all, outcome_clear);
  for (;;)
    {
      Outcome o = { 0 };

      o.value = fm_map_next (map, &o.index, &o.error);
      if (o.value == NULL && o.error == NULL)
        break;
      g_array_append_val (all, o);
      g_assert_cmpuint (all->len, <=, limit);
    }
  return all;
}

#define OUTCOME(a, i) (&g_array_index ((a), Outcome, (i)))

static FmMap *
start_map (FmMapper     *mapper,
           GCancellable *cancellable,
           guint         n,
           gint64        value)
{
  FmMap *map = fm_mapper_map (mapper, cancellable);

  for (guint i = 0; i < n; i++)
    fm_map_push (map, g_variant_new_int64 (value < 0 ? (gint64) i : value));
  fm_map_close (map);
  return map;
}

/* Every index once, in order, each the square of its index. */
static void
assert_all_squares (GArray *all,
                    guint   n)
{
  g_assert_cmpuint (all->len, ==, n);
  for (guint i = 0; i < n; i++)
    {
      Outcome *o = OUTCOME (all, i);

      g_assert_no_error (o->error);
      g_assert_cmpuint (o->index, ==, i);
      g_assert_nonnull (o->value);
      g_assert_cmpint (g_variant_get_int64 (o->value), ==, (gint64) i * i);
    }
}

/* Whether @message names task @index: "task 7" followed by no digit. */
static gboolean
names_task (const char *message,
            guint64     index)
{
  g_autofree char *lower = g_ascii_strdown (message, -1);
  g_autofree char *needle = g_strdup_printf ("task %" G_GUINT64_FORMAT, index);
  const char *at = lower;

  while ((at = strstr (at, needle)) != NULL)
    {
      at += strlen (needle);
      if (!g_ascii_isdigit (*at))
        return TRUE;
    }
  return FALSE;
}

/* A worker that runs fm_worker_serve() past its hello has a ticker. */
static gboolean
worker_serving (GPid pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/task", (int) pid);
  g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *comm_path = g_build_filename (path, name, "comm", NULL);
      g_autofree char *comm = NULL;

      if (g_file_get_contents (comm_path, &comm, NULL, NULL) &&
          g_str_has_prefix (comm, "fm-ticker"))
        return TRUE;
    }
  return FALSE;
}

/* Waits until every worker of @map runs fm_worker_serve(). */
static void
wait_serving (FmMap *map,
              GPid  *pids)
{
  for (guint w = 0; w < fm_map_get_n_workers (map); w++)
    {
      for (;;)
        {
          pids[w] = fm_map_get_worker_pid (map, w);
          if (pids[w] > 0 && worker_serving (pids[w]))
            break;
          g_usleep (5000);
        }
    }
}

/* The children of @pid, from every one of its threads. */
static GArray *
children_of (GPid pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/task", (int) pid);
  g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
  GArray *kids = g_array_new (FALSE, FALSE, sizeof (GPid));
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *file = g_build_filename (path, name, "children", NULL);
      g_autofree char *text = NULL;
      g_auto(GStrv) words = NULL;

      if (!g_file_get_contents (file, &text, NULL, NULL))
        continue;
      words = g_strsplit (g_strstrip (text), " ", -1);
      for (char **w = words; *w != NULL; w++)
        if (**w != '\0')
          {
            GPid kid = atoi (*w);

            g_array_append_val (kids, kid);
          }
    }
  return kids;
}

/* Runs the calling test in a subprocess that must pass within @seconds:
 * for a test whose failure is a hang, so that the hang fails that test
 * alone and the others still run. Returns TRUE in the subprocess, which
 * goes on with the test. */
static gboolean
in_subprocess (guint seconds)
{
  if (g_test_subprocess ())
    return TRUE;
  g_test_trap_subprocess (NULL, (guint64) seconds * G_USEC_PER_SEC,
                          G_TEST_SUBPROCESS_INHERIT_STDERR);
  if (!g_test_trap_has_passed ())
    g_test_fail_printf ("the test %s within %u s: the parent hung",
                        g_test_trap_reached_timeout () ? "did not end" : "failed", seconds);
  return FALSE;
}

/* ---- a worker that dies --------------------------------------------- */

typedef struct
{
  FmMap  *map;
  gint    stop;
  guint   kills;
  guint32 seed;
} Killer;

/* SIGKILLs a random serving worker every 10 to 50 ms. */
static gpointer
killer_thread (gpointer data)
{
  Killer *k = data;
  g_autoptr(GRand) rand = g_rand_new_with_seed (k->seed);
  guint n = fm_map_get_n_workers (k->map);

  while (!g_atomic_int_get (&k->stop))
    {
      GPid pid;

      g_usleep (g_rand_int_range (rand, 10, 51) * 1000);
      pid = fm_map_get_worker_pid (k->map, g_rand_int_range (rand, 0, n));
      /* Only past its hello: a worker that dies before it says hello is
       * a worker that cannot start, which is not what this test is about. */
      if (pid > 0 && worker_serving (pid) && kill (pid, SIGKILL) == 0)
        k->kills++;
    }
  return NULL;
}

/* Takes every result of x → 2x with fm_map_next_array(), in order, each
 * once; returns how many. */
static guint64
take_twice_arrays (FmMap *map)
{
  guint64 expected = 0, first;
  GVariant *array;
  GError *error = NULL;

  while ((array = fm_map_next_array (map, &first, &error)) != NULL)
    {
      gsize len;
      const gint64 *r = g_variant_get_fixed_array (array, &len, sizeof (gint64));

      g_assert_cmpuint (first, ==, expected);
      for (gsize k = 0; k < len; k++, expected++)
        g_assert_cmpint (r[k], ==, 2 * (gint64) expected);
      g_variant_unref (array);
    }
  g_assert_no_error (error);
  return expected;
}

/* Workers killed at random while they hold tasks: every result comes
 * once, in order. With @bulk, the tasks go in as one array of numbers and
 * the results come out in arrays: the default window is wide while the
 * workers find the tasks tiny, tasks run again from the array's bytes,
 * and a worker that replaces a dead one brings the window back until its
 * tasks are measured. */
static void
test_stress_kill (gconstpointer bulk)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (spin_twice, 2);
  g_autoptr(FmMap) map = NULL;
  g_autoptr(GThread) thread = NULL;
  Killer k = { 0 };
  guint64 n = fm_test_under_valgrind () ? 10000 : 100000;

  watchdog (120);
  /* Random kills may hit a task in any number of workers in a row: this
   * test is about exactly-once delivery, not about the retry limit. */
  set_max_retries (mapper, 100);
  map = fm_mapper_map (mapper, NULL);
  /* The killer starts before the tasks go in: under valgrind the workers
   * had all of them done before it looked, and it killed none. */
  k.map = map;
  k.seed = g_test_rand_int ();
  thread = g_thread_new ("killer", killer_thread, &k);
  if (bulk)
    fm_test_push_range (map, (gint64) n);
  else
    for (guint64 i = 0; i < n; i++)
      fm_map_push (map, g_variant_new_int64 (i));
  fm_map_close (map);

  g_assert_cmpuint (bulk ? take_twice_arrays (map) : fm_test_take_twice (map), ==, n);

  g_atomic_int_set (&k.stop, 1);
  g_thread_join (g_steal_pointer (&thread));
  g_test_message ("%u workers killed during %" G_GUINT64_FORMAT " tasks", k.kills, n);
  /* How many kills land depends on the machine's speed; none would make
   * the test say nothing. */
  g_assert_cmpuint (k.kills, >=, 1);
  alarm (0);
}

typedef struct
{
  FmFunction  func;
  const char *why;     /* what the message must say about the end */
} Crash;

static const Crash crash_segv = { segv_on_seven, "signal 11" };
static const Crash crash_abort = { abort_on_seven, "signal 6" };
static const Crash crash_exit = { exit_on_seven, "status 5" };

static guint
count_lines (const char *path)
{
  g_autofree char *text = NULL;
  guint n = 0;

  if (!g_file_get_contents (path, &text, NULL, NULL))
    return 0;
  for (const char *c = text; *c != '\0'; c++)
    n += *c == '\n';
  return n;
}

/* One task kills every worker it runs in: it fails at its index with
 * FM_ERROR_WORKER_DIED after max-retries + 1 deaths, naming the task and
 * how the worker ended; every other task succeeds. */
static void
check_crash (const Crash *crash,
             guint        max_retries)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (crash->func, 2);
  g_autoptr(FmMap) map = NULL;
  g_autoptr(GArray) all = NULL;
  const char *log = g_getenv ("FM_TEST_CRASH_LOG");
  const guint n = 30;

  watchdog (120);
  g_assert_true (g_file_set_contents (log, "", 0, NULL));
  set_max_retries (mapper, max_retries);
  map = start_map (mapper, NULL, n, -1);
  all = take_outcomes (map, n);

  g_assert_cmpuint (all->len, ==, n);
  for (guint i = 0; i < n; i++)
    {
      Outcome *o = OUTCOME (all, i);

      g_assert_cmpuint (o->index, ==, i);
      /* With max-retries 0, any death fails every task its worker held. */
      if (i != 7 && max_retries == 0 && o->error != NULL)
        {
          g_assert_error (o->error, FM_ERROR, FM_ERROR_WORKER_DIED);
          continue;
        }
      if (i != 7)
        {
          g_assert_no_error (o->error);
          g_assert_cmpint (g_variant_get_int64 (o->value), ==, (gint64) i * i);
          continue;
        }
      g_assert_null (o->value);
      g_assert_error (o->error, FM_ERROR, FM_ERROR_WORKER_DIED);
      g_test_message ("task 7: %s", o->error->message);
      g_assert_true (names_task (o->error->message, 7));
      g_assert_nonnull (strstr (o->error->message, crash->why));
    }
  g_assert_cmpuint (count_lines (log), ==, max_retries + 1);
  alarm (0);
}

static void
test_crash (gconstpointer data)
{
  check_crash (data, 2);
}

static void
test_crash_retries (void)
{
  check_crash (&crash_segv, 0);
  check_crash (&crash_segv, 1);
  check_crash (&crash_segv, 4);
}

/* Every task kills its worker: every one fails, and the run ends. */
static void
test_crash_every_task (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (segv_always, 2);
  g_autoptr(FmMap) map = NULL;
  g_autoptr(GArray) all = NULL;
  const guint n = 10;

  watchdog (120);
  map = start_map (mapper, NULL, n, -1);
  all = take_outcomes (map, n);
  g_assert_cmpuint (all->len, ==, n);
  for (guint i = 0; i < n; i++)
    {
      g_assert_cmpuint (OUTCOME (all, i)->index, ==, i);
      g_assert_error (OUTCOME (all, i)->error, FM_ERROR, FM_ERROR_WORKER_DIED);
      g_assert_true (names_task (OUTCOME (all, i)->error->message, i));
    }
  alarm (0);
}

/* ---- a task that hangs ---------------------------------------------- */

static guint
timeout_ms (void)
{
  return fm_test_under_valgrind () ? 3000 : 500;
}

/* How long a stuck-worker test may take before it counts as hung: each
 * task a silent worker holds costs the parent 2 × timeout + 1 s to give
 * up on, and valgrind's timeout is six times longer. */
static guint
stuck_deadline_s (void)
{
  return fm_test_under_valgrind () ? 120 : 15;
}

static void
on_notify (GObject    *object,
           GParamSpec *pspec,
           gpointer    data)
{
  (*(guint *) data)++;
}

/* task-timeout: 0 (none) by default, set and notified once per change;
 * max-retries: 2 by default. */
static void
test_timeout_property (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (fm_test_square, 1);
  guint ms = 1, notified = 0;

  g_assert_cmpuint (fm_mapper_get_task_timeout (mapper), ==, 0);
  g_assert_cmpuint (fm_mapper_get_max_retries (mapper), ==, 2);
  g_object_get (mapper, "task-timeout", &ms, NULL);
  g_assert_cmpuint (ms, ==, 0);
  g_signal_connect (mapper, "notify::task-timeout", G_CALLBACK (on_notify), &notified);
  fm_mapper_set_task_timeout (mapper, 250);
  fm_mapper_set_task_timeout (mapper, 250);
  g_assert_cmpuint (notified, ==, 1);
  g_object_set (mapper, "task-timeout", 0, NULL);
  g_assert_cmpuint (fm_mapper_get_task_timeout (mapper), ==, 0);
  g_assert_cmpuint (notified, ==, 2);
}

/* Tasks 3 and 17 hang: each fails with FM_ERROR_TIMED_OUT at its index;
 * with max-retries 0 every other task still succeeds, so the tasks that
 * shared a killed worker ran again without it counting against them. */
static void
test_timeout_hang (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (hang_on_3_and_17, 2);
  g_autoptr(FmMap) map = NULL;
  g_autoptr(GArray) all = NULL;
  const guint n = 40;

  if (!set_task_timeout (mapper, timeout_ms ()))
    return;
  watchdog (120);
  set_max_retries (mapper, 0);
  map = start_map (mapper, NULL, n, -1);
  all = take_outcomes (map, n);

  g_assert_cmpuint (all->len, ==, n);
  for (guint i = 0; i < n; i++)
    {
      Outcome *o = OUTCOME (all, i);

      g_assert_cmpuint (o->index, ==, i);
      if (i == 3 || i == 17)
        {
          g_assert_error (o->error, FM_ERROR, FM_ERROR_TIMED_OUT);
          g_test_message ("task %u: %s", i, o->error->message);
          continue;
        }
      g_assert_no_error (o->error);
      g_assert_cmpint (g_variant_get_int64 (o->value), ==, (gint64) i * i);
    }
  alarm (0);
}

/* Every task hangs: every one times out, and the run ends. */
static void
test_timeout_every_task (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (hang_always, 2);
  g_autoptr(FmMap) map = NULL;
  g_autoptr(GArray) all = NULL;
  const guint n = 4;

  if (!set_task_timeout (mapper, timeout_ms ()))
    return;
  watchdog (120);
  map = start_map (mapper, NULL, n, -1);
  all = take_outcomes (map, n);
  g_assert_cmpuint (all->len, ==, n);
  for (guint i = 0; i < n; i++)
    {
      g_assert_cmpuint (OUTCOME (all, i)->index, ==, i);
      g_assert_error (OUTCOME (all, i)->error, FM_ERROR, FM_ERROR_TIMED_OUT);
    }
  alarm (0);
}

/* A task within its time is not touched: tasks of 100 ms under a
 * timeout of twice that, many at once. */
static void
test_timeout_not_reached (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (sleeper, 2);
  g_autoptr(FmMap) map = NULL;
  g_autoptr(GArray) all = NULL;
  const guint n = 200;

  if (!set_task_timeout (mapper, fm_test_under_valgrind () ? 5000 : 1000))
    return;
  watchdog (120);
  map = start_map (mapper, NULL, n, 100);
  all = take_outcomes (map, n);
  g_assert_cmpuint (all->len, ==, n);
  for (guint i = 0; i < n; i++)
    {
      g_assert_no_error (OUTCOME (all, i)->error);
      g_assert_cmpint (g_variant_get_int64 (OUTCOME (all, i)->value), ==, 100);
    }
  alarm (0);
}

/* A whole worker stops (SIGSTOP: the process, not one task, hangs):
 * task-timeout still ends its tasks, each at its index, timed out or run
 * again on the other worker, and the run ends. */
typedef struct
{
  GPid    pid;
  GMutex  lock;
  GCond   cond;
  gboolean done;
  gboolean rescued;
} Rescue;

/* Kills the stopped worker if the map has not ended within stuck_deadline_s (), so that
 * a parent that does not time it out fails the test instead of hanging. */
static gpointer
rescue_thread (gpointer data)
{
  Rescue *r = data;
  gint64 deadline = g_get_monotonic_time () + (gint64) stuck_deadline_s () * G_USEC_PER_SEC;

  g_mutex_lock (&r->lock);
  while (!r->done)
    if (!g_cond_wait_until (&r->cond, &r->lock, deadline))
      {
        r->rescued = TRUE;
        kill (r->pid, SIGKILL);
        break;
      }
  g_mutex_unlock (&r->lock);
  return NULL;
}

static void
test_timeout_stopped_worker (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (sleeper, 2);
  g_autoptr(FmMap) map = NULL;
  g_autoptr(GArray) all = NULL;
  g_autoptr(GThread) thread = NULL;
  Rescue r = { 0 };
  const guint n = 20;
  GPid pids[2];

  watchdog (120);
  set_task_timeout (mapper, timeout_ms ());
  map = start_map (mapper, NULL, n, 200);
  wait_serving (map, pids);
  r.pid = pids[0];
  g_assert_cmpint (kill (pids[0], SIGSTOP), ==, 0);
  thread = g_thread_new ("rescue", rescue_thread, &r);
  all = take_outcomes (map, n);
  g_assert_cmpuint (all->len, ==, n);
  for (guint i = 0; i < n; i++)
    {
      Outcome *o = OUTCOME (all, i);

      g_assert_cmpuint (o->index, ==, i);
      if (o->error != NULL)
        g_assert_error (o->error, FM_ERROR, FM_ERROR_TIMED_OUT);
      else
        g_assert_cmpint (g_variant_get_int64 (o->value), ==, 200);
    }
  g_mutex_lock (&r.lock);
  r.done = TRUE;
  g_cond_signal (&r.cond);
  g_mutex_unlock (&r.lock);
  g_thread_join (g_steal_pointer (&thread));
  g_clear_object (&map);
  g_assert_true (fm_test_process_gone (pids[0], fm_test_under_valgrind () ? 30000 : 5000));
  if (r.rescued)
    g_test_fail_printf ("a stopped worker was not timed out: the test killed it after %u s", stuck_deadline_s ());
  alarm (0);
}

/* ---- the caller goes away ------------------------------------------- */

static gpointer
cancel_later (gpointer data)
{
  g_usleep (100000);
  g_cancellable_cancel (data);
  return NULL;
}

/* A map whose workers are busy for a minute, and their pids. */
static FmMap *
busy_map (FmMapper     *mapper,
          GCancellable *cancellable,
          GPid         *pids)
{
  FmMap *map = start_map (mapper, cancellable, 8, 60000);

  wait_serving (map, pids);
  return map;
}

static void
assert_no_child (const GPid *pids,
                 guint       n)
{
  for (guint i = 0; i < n; i++)
    {
      g_autoptr(GArray) kids = NULL;

      /* Reaping happens in GLib's worker thread, slow under valgrind. */
      g_assert_true (fm_test_process_gone (pids[i], fm_test_under_valgrind () ? 30000 : 20000));
      kids = children_of (getpid ());
      for (guint j = 0; j < kids->len; j++)
        if (g_array_index (kids, GPid, j) == pids[i])
          {
            /* Still listed: only as the zombie fm_test_process_gone()
             * lets pass (dead, not yet reaped by GLib). */
            g_autofree char *state = fm_test_status_line (pids[i], "State:");

            g_assert_true (state == NULL || state[0] == 'Z');
          }
    }
}

/* Cancelling while fm_map_next() waits: it gives G_IO_ERROR_CANCELLED,
 * then the end, and the workers are gone, reaped. */
static void
test_cancel_ends_workers (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (sleeper, 2);
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(FmMap) map = NULL;
  g_autoptr(GThread) thread = NULL;
  g_autoptr(GError) error = NULL;
  GPid pids[2];

  watchdog (60);
  map = busy_map (mapper, cancellable, pids);
  thread = g_thread_new ("cancel", cancel_later, cancellable);
  g_assert_null (fm_map_next (map, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);
  g_assert_null (fm_map_next (map, NULL, &error));
  g_assert_no_error (error);
  assert_no_child (pids, 2);
  alarm (0);
}

/* Cancelled before it starts: no result, G_IO_ERROR_CANCELLED. */
static void
test_cancel_before_start (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (fm_test_square, 2);
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(FmMap) map = NULL;
  g_autoptr(GError) error = NULL;

  watchdog (60);
  g_cancellable_cancel (cancellable);
  map = start_map (mapper, cancellable, 10, -1);
  g_assert_null (fm_map_next (map, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);
  g_assert_null (fm_map_next (map, NULL, &error));
  g_assert_no_error (error);
  alarm (0);
}

static void
on_next_cancelled (GObject      *source,
                   GAsyncResult *result,
                   gpointer      data)
{
  GError **error = data;
  g_autoptr(GVariant) value = fm_map_next_finish (FM_MAP (source), result, NULL, error);

  g_assert_null (value);
}

/* The same while fm_map_next_async() waits. */
static void
test_cancel_async (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (sleeper, 2);
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(FmMap) map = NULL;
  g_autoptr(GThread) thread = NULL;
  GError *error = NULL;
  GPid pids[2];

  watchdog (60);
  map = busy_map (mapper, cancellable, pids);
  fm_map_next_async (map, NULL, on_next_cancelled, &error);
  thread = g_thread_new ("cancel", cancel_later, cancellable);
  while (error == NULL)
    g_main_context_iteration (NULL, TRUE);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);
  assert_no_child (pids, 2);
  alarm (0);
}

/* Dropping the last reference to a map whose workers are busy for a
 * minute ends them at once, and reaps them. */
static void
test_unref_ends_workers (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (sleeper, 2);
  FmMap *map;
  GPid pids[2];
  gint64 start;

  watchdog (60);
  map = busy_map (mapper, NULL, pids);
  start = g_get_monotonic_time ();
  g_object_unref (map);
  g_test_message ("unref took %" G_GINT64_FORMAT " ms", (g_get_monotonic_time () - start) / 1000);
  assert_no_child (pids, 2);
  alarm (0);
}

/* ---- the parent dies ------------------------------------------------- */

/* The parent that test_parent_killed kills: busy workers, their pids on
 * stdout, then a wait that only SIGKILL ends. */
static int
parent_killed_child (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (sleeper, 2);
  g_autoptr(FmMap) map = NULL;
  g_autoptr(GVariant) value = NULL;
  GPid pids[2];

  map = busy_map (mapper, NULL, pids);
  printf ("%d %d\n", (int) pids[0], (int) pids[1]);
  fflush (stdout);
  /* A minute: SIGKILL ends it first. */
  g_clear_pointer (&value, g_variant_unref);
  value = fm_map_next (map, NULL, NULL);
  return 1;
}

static gboolean
reaped_or_gone (GPid pid)
{
  int status;
  pid_t r = waitpid (pid, &status, WNOHANG);

  if (r == pid)
    return TRUE;
  /* Not ours (no subreaper): gone when even its zombie is gone. */
  return r < 0 && kill (pid, 0) < 0 && errno == ESRCH;
}

/* SIGKILL the parent while its workers run minute-long tasks: every
 * worker exits within 2 s (the guarantee says 1; this leaves room). */
static void
test_parent_killed (void)
{
  g_autofree char *self = g_file_read_link ("/proc/self/exe", NULL);
  const char *argv[] = { self, "--parent-killed-child", NULL };
  g_autoptr(GSubprocess) parent = NULL;
  g_autoptr(GDataInputStream) out = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GArray) workers = NULL;
  g_autofree char *line = NULL;
  g_auto(GStrv) words = NULL;
  gint64 died;
  gboolean subreaper;

  watchdog (60);
  /* Orphaned workers then come to this process, which reaps them. */
  subreaper = prctl (PR_SET_CHILD_SUBREAPER, 1) == 0;

  parent = g_subprocess_newv (argv, G_SUBPROCESS_FLAGS_STDOUT_PIPE, &error);
  g_assert_no_error (error);
  out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (parent));
  line = g_data_input_stream_read_line (out, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (line);

  workers = children_of (atoi (g_subprocess_get_identifier (parent)));
  words = g_strsplit (line, " ", -1);
  g_assert_cmpuint (g_strv_length (words), ==, 2);
  for (guint i = 0; i < 2; i++)
    {
      GPid pid = atoi (words[i]);
      gboolean listed = FALSE;

      g_assert_cmpint (pid, >, 0);
      g_assert_cmpint (kill (pid, 0), ==, 0);
      for (guint j = 0; j < workers->len; j++)
        listed |= g_array_index (workers, GPid, j) == pid;
      if (!listed)
        g_array_append_val (workers, pid);
    }
  g_assert_cmpuint (workers->len, >=, 2);

  g_subprocess_send_signal (parent, SIGKILL);
  g_subprocess_wait (parent, NULL, &error);
  g_assert_no_error (error);
  died = g_get_monotonic_time ();

  for (guint j = 0; j < workers->len; j++)
    {
      GPid pid = g_array_index (workers, GPid, j);

      while (!reaped_or_gone (pid))
        {
          if (g_get_monotonic_time () - died > 2 * G_USEC_PER_SEC)
            g_error ("worker %d outlived its parent by 2 s", (int) pid);
          g_usleep (10000);
        }
    }
  g_test_message ("%u workers gone %" G_GINT64_FORMAT " ms after their parent (subreaper: %d)",
                  workers->len, (g_get_monotonic_time () - died) / 1000, subreaper);
  if (subreaper)
    prctl (PR_SET_CHILD_SUBREAPER, 0);
  alarm (0);
}

/* ---- a worker of the other byte order ------------------------------- */

/* Task i of the byte-order test: numbers of every size, and values of
 * other types, in runs of 40. */
static GVariant *
byte_order_task (guint i)
{
  switch ((i / 40) % 9)
    {
    case 0: return g_variant_new_int64 ((gint64) i * 1000003 - 1000000000);
    case 1: return g_variant_new_uint16 (0x1234 + i);
    case 2: return g_variant_new_int32 (-(gint32) i * 100003);
    case 3: return g_variant_new_uint64 (G_MAXUINT64 - i * 77);
    case 4: return g_variant_new_double (i / 7.0 - 1e9);
    case 5: return g_variant_new_string ("a string that needs framing");
    case 6: return g_variant_new ("(sxq)", "tuple", (gint64) i << 20, (guint16) i);
    case 7: return g_variant_new_boolean (i % 3 == 0);
    default: return g_variant_new_parsed ("[%i, %i, 300000]", (gint32) i, -(gint32) i);
    }
}

/* The default window is wide only while every worker finds the tasks
 * tiny (bad-worker's window mode: tiny tasks up to 16384, then not): the
 * worker's first held task shows that the parent sent it more than 8192
 * tasks past the first one it held (the window widened), its second that
 * once the worker said they were not tiny, the parent held back to the
 * default's 8192 again. */
static void
test_window_follows_worker (void)
{
  g_autoptr(FmMapper) mapper = bad_mapper ("window", NULL, 1);
  g_autoptr(FmMap) map = fm_mapper_map (mapper, NULL);
  guint64 next = 0, first_held = FM_TEST_WINDOW_TINY_UNTIL, second_held = 0;
  gint64 wide_end = -1, narrow_end = -1;
  const gint64 n = 200000;

  watchdog (120);
  fm_test_push_range (map, n);
  fm_map_close (map);
  for (;;)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GVariant) array = NULL;
      const gint64 *r;
      guint64 first;
      gsize len;

      array = fm_map_next_array (map, &first, &error);
      g_assert_no_error (error);
      if (array == NULL)
        break;
      g_assert_cmpuint (first, ==, next);
      r = g_variant_get_fixed_array (array, &len, sizeof (gint64));
      for (gsize k = 0; k < len; k++, next++)
        {
          if (next == first_held)
            {
              wide_end = r[k];
              second_held = wide_end + 1;
            }
          else if (wide_end >= 0 && next == second_held)
            narrow_end = r[k];
          else
            g_assert_cmpint (r[k], ==, (gint64) (next * next));
        }
    }
  g_assert_cmpuint (next, ==, n);
  g_test_message ("sent up to %" G_GINT64_FORMAT " while task %" G_GUINT64_FORMAT
                  " was held, %" G_GINT64_FORMAT " while task %" G_GUINT64_FORMAT " was",
                  wide_end, first_held, narrow_end, second_held);
  g_assert_cmpint (wide_end, >=, (gint64) first_held + FM_TEST_DEFAULT_WINDOW);
  g_assert_cmpint (narrow_end, >=, (gint64) second_held);
  g_assert_cmpint (narrow_end, <=, (gint64) second_held + FM_TEST_DEFAULT_WINDOW - 1);
  alarm (0);
}

/* A worker of the other byte order (bad-worker's other-byte-order mode:
 * it says so in its hello, and sends every value byteswapped) gives the
 * same results as one of ours: int64 tasks squared, the others as they
 * were, taken one by one or in arrays (for which numbers stay in the
 * byteswapped frames). */
static void
test_other_byte_order (gconstpointer data)
{
  gboolean arrays = GPOINTER_TO_INT (data);
  g_autoptr(FmMapper) mapper = bad_mapper ("other-byte-order", NULL, 2);
  g_autoptr(FmMap) map = fm_mapper_map (mapper, NULL);
  g_autoptr(GPtrArray) expected = g_ptr_array_new_with_free_func ((GDestroyNotify) g_variant_unref);
  guint64 next = 0;
  const guint n = 3600;

  watchdog (120);
  for (guint i = 0; i < n; i++)
    {
      g_autoptr(GVariant) task = g_variant_ref_sink (byte_order_task (i));

      g_ptr_array_add (expected, g_variant_is_of_type (task, G_VARIANT_TYPE_INT64)
                       ? g_variant_ref_sink (fm_test_square (task, NULL, NULL))
                       : g_variant_ref (task));
      fm_map_push (map, task);
    }
  fm_map_close (map);

  for (;;)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GVariant) got = NULL;
      guint64 index;

      got = arrays ? fm_map_next_array (map, &index, &error) : fm_map_next (map, &index, &error);
      g_assert_no_error (error);
      if (got == NULL)
        break;
      g_assert_cmpuint (index, ==, next);
      if (!arrays)
        {
          g_assert_true (g_variant_equal (got, expected->pdata[next]));
          next++;
          continue;
        }
      for (gsize k = 0; k < g_variant_n_children (got); k++, next++)
        {
          g_autoptr(GVariant) child = g_variant_get_child_value (got, k);

          g_assert_true (g_variant_equal (child, expected->pdata[next]));
        }
    }
  g_assert_cmpuint (next, ==, n);
  alarm (0);
}

/* ---- workers that lie ------------------------------------------------ */

/* Modes of bad-worker that break the protocol after their hello. */
static const char * const after_hello_modes[] = {
  "truncated-header", "truncated-frame", "oversized", "garbage-length", "garbage",
  "unknown-kind", "parent-kind", "config-kind", "hello-twice", "unknown-index",
  "duplicate-index", "error-unknown-index", "count-mismatch", "bad-type", "bad-error",
};

/* And before it. */
static const char * const before_hello_modes[] = { "bad-hello", "no-hello" };

/* Every worker breaks the protocol after its hello. Each is killed and
 * replaced, and each replacement breaks it too: every task fails at its
 * index, in the FM_ERROR domain (FM_ERROR_WORKER_DIED after max-retries
 * + 1 workers, or FM_ERROR_PROTOCOL), the run ends, and the parent neither
 * crashes nor hangs. A worker that answers its first batch right and
 * then answers it again (duplicate-index) gives those results first: there
 * a task succeeds, or fails because it was held by workers that died. */
static void
test_protocol_always (gconstpointer data)
{
  const char *mode = data;
  g_autoptr(FmMapper) mapper = bad_mapper (mode, NULL, 2);
  g_autoptr(FmMap) map = NULL;
  g_autoptr(GArray) all = NULL;
  const guint n = 20;

  watchdog (120);
  map = start_map (mapper, NULL, n, -1);
  all = take_outcomes (map, n);

  g_assert_cmpuint (all->len, ==, n);
  for (guint i = 0; i < n; i++)
    {
      Outcome *o = OUTCOME (all, i);

      g_assert_cmpuint (o->index, ==, i);
      if (o->value != NULL)
        {
          /* Only a worker that answers before it lies gives results. */
          g_assert_cmpstr (mode, ==, "duplicate-index");
          g_assert_cmpint (g_variant_get_int64 (o->value), ==, (gint64) i * i);
          continue;
        }
      g_assert_null (o->value);
      g_assert_nonnull (o->error);
      if (i == 0)
        g_test_message ("%s: %s", mode, o->error->message);
      g_assert_true (g_error_matches (o->error, FM_ERROR, FM_ERROR_WORKER_DIED) ||
                     g_error_matches (o->error, FM_ERROR, FM_ERROR_PROTOCOL));
    }
  alarm (0);
}

/* A worker that breaks the greeting never started: the map fails with
 * FM_ERROR_WORKER_FAILED once no worker is left, then ends. */
static void
test_protocol_greeting (gconstpointer data)
{
  const char *mode = data;
  g_autoptr(FmMapper) mapper = bad_mapper (mode, NULL, 2);
  g_autoptr(FmMap) map = NULL;
  g_autoptr(GArray) all = NULL;

  watchdog (60);
  map = start_map (mapper, NULL, 5, -1);
  all = take_outcomes (map, 5);
  g_assert_cmpuint (all->len, ==, 1);
  g_assert_null (OUTCOME (all, 0)->value);
  g_assert_error (OUTCOME (all, 0)->error, FM_ERROR, FM_ERROR_WORKER_FAILED);
  g_test_message ("%s: %s", mode, OUTCOME (all, 0)->error->message);
  alarm (0);
}

/* Only the first worker breaks the protocol; with one worker process,
 * every result can only come from its replacement: the bad worker was
 * killed and replaced, and nothing was lost. (Before the hello, the
 * other of two workers takes over: a worker that never started is not
 * replaced.) */
static void
test_protocol_once (gconstpointer data)
{
  const char *mode = data;
  g_autofree char *dir = g_dir_make_tmp ("fm-bad-XXXXXX", NULL);
  g_autofree char *marker = g_build_filename (dir, "marker", NULL);
  gboolean greeting = g_str_equal (mode, "bad-hello") || g_str_equal (mode, "no-hello");
  g_autoptr(FmMapper) mapper = bad_mapper (mode, marker, greeting ? 2 : 1);
  g_autoptr(FmMap) map = NULL;
  g_autoptr(GArray) all = NULL;
  g_autofree char *bad_pid = NULL;
  const guint n = 20;

  watchdog (120);
  map = start_map (mapper, NULL, n, -1);
  all = take_outcomes (map, n);
  assert_all_squares (all, n);

  /* The bad one is gone before the map is. */
  g_assert_true (g_file_get_contents (marker, &bad_pid, NULL, NULL));
  g_assert_true (fm_test_process_gone (atoi (bad_pid), 5000));
  g_unlink (marker);
  g_rmdir (dir);
  alarm (0);
}

/* Workers that never answer, or stop halfway through a frame: only
 * task-timeout can tell them from slow ones. Each task fails, or with a
 * replacement that behaves, every result comes. */
static void
test_protocol_timeout (gconstpointer data)
{
  const char *mode = data;
  g_autoptr(FmMapper) mapper = bad_mapper (mode, NULL, 2);
  g_autoptr(FmMap) map = NULL;
  g_autoptr(GArray) all = NULL;
  const guint n = 6;

  if (!in_subprocess (stuck_deadline_s ()))
    return;
  if (!set_task_timeout (mapper, timeout_ms ()))
    return;
  map = start_map (mapper, NULL, n, -1);
  all = take_outcomes (map, n);
  g_assert_cmpuint (all->len, ==, n);
  for (guint i = 0; i < n; i++)
    {
      Outcome *o = OUTCOME (all, i);

      g_assert_cmpuint (o->index, ==, i);
      g_assert_nonnull (o->error);
      g_test_message ("%s, task %u: %s", mode, i, o->error->message);
      if (g_str_equal (mode, "silent"))
        g_assert_error (o->error, FM_ERROR, FM_ERROR_TIMED_OUT);
      else
        g_assert_true (g_error_matches (o->error, FM_ERROR, FM_ERROR_TIMED_OUT) ||
                       g_error_matches (o->error, FM_ERROR, FM_ERROR_WORKER_DIED) ||
                       g_error_matches (o->error, FM_ERROR, FM_ERROR_PROTOCOL));
    }
  alarm (0);
}

static void
test_protocol_timeout_once (gconstpointer data)
{
  const char *mode = data;
  g_autofree char *dir = NULL;
  g_autofree char *marker = NULL;
  g_autoptr(FmMapper) mapper = NULL;
  g_autoptr(FmMap) map = NULL;
  g_autoptr(GArray) all = NULL;
  const guint n = 20;

  if (!in_subprocess (stuck_deadline_s ()))
    return;
  dir = g_dir_make_tmp ("fm-bad-XXXXXX", NULL);
  marker = g_build_filename (dir, "marker", NULL);
  mapper = bad_mapper (mode, marker, 1);
  if (!set_task_timeout (mapper, timeout_ms ()))
    return;
  map = start_map (mapper, NULL, n, -1);
  all = take_outcomes (map, n);
  /* A silent worker's tasks time out; the others run again elsewhere.
   * Which ones timed out depends on how the parent tells them apart, so
   * this asserts only that each index comes once, right or timed out. */
  g_assert_cmpuint (all->len, ==, n);
  for (guint i = 0; i < n; i++)
    {
      Outcome *o = OUTCOME (all, i);

      g_assert_cmpuint (o->index, ==, i);
      if (o->error != NULL)
        {
          g_test_message ("%s, task %u: %s", mode, i, o->error->message);
          g_assert_error (o->error, FM_ERROR, FM_ERROR_TIMED_OUT);
        }
      else
        g_assert_cmpint (g_variant_get_int64 (o->value), ==, (gint64) i * i);
    }
  g_unlink (marker);
  g_rmdir (dir);
  alarm (0);
}

/* ---- more threads than the system gives ------------------------------ */

/* threads-limit 0 asks for a thread per task in flight. */
static void
test_threads_unlimited (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (sleeper, 2);
  g_autoptr(FmMap) map = NULL;
  guint64 n = fm_test_under_valgrind () ? 10000 : 100000, expected = 0, index;
  GError *error = NULL;
  GVariant *value;

  watchdog (240);
  fm_mapper_set_threads_limit (mapper, 0);
  map = start_map (mapper, NULL, n, 10);
  while ((value = fm_map_next (map, &index, &error)) != NULL)
    {
      g_assert_cmpuint (index, ==, expected++);
      g_assert_cmpint (g_variant_get_int64 (value), ==, 10);
      g_variant_unref (value);
    }
  g_assert_no_error (error);
  g_assert_cmpuint (expected, ==, n);
  alarm (0);
}

/* The same in workers whose address space holds a few dozen threads:
 * the system refuses most threads; work waits for a free one. */
static void
test_threads_refused (void)
{
  g_autoptr(FmMapper) mapper = fm_mapper_new ((const char * const[]) { FM_TEST_WORKER, "few-threads", NULL });
  g_autoptr(FmMap) map = NULL;
  g_autoptr(GArray) all = NULL;
  guint n = fm_test_under_valgrind () ? 2000 : 20000;

  watchdog (240);
  fm_mapper_set_n_processes (mapper, 2);
  fm_mapper_set_threads_limit (mapper, 0);
  map = start_map (mapper, NULL, n, -1);
  all = take_outcomes (map, n);
  assert_all_squares (all, n);
  alarm (0);
}

int
main (int    argc,
      char **argv)
{
  g_autofree char *crash_dir = NULL;
  g_autofree char *crash_log = NULL;
  int status;

  fm_init (&argc, &argv);
  if (argc > 1 && g_str_equal (argv[1], "--parent-killed-child"))
    return parent_killed_child ();
  g_test_init (&argc, &argv, NULL);

  /* Set before any thread runs; the workers inherit it. (Not in the
   * subprocesses of in_subprocess(), which may be killed and need none.) */
  if (!g_test_subprocess ())
    {
      crash_dir = g_dir_make_tmp ("fm-crash-XXXXXX", NULL);
      g_assert_nonnull (crash_dir);
      crash_log = g_build_filename (crash_dir, "crashes", NULL);
      g_setenv ("FM_TEST_CRASH_LOG", crash_log, TRUE);
    }

  g_test_add_data_func ("/reliability/stress-kill", NULL, test_stress_kill);
  g_test_add_data_func ("/reliability/stress-kill-bulk", GINT_TO_POINTER (TRUE), test_stress_kill);
  g_test_add_data_func ("/reliability/crash/segv", &crash_segv, test_crash);
  g_test_add_data_func ("/reliability/crash/abort", &crash_abort, test_crash);
  g_test_add_data_func ("/reliability/crash/exit", &crash_exit, test_crash);
  g_test_add_func ("/reliability/crash/max-retries", test_crash_retries);
  g_test_add_func ("/reliability/crash/every-task", test_crash_every_task);

  g_test_add_func ("/reliability/timeout/property", test_timeout_property);
  g_test_add_func ("/reliability/timeout/hang", test_timeout_hang);
  g_test_add_func ("/reliability/timeout/every-task", test_timeout_every_task);
  g_test_add_func ("/reliability/timeout/not-reached", test_timeout_not_reached);

  g_test_add_func ("/reliability/cancel/while-waiting", test_cancel_ends_workers);
  g_test_add_func ("/reliability/cancel/before-start", test_cancel_before_start);
  g_test_add_func ("/reliability/cancel/async", test_cancel_async);
  g_test_add_func ("/reliability/cancel/last-unref", test_unref_ends_workers);
  g_test_add_func ("/reliability/parent-killed", test_parent_killed);

  for (guint i = 0; i < G_N_ELEMENTS (after_hello_modes); i++)
    {
      g_autofree char *always = g_strconcat ("/reliability/protocol/always/", after_hello_modes[i], NULL);
      g_autofree char *once = g_strconcat ("/reliability/protocol/once/", after_hello_modes[i], NULL);

      g_test_add_data_func (always, after_hello_modes[i], test_protocol_always);
      g_test_add_data_func (once, after_hello_modes[i], test_protocol_once);
    }
  for (guint i = 0; i < G_N_ELEMENTS (before_hello_modes); i++)
    {
      g_autofree char *always = g_strconcat ("/reliability/protocol/always/", before_hello_modes[i], NULL);
      g_autofree char *once = g_strconcat ("/reliability/protocol/once/", before_hello_modes[i], NULL);

      g_test_add_data_func (always, before_hello_modes[i], test_protocol_greeting);
      g_test_add_data_func (once, before_hello_modes[i], test_protocol_once);
    }
  g_test_add_data_func ("/reliability/other-byte-order/next", GINT_TO_POINTER (FALSE),
                        test_other_byte_order);
  g_test_add_data_func ("/reliability/other-byte-order/next-array", GINT_TO_POINTER (TRUE),
                        test_other_byte_order);
  g_test_add_func ("/reliability/window-follows-worker", test_window_follows_worker);
  g_test_add_func ("/reliability/threads/unlimited", test_threads_unlimited);
  g_test_add_func ("/reliability/threads/refused", test_threads_refused);

  /* Workers stuck as a whole, which only the parent can time out. */
  g_test_add_func ("/reliability/stuck-worker/stopped", test_timeout_stopped_worker);
  g_test_add_data_func ("/reliability/stuck-worker/silent", "silent", test_protocol_timeout);
  g_test_add_data_func ("/reliability/stuck-worker/stall-mid-frame", "stall-mid-frame",
                        test_protocol_timeout);
  g_test_add_data_func ("/reliability/stuck-worker/silent-once", "silent",
                        test_protocol_timeout_once);
  g_test_add_data_func ("/reliability/stuck-worker/stall-mid-frame-once", "stall-mid-frame",
                        test_protocol_timeout_once);

  status = g_test_run ();
  if (crash_dir != NULL)
    {
      g_unlink (crash_log);
      g_rmdir (crash_dir);
    }
  return status;
}
