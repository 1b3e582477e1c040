/* test-mapper.c: FmMapper's properties and constructors
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fastmap.h>

#include "fm-test-util.h"

static GVariant *
unused (GVariant  *task,
        gpointer   user_data,
        GError   **error)
{
  return g_variant_ref (task);
}

static void
test_defaults (void)
{
  g_autoptr(FmMapper) mapper = fm_mapper_new ((const char * const[]) { "worker", "--flag", NULL });
  const char * const *argv = fm_mapper_get_argv (mapper);
  guint max_retries;

  g_assert_cmpstr (argv[0], ==, "worker");
  g_assert_cmpstr (argv[1], ==, "--flag");
  g_assert_null (argv[2]);
  g_assert_cmpuint (fm_mapper_get_n_processes (mapper), ==, 0);
  g_assert_cmpuint (fm_mapper_get_threads_limit (mapper), ==, 0);
  g_assert_true (fm_mapper_get_ordered (mapper));
  g_assert_cmpuint (fm_mapper_get_max_in_flight (mapper), ==, 0);
  g_object_get (mapper, "max-retries", &max_retries, NULL);
  g_assert_cmpuint (max_retries, ==, 2);
}

static void
on_notify (GObject    *object,
           GParamSpec *pspec,
           gpointer    data)
{
  (*(guint *) data)++;
}

static void
test_properties (void)
{
  g_autoptr(FmMapper) mapper = fm_mapper_new ((const char * const[]) { "worker", NULL });
  guint notified = 0;
  guint n, t, w;
  gboolean o;

  g_signal_connect (mapper, "notify", G_CALLBACK (on_notify), &notified);
  fm_mapper_set_n_processes (mapper, 3);
  fm_mapper_set_n_processes (mapper, 3);    /* unchanged: no notify */
  fm_mapper_set_threads_limit (mapper, 7);
  fm_mapper_set_ordered (mapper, FALSE);
  fm_mapper_set_max_in_flight (mapper, 100);
  g_assert_cmpuint (notified, ==, 4);

  g_object_get (mapper, "n-processes", &n, "threads-limit", &t,
                "ordered", &o, "max-in-flight", &w, NULL);
  g_assert_cmpuint (n, ==, 3);
  g_assert_cmpuint (t, ==, 7);
  g_assert_false (o);
  g_assert_cmpuint (w, ==, 100);
}

static void
test_for_function (void)
{
  g_autoptr(FmMapper) mapper = fm_mapper_new_for_function (unused);
  g_autofree char *exe = g_file_read_link ("/proc/self/exe", NULL);

  /* It runs this very program. */
  g_assert_cmpstr (fm_mapper_get_argv (mapper)[0], ==, exe);
}

static void
test_threads_limit_caps_processes (void)
{
  g_autoptr(FmMapper) mapper = fm_mapper_new ((const char * const[]) { FM_TEST_WORKER, "square", NULL });
  g_autoptr(FmMap) map = NULL;

  fm_mapper_set_n_processes (mapper, 4);
  fm_mapper_set_threads_limit (mapper, 2);
  map = fm_mapper_map (mapper, NULL);
  /* A process with no thread to run would only cost. */
  g_assert_cmpuint (fm_map_get_n_workers (map), ==, 2);
  fm_map_close (map);
  g_assert_null (fm_map_next (map, NULL, NULL));
}

static void
test_default_processes (void)
{
  g_autoptr(FmMapper) mapper = fm_mapper_new ((const char * const[]) { FM_TEST_WORKER, "square", NULL });
  g_autoptr(FmMap) map = fm_mapper_map (mapper, NULL);

  g_assert_cmpuint (fm_map_get_n_workers (map), ==, g_get_num_processors ());
}

/* ---- fm_mapper_take_worker() ---------------------------------------- */

/* Forks a worker of fm_test_square(), as FastMap's Python layer forks its own:
 * the child serves on its end of a socketpair, and the parent gets the
 * other end. */
static GPid
fork_worker (int *fd)
{
  int sv[2];
  GPid pid;

  g_assert_no_errno (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
  pid = fork ();
  g_assert_cmpint (pid, >=, 0);
  if (pid == 0)
    {
      close (sv[0]);
      dup2 (sv[1], 0);
      dup2 (sv[1], 1);
      close (sv[1]);
      _exit (fm_worker_serve (fm_test_square, NULL, NULL) ? 0 : 1);
    }
  close (sv[1]);
  *fd = sv[0];
  return pid;
}

/* Our child @pid has been reaped (by fastmap): waiting for it fails. */
static void
assert_reaped (GPid pid)
{
  int status;

  g_assert_cmpint (waitpid (pid, &status, WNOHANG), ==, -1);
  g_assert_cmpint (errno, ==, ECHILD);
}

static void
push_squares (FmMap *map,
              guint  n)
{
  for (guint i = 0; i < n; i++)
    fm_map_push (map, g_variant_new_int64 (i));
  fm_map_close (map);
  for (guint i = 0; i < n; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GVariant) result = fm_map_next (map, NULL, &error);

      g_assert_no_error (error);
      g_assert_nonnull (result);
      g_assert_cmpint (g_variant_get_int64 (result), ==, (gint64) i * i);
    }
  g_assert_null (fm_map_next (map, NULL, NULL));
}

/* The tests that fork run in a subprocess of their own: one that runs no
 * other thread (the fork child has only the thread that forked). */
static void
in_subprocess (gconstpointer test)
{
  if (g_test_subprocess ())
    {
      ((void (*) (void)) test) ();
      return;
    }
  g_test_trap_subprocess (NULL, 60 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

static void
test_take_worker_forked (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (fm_test_square, 2);
  g_autoptr(FmMap) map = NULL;
  GPid pids[2];

  for (guint i = 0; i < 2; i++)
    {
      g_autoptr(GError) error = NULL;
      int fd;

      pids[i] = fork_worker (&fd);
      g_assert_true (fm_mapper_take_worker (mapper, fd, pids[i], &error));
      g_assert_no_error (error);
    }
  map = fm_mapper_map (mapper, NULL);
  /* Used in the order given, none started of argv. */
  g_assert_cmpint (fm_map_get_worker_pid (map, 0), ==, pids[0]);
  g_assert_cmpint (fm_map_get_worker_pid (map, 1), ==, pids[1]);
  push_squares (map, 5000);
  g_clear_object (&map);
  /* The map ended them and reaped them. */
  assert_reaped (pids[0]);
  assert_reaped (pids[1]);
}

/* Gives a map of one process the worker @pid (our end of its stream:
 * @fd), kills it after its first result, and checks that a worker of argv
 * replaces it and nothing is lost. */
static void
check_taken_worker_killed (int  fd,
                           GPid pid)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (fm_test_square, 1);
  g_autoptr(FmMap) map = NULL;
  g_autoptr(GVariant) first = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_true (fm_mapper_take_worker (mapper, fd, pid, &error));
  g_assert_no_error (error);
  map = fm_mapper_map (mapper, NULL);
  g_assert_cmpint (fm_map_get_worker_pid (map, 0), ==, pid);
  fm_map_push (map, g_variant_new_int64 (3));
  first = fm_map_next (map, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (g_variant_get_int64 (first), ==, 9);

  g_assert_no_errno (kill (pid, SIGKILL));
  push_squares (map, 2000);
  g_assert_cmpint (fm_map_get_worker_pid (map, 0), !=, pid);
}

static void
test_take_worker_killed (void)
{
  int fd;
  GPid pid = fork_worker (&fd);

  check_taken_worker_killed (fd, pid);
  assert_reaped (pid);
}

/* Starts a "fork server": a child of ours that ignores SIGCHLD, forks a
 * worker of fm_test_square() and waits until @to_server is closed. Returns
 * the worker, a grandchild; *fd is our end of its stream. */
static GPid
start_fork_server (int  *fd,
                   GPid *server,
                   int  *to_server)
{
  int sv[2], to[2], from[2];
  GPid pid;
  char byte;

  g_assert_no_errno (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
  g_assert_no_errno (pipe (to));
  g_assert_no_errno (pipe (from));
  *server = fork ();
  g_assert_cmpint (*server, >=, 0);
  if (*server == 0)
    {
      signal (SIGCHLD, SIG_IGN);
      close (sv[0]);
      close (to[1]);
      close (from[0]);
      pid = fork ();
      if (pid == 0)
        {
          dup2 (sv[1], 0);
          dup2 (sv[1], 1);
          close (sv[1]);
          _exit (fm_worker_serve (fm_test_square, NULL, NULL) ? 0 : 1);
        }
      close (sv[1]);
      if (write (from[1], &pid, sizeof pid) != sizeof pid)
        _exit (1);
      while (read (to[0], &byte, 1) > 0)
        ;
      _exit (0);
    }
  close (sv[1]);
  close (to[0]);
  close (from[1]);
  g_assert_cmpint (read (from[0], &pid, sizeof pid), ==, sizeof pid);
  close (from[0]);
  *fd = sv[0];
  *to_server = to[1];
  return pid;
}

/* Waits for @pid, not ours to reap, to be gone; then ends the server. */
static void
end_fork_server (GPid pid,
                 GPid server,
                 int  to_server)
{
  int status;

  for (guint i = 0; i < 1000 && kill (pid, 0) == 0; i++)
    g_usleep (1000);
  g_assert_cmpint (kill (pid, 0), ==, -1);
  g_assert_cmpint (errno, ==, ESRCH);
  close (to_server);
  g_assert_cmpint (waitpid (server, &status, 0), ==, server);
  g_assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);
}

/* A worker forked by a child of ours, as a fork server forks them: taken
 * like our own, and replaced when it dies; its parent reaps it. */
static void
test_take_worker_grandchild (void)
{
  int fd, to_server;
  GPid server, pid = start_fork_server (&fd, &server, &to_server);

  check_taken_worker_killed (fd, pid);
  end_fork_server (pid, server, to_server);
}

/* A grandchild still serving at the map's end is ended with it. */
static void
test_take_worker_grandchild_at_the_end (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (fm_test_square, 1);
  g_autoptr(FmMap) map = NULL;
  int fd, to_server;
  GPid server, pid;

  pid = start_fork_server (&fd, &server, &to_server);
  g_assert_true (fm_mapper_take_worker (mapper, fd, pid, NULL));
  map = fm_mapper_map (mapper, NULL);
  g_assert_cmpint (fm_map_get_worker_pid (map, 0), ==, pid);
  push_squares (map, 100);
  g_clear_object (&map);
  end_fork_server (pid, server, to_server);
}

static void
test_take_worker_unused (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (fm_test_square, 1);
  g_autoptr(FmMapper) unused_mapper = fm_test_mapper_for (fm_test_square, 1);
  g_autoptr(FmMap) map = NULL;
  GPid pids[3];

  for (guint i = 0; i < 3; i++)
    {
      FmMapper *m = i < 2 ? mapper : unused_mapper;
      int fd;

      pids[i] = fork_worker (&fd);
      g_assert_true (fm_mapper_take_worker (m, fd, pids[i], NULL));
    }
  /* One process, two workers: the second ends with the map. */
  map = fm_mapper_map (mapper, NULL);
  g_assert_cmpint (fm_map_get_worker_pid (map, 0), ==, pids[0]);
  push_squares (map, 100);
  g_clear_object (&map);
  assert_reaped (pids[0]);
  assert_reaped (pids[1]);
  /* A mapper that made no map ends its worker when it goes. */
  g_clear_object (&unused_mapper);
  assert_reaped (pids[2]);
  /* The next map of a mapper starts its own again. */
  map = fm_mapper_map (mapper, NULL);
  g_assert_cmpint (fm_map_get_worker_pid (map, 0), !=, pids[0]);
  push_squares (map, 100);
}

/* A forked child that hangs before its hello (as one can on a lock that
 * another thread of its parent held at the fork) is killed after
 * FASTMAP_HELLO_TIMEOUT_MS, and a worker of argv runs its tasks. */
static void
test_take_worker_silent (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (fm_test_square, 1);
  g_autoptr(FmMap) map = NULL;
  int sv[2];
  GPid pid;

  g_setenv ("FASTMAP_HELLO_TIMEOUT_MS", "300", TRUE);
  g_assert_no_errno (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
  pid = fork ();
  if (pid == 0)
    {
      close (sv[0]);
      for (;;)
        pause ();
    }
  close (sv[1]);
  g_assert_true (fm_mapper_take_worker (mapper, sv[0], pid, NULL));
  map = fm_mapper_map (mapper, NULL);
  g_assert_cmpint (fm_map_get_worker_pid (map, 0), ==, pid);
  push_squares (map, 100);
  g_assert_cmpint (fm_map_get_worker_pid (map, 0), !=, pid);
  assert_reaped (pid);
}

/* The processes a mapper can be given, where pidfds work: not our
 * parent, not ourselves, not pid 0; a child that has exited already is
 * still a child, taken, and the map finds it dead and starts one of argv.
 * The mapper takes @fd. */
static void
check_children (FmMapper *mapper,
                int       fd)
{
  const GPid not_children[] = { getppid (), getpid (), 0 };
  g_autoptr(GError) error = NULL;
  g_autoptr(FmMap) map = NULL;
  GPid child;

  for (guint i = 0; i < G_N_ELEMENTS (not_children); i++)
    {
      g_assert_false (fm_mapper_take_worker (mapper, fd, not_children[i], &error));
      g_assert_error (error, FM_ERROR, FM_ERROR_INVALID_ARGUMENT);
      g_clear_error (&error);
    }
  child = fork ();
  if (child == 0)
    _exit (3);
  g_assert_true (fm_mapper_take_worker (mapper, fd, child, &error));
  g_assert_no_error (error);
  map = fm_mapper_map (mapper, NULL);
  push_squares (map, 10);
  g_clear_object (&map);
  assert_reaped (child);
}

/* Where no pidfd can be had (valgrind 3.19 does not know the system
 * call), no process can be taken: FM_ERROR_FAILED, and @fd and the child
 * stay ours. */
static void
check_no_pidfd (FmMapper *mapper,
                int       fd)
{
  g_autoptr(GError) error = NULL;
  GPid child = fork ();

  if (child == 0)
    _exit (3);
  g_assert_false (fm_mapper_take_worker (mapper, fd, child, &error));
  g_assert_error (error, FM_ERROR, FM_ERROR_FAILED);
  g_assert_cmpint (waitpid (child, NULL, 0), ==, child);
  g_assert_cmpint (fcntl (fd, F_GETFD), !=, -1);
  close (fd);
}

static void
test_take_worker_bad_arguments (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (fm_test_square, 1);
  g_autoptr(GError) error = NULL;
  int fds[2], sv[2], probe;

  g_assert_no_errno (pipe (fds));
  g_assert_no_errno (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));

  /* Not a stream socket. */
  g_assert_false (fm_mapper_take_worker (mapper, fds[0], getpid (), &error));
  g_assert_error (error, FM_ERROR, FM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (fm_mapper_take_worker (mapper, -1, getpid (), &error));
  g_assert_error (error, FM_ERROR, FM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  /* What failed stays the caller's. */
  g_assert_cmpint (fcntl (fds[0], F_GETFD), !=, -1);
  close (fds[0]);
  close (fds[1]);

  /* The worker's end: its peer never says hello. */
  close (sv[1]);
  probe = pidfd_open (getpid (), 0);
  if (probe >= 0)
    {
      close (probe);
      check_children (mapper, sv[0]);
    }
  else
    {
      g_assert_cmpint (errno, ==, ENOSYS);
      check_no_pidfd (mapper, sv[0]);
    }
}

int
main (int    argc,
      char **argv)
{
  fm_init (&argc, &argv);
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/mapper/defaults", test_defaults);
  g_test_add_func ("/mapper/properties", test_properties);
  g_test_add_func ("/mapper/for-function", test_for_function);
  g_test_add_func ("/mapper/threads-limit-caps-processes", test_threads_limit_caps_processes);
  g_test_add_func ("/mapper/default-processes", test_default_processes);
  g_test_add_data_func ("/mapper/take-worker/forked", test_take_worker_forked, in_subprocess);
  g_test_add_data_func ("/mapper/take-worker/killed", test_take_worker_killed, in_subprocess);
  g_test_add_data_func ("/mapper/take-worker/unused", test_take_worker_unused, in_subprocess);
  g_test_add_data_func ("/mapper/take-worker/grandchild", test_take_worker_grandchild,
                        in_subprocess);
  g_test_add_data_func ("/mapper/take-worker/grandchild-at-the-end",
                        test_take_worker_grandchild_at_the_end, in_subprocess);
  g_test_add_data_func ("/mapper/take-worker/silent", test_take_worker_silent, in_subprocess);
  g_test_add_func ("/mapper/take-worker/bad-arguments", test_take_worker_bad_arguments);

  return g_test_run ();
}
