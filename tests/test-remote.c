/* test-remote.c: workers on other hosts, through a real OpenSSH server
 *
 * The test starts its own sshd on 127.0.0.1, on a free port, with a host
 * key and a client key made for the run: no password, nothing but
 * loopback. sshd dies with this program (PR_SET_PDEATHSIG), even when an
 * assertion aborts it. Every test is skipped, with the reason, only when
 * sshd cannot be started.
 *
 * The functions mapped live in this program: over ssh, the workers are
 * this very program re-executed by path on "the other host".
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <fastmap.h>

#define SSHD "/usr/sbin/sshd"
/* The same port on 127.0.0.2: sshd listens on 127.0.0.1 only, so a
 * connection there is refused at once. */
#define UNREACHABLE "127.0.0.2"

static struct
{
  char   *dir;          /* the run's temporary directory */
  char   *key;          /* the client's private key */
  char   *port;
  GPid    pid;          /* sshd, 0 if it is not running */
  char   *skip_reason;  /* why sshd could not be started */
} sshd;

/* ---- functions the workers run ------------------------------------- */

static gboolean
over_ssh (void)
{
  return g_getenv ("SSH_CONNECTION") != NULL;
}

/* (x, delay_ms) → (x * x, whether this worker runs over ssh). */
static GVariant *
remote_square (GVariant  *task,
               gpointer   user_data,
               GError   **error)
{
  gint64 x;
  guint32 delay_ms;

  g_variant_get (task, "(xu)", &x, &delay_ms);
  g_usleep (delay_ms * 1000);
  return g_variant_new ("(xb)", x * x, over_ssh ());
}

/* (x, path) → (x * x, whether this worker runs over ssh). A task over ssh
 * makes @path; one here waits until it exists: the worker here cannot
 * take every task while the one over ssh starts, which on a loaded
 * machine took longer than all of them together. After 60 s the first
 * to give up makes @path.late, and no task here waits any more (the test
 * then fails: nothing was computed over ssh). */
static GVariant *
square_once_both_run (GVariant  *task,
                      gpointer   user_data,
                      GError   **error)
{
  g_autofree char *late = NULL;
  gint64 x;
  const char *path;

  g_variant_get (task, "(x&s)", &x, &path);
  late = g_strconcat (path, ".late", NULL);
  if (over_ssh ())
    g_assert_true (g_file_set_contents (path, "", 0, NULL));
  else
    {
      guint i;

      for (i = 0; i < 6000 && !g_file_test (path, G_FILE_TEST_EXISTS) &&
                  !g_file_test (late, G_FILE_TEST_EXISTS); i++)
        g_usleep (10 * 1000);
      if (i == 6000)
        g_assert_true (g_file_set_contents (late, "", 0, NULL));
    }
  g_usleep (20 * 1000);
  return g_variant_new ("(xb)", x * x, over_ssh ());
}

/* x → the value of FM_TEST_REMOTE_VAR, after saying so on stderr. */
static GVariant *
remote_env (GVariant  *task,
            gpointer   user_data,
            GError   **error)
{
  const char *value = g_getenv ("FM_TEST_REMOTE_VAR");

  fprintf (stderr, "task %" G_GINT64_FORMAT " says hello on stderr\n",
           g_variant_get_int64 (task));
  fflush (stderr);
  return g_variant_new_string (value ? value : "(unset)");
}

/* ---- the ssh server ------------------------------------------------- */

static gboolean
run (const char * const *argv)
{
  g_autoptr(GError) error = NULL;
  int status;

  if (!g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL,
                     NULL, NULL, NULL, NULL, &status, &error))
    {
      g_test_message ("%s: %s", argv[0], error->message);
      return FALSE;
    }
  return g_spawn_check_wait_status (status, NULL);
}

/* A port nobody listens on now. */
static guint16
free_port (void)
{
  struct sockaddr_in addr = { .sin_family = AF_INET };
  socklen_t len = sizeof addr;
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  guint16 port = 0;

  addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  if (fd >= 0 && bind (fd, (struct sockaddr *) &addr, sizeof addr) == 0 &&
      getsockname (fd, (struct sockaddr *) &addr, &len) == 0)
    port = ntohs (addr.sin_port);
  if (fd >= 0)
    close (fd);
  return port;
}

static gboolean
port_open (guint16 port)
{
  struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons (port) };
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  gboolean ok;

  addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  ok = fd >= 0 && connect (fd, (struct sockaddr *) &addr, sizeof addr) == 0;
  if (fd >= 0)
    close (fd);
  return ok;
}

static void
die_with_parent (gpointer data)
{
  prctl (PR_SET_PDEATHSIG, SIGKILL);
}

static gboolean
write_config (const char *path,
              guint16     port)
{
  g_autofree char *text = g_strdup_printf (
    "ListenAddress 127.0.0.1\n"
    "Port %u\n"
    "HostKey %s/host_key\n"
    "AuthorizedKeysFile %s/authorized_keys\n"
    "PasswordAuthentication no\n"
    "KbdInteractiveAuthentication no\n"
    "PubkeyAuthentication yes\n"
    "StrictModes no\n"
    "UsePAM no\n"
    "PidFile %s/sshd.pid\n"
    "PermitRootLogin prohibit-password\n"
    "AllowTcpForwarding no\n"
    "X11Forwarding no\n"
    "MaxStartups 100\n"
    "MaxSessions 100\n",
    port, sshd.dir, sshd.dir, sshd.dir);

  return g_file_set_contents (path, text, -1, NULL);
}

/* Starts sshd, or sets sshd.skip_reason. */
static void
sshd_start (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *config = NULL, *host_key = NULL, *pub = NULL, *log = NULL;
  g_autofree char *pub_text = NULL, *auth = NULL;
  g_autofree char *ssh = g_find_program_in_path ("ssh");
  g_autofree char *keygen = g_find_program_in_path ("ssh-keygen");
  guint16 port;

  if (!g_file_test (SSHD, G_FILE_TEST_IS_EXECUTABLE) || ssh == NULL || keygen == NULL)
    {
      sshd.skip_reason = g_strdup ("OpenSSH (" SSHD ", ssh, ssh-keygen) is not installed");
      return;
    }
  sshd.dir = g_dir_make_tmp ("fm-test-sshd-XXXXXX", &error);
  if (sshd.dir == NULL)
    {
      sshd.skip_reason = g_strdup_printf ("no temporary directory: %s", error->message);
      return;
    }
  host_key = g_build_filename (sshd.dir, "host_key", NULL);
  sshd.key = g_build_filename (sshd.dir, "client_key", NULL);
  pub = g_strconcat (sshd.key, ".pub", NULL);
  auth = g_build_filename (sshd.dir, "authorized_keys", NULL);
  config = g_build_filename (sshd.dir, "sshd_config", NULL);
  log = g_build_filename (sshd.dir, "sshd.log", NULL);
  port = free_port ();
  sshd.port = g_strdup_printf ("%u", port);

  /* sshd checks that its privilege separation directory exists. */
  g_mkdir_with_parents ("/run/sshd", 0755);
  if (port == 0 ||
      !run ((const char *[]) { "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", host_key, NULL }) ||
      !run ((const char *[]) { "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", sshd.key, NULL }) ||
      !g_file_get_contents (pub, &pub_text, NULL, NULL) ||
      !g_file_set_contents (auth, pub_text, -1, NULL) ||
      !write_config (config, port))
    {
      sshd.skip_reason = g_strdup ("could not make the keys and the configuration of sshd");
      return;
    }

  {
    const char *argv[] = { SSHD, "-D", "-e", "-f", config, "-E", log, NULL };

    if (!g_spawn_async (NULL, (char **) argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD,
                        die_with_parent, NULL, &sshd.pid, &error))
      {
        sshd.skip_reason = g_strdup_printf ("could not start sshd: %s", error->message);
        return;
      }
  }
  for (int i = 0; i < 500 && !port_open (port); i++)
    {
      if (waitpid (sshd.pid, NULL, WNOHANG) == sshd.pid)
        {
          g_autofree char *text = NULL;

          g_file_get_contents (log, &text, NULL, NULL);
          sshd.pid = 0;
          sshd.skip_reason = g_strdup_printf ("sshd exited at once: %s", text ? g_strstrip (text) : "");
          return;
        }
      g_usleep (10000);
    }
  if (!port_open (port))
    sshd.skip_reason = g_strdup ("sshd did not listen within 5 s");
}

static void
rm_rf (const char *path)
{
  g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *child = g_build_filename (path, name, NULL);

      g_unlink (child);
    }
  g_rmdir (path);
}

static void
sshd_stop (void)
{
  if (sshd.pid > 0)
    {
      kill (sshd.pid, SIGTERM);
      waitpid (sshd.pid, NULL, 0);
      sshd.pid = 0;
    }
  if (sshd.dir != NULL)
    rm_rf (sshd.dir);
  g_clear_pointer (&sshd.dir, g_free);
  g_clear_pointer (&sshd.key, g_free);
  g_clear_pointer (&sshd.port, g_free);
  g_clear_pointer (&sshd.skip_reason, g_free);
}

static gboolean
skip_without_sshd (void)
{
  if (sshd.skip_reason == NULL)
    return FALSE;
  g_test_skip_printf ("sshd could not be started: %s", sshd.skip_reason);
  return TRUE;
}

/* ssh to the test's sshd, and nothing of the user's own configuration. */
static void
set_launcher (FmMapper *mapper)
{
  const char *launcher[] = {
    "ssh", "-F", "/dev/null", "-T",
    "-p", sshd.port, "-i", sshd.key, "-o", "IdentitiesOnly=yes",
    "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
    "-o", "ConnectTimeout=5",
    NULL
  };

  fm_mapper_set_launcher (mapper, launcher);
}

static FmMapper *
remote_mapper (FmFunction  func,
               const char *hosts)
{
  FmMapper *mapper = fm_mapper_new_for_function (func);

  g_assert_nonnull (mapper);
  set_launcher (mapper);
  fm_mapper_set_hosts (mapper, hosts);
  return mapper;
}

/* Runs @n remote_square tasks of @delay_ms on @mapper; checks the values
 * and their order, and counts the results computed over ssh. */
static guint
check_squares (FmMapper *mapper,
               guint     n,
               guint32   delay_ms,
               FmMap   **map_out)
{
  g_autoptr(FmMap) map = fm_mapper_map (mapper, NULL);
  g_autoptr(GError) error = NULL;
  GVariant *value;
  guint64 index, expected = 0;
  guint remote = 0;

  for (gint64 i = 0; i < n; i++)
    fm_map_push (map, g_variant_new ("(xu)", i, delay_ms));
  fm_map_close (map);

  while ((value = fm_map_next (map, &index, &error)) != NULL)
    {
      gint64 square;
      gboolean ssh;

      g_variant_get (value, "(xb)", &square, &ssh);
      g_assert_cmpuint (index, ==, expected);
      g_assert_cmpint (square, ==, (gint64) expected * (gint64) expected);
      remote += ssh;
      expected++;
      g_variant_unref (value);
    }
  g_assert_no_error (error);
  g_assert_cmpuint (expected, ==, n);
  if (map_out != NULL)
    *map_out = g_steal_pointer (&map);
  return remote;
}

/* ---- tests ---------------------------------------------------------- */

static void
test_hosts_property (void)
{
  g_autoptr(FmMapper) mapper = fm_mapper_new_for_function (remote_square);
  g_autoptr(FmMap) map = NULL;
  g_autoptr(GError) error = NULL;
  const char * const *launcher = fm_mapper_get_launcher (mapper);
  g_autoptr(GVariant) expected = NULL;
  GVariant *value;
  guint64 index;

  g_assert_null (fm_mapper_get_hosts (mapper));
  g_assert_cmpstr (launcher[0], ==, "ssh");
  g_assert_null (fm_mapper_get_forward_env (mapper));

  /* Only this machine: one per core, or as many as the entry says. */
  fm_mapper_set_hosts (mapper, ":");
  map = fm_mapper_map (mapper, NULL);
  g_assert_cmpuint (fm_map_get_n_workers (map), ==, g_get_num_processors ());
  g_clear_object (&map);

  fm_mapper_set_hosts (mapper, " 3/: ,, 2/:");
  fm_mapper_set_threads_limit (mapper, 4);
  map = fm_mapper_map (mapper, NULL);
  g_assert_cmpuint (fm_map_get_n_workers (map), ==, 4);
  fm_map_push (map, g_variant_new ("(xu)", (gint64) 7, (guint32) 0));
  fm_map_close (map);
  value = fm_map_next (map, &index, &error);
  g_assert_no_error (error);
  expected = g_variant_ref_sink (g_variant_new ("(xb)", (gint64) 49, FALSE));
  g_assert_true (g_variant_equal (value, expected));
  g_variant_unref (value);
  g_clear_object (&map);

  /* A list that cannot be read fails the map, and says why. */
  fm_mapper_set_hosts (mapper, "0/node1");
  map = fm_mapper_map (mapper, NULL);
  g_assert_null (fm_map_next (map, &index, &error));
  g_assert_error (error, FM_ERROR, FM_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "0/node1"));
  g_clear_error (&error);
  g_clear_object (&map);

  fm_mapper_set_hosts (mapper, "-oProxyCommand=evil");
  map = fm_mapper_map (mapper, NULL);
  g_assert_null (fm_map_next (map, &index, &error));
  g_assert_error (error, FM_ERROR, FM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_clear_object (&map);

  /* NULL and "" are the default. */
  fm_mapper_set_hosts (mapper, "");
  g_assert_null (fm_mapper_get_hosts (mapper));
  fm_mapper_set_launcher (mapper, NULL);
  g_assert_cmpstr (fm_mapper_get_launcher (mapper)[0], ==, "ssh");
}

static void
test_same_results (void)
{
  g_autoptr(FmMapper) local = NULL;
  g_autoptr(FmMapper) remote = NULL;
  g_autoptr(FmMapper) mixed = NULL;
  g_autoptr(FmMap) map = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *path = NULL;
  GVariant *value;
  guint64 index, n;
  guint n_remote;

  if (skip_without_sshd ())
    return;

  local = fm_mapper_new_for_function (remote_square);
  g_assert_cmpuint (check_squares (local, 200, 1, NULL), ==, 0);

  remote = remote_mapper (remote_square, "2/127.0.0.1");
  g_assert_cmpuint (check_squares (remote, 200, 1, NULL), ==, 200);

  /* One worker here and one over ssh, each with two threads: both
   * compute some (the tasks here wait for one over ssh). */
  dir = g_dir_make_tmp ("fm-remote-XXXXXX", NULL);
  g_assert_nonnull (dir);
  path = g_build_filename (dir, "ran-over-ssh", NULL);
  mixed = remote_mapper (square_once_both_run, "1/127.0.0.1, 1/:");
  fm_mapper_set_threads_limit (mixed, 4);
  map = fm_mapper_map (mixed, NULL);
  for (gint64 i = 0; i < 60; i++)
    fm_map_push (map, g_variant_new ("(xs)", i, path));
  fm_map_close (map);
  n_remote = 0;
  for (n = 0; (value = fm_map_next (map, &index, &error)) != NULL; n++)
    {
      gint64 square;
      gboolean ssh;

      g_variant_get (value, "(xb)", &square, &ssh);
      g_assert_cmpuint (index, ==, n);
      g_assert_cmpint (square, ==, (gint64) (n * n));
      n_remote += ssh;
      g_variant_unref (value);
    }
  g_assert_no_error (error);
  g_assert_cmpuint (n, ==, 60);
  g_test_message ("%u of 60 computed over ssh", n_remote);
  g_assert_cmpuint (n_remote, >, 0);
  g_assert_cmpuint (n_remote, <, 60);
  g_unlink (path);
  g_rmdir (dir);
}

/* Points fd 2 at a file while @func runs; returns what was written. */
static char *
capture_stderr (void (*func) (gpointer),
                gpointer data)
{
  g_autofree char *path = NULL;
  char *text = NULL;
  int saved = dup (STDERR_FILENO);
  int fd = g_file_open_tmp ("fm-test-stderr-XXXXXX", &path, NULL);

  g_assert_cmpint (fd, >=, 0);
  fflush (stderr);
  dup2 (fd, STDERR_FILENO);
  close (fd);
  func (data);
  fflush (stderr);
  dup2 (saved, STDERR_FILENO);
  close (saved);
  g_assert_true (g_file_get_contents (path, &text, NULL, NULL));
  g_unlink (path);
  return text;
}

static void
run_env_map (gpointer data)
{
  FmMapper *mapper = data;
  g_autoptr(FmMap) map = fm_mapper_map (mapper, NULL);
  g_autoptr(GError) error = NULL;
  GVariant *value;
  guint64 index;
  guint n = 0;

  for (gint64 i = 0; i < 4; i++)
    fm_map_push (map, g_variant_new_int64 (i));
  fm_map_close (map);
  while ((value = fm_map_next (map, &index, &error)) != NULL)
    {
      g_assert_cmpstr (g_variant_get_string (value, NULL), ==, "it's a \"value\" with $pace");
      g_variant_unref (value);
      n++;
    }
  g_assert_no_error (error);
  g_assert_cmpuint (n, ==, 4);
}

static void
test_env_and_stderr (void)
{
  g_autoptr(FmMapper) mapper = NULL;
  g_autofree char *err = NULL;
  const char *names[] = { "FM_TEST_REMOTE_VAR", "FM_TEST_NOT_SET", NULL };

  if (skip_without_sshd ())
    return;

  mapper = remote_mapper (remote_env, "1/127.0.0.1");
  fm_mapper_set_forward_env (mapper, names);
  g_assert_cmpstr (fm_mapper_get_forward_env (mapper)[0], ==, "FM_TEST_REMOTE_VAR");

  err = capture_stderr (run_env_map, mapper);
  g_test_message ("stderr: %s", err);
  for (int i = 0; i < 4; i++)
    {
      g_autofree char *line = g_strdup_printf ("[127.0.0.1] task %d says hello on stderr\n", i);

      g_assert_nonnull (strstr (err, line));
    }
}

static void
test_connection_dropped (void)
{
  g_autoptr(FmMapper) mapper = NULL;
  g_autoptr(FmMap) map = NULL;
  g_autoptr(GPtrArray) values = g_ptr_array_new_with_free_func ((GDestroyNotify) g_variant_unref);
  g_autoptr(GError) error = NULL;
  GVariant *value;
  guint64 index;
  GPid victim;
  const guint n = 40;

  if (skip_without_sshd ())
    return;

  /* Two ssh workers with two threads each: both hold tasks. */
  mapper = remote_mapper (remote_square, "2/127.0.0.1");
  fm_mapper_set_threads_limit (mapper, 4);
  map = fm_mapper_map (mapper, NULL);
  for (gint64 i = 0; i < n; i++)
    fm_map_push (map, g_variant_new ("(xu)", i, (guint32) 100));
  fm_map_close (map);

  /* Once work is under way, cut the first worker's connection: kill its
   * ssh client. */
  value = fm_map_next (map, &index, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (index, ==, 0);
  g_ptr_array_add (values, value);
  victim = fm_map_get_worker_pid (map, 0);
  g_assert_cmpint (victim, >, 0);
  g_assert_cmpint (kill (victim, SIGKILL), ==, 0);

  while ((value = fm_map_next (map, &index, &error)) != NULL)
    {
      g_assert_cmpuint (index, ==, values->len);
      g_ptr_array_add (values, value);
    }
  g_assert_no_error (error);
  g_assert_cmpuint (values->len, ==, n);
  for (guint i = 0; i < n; i++)
    {
      gint64 square;
      gboolean ssh;

      g_variant_get (values->pdata[i], "(xb)", &square, &ssh);
      g_assert_cmpint (square, ==, (gint64) i * i);
      g_assert_true (ssh);
    }
}

static GString *debug_log;
G_LOCK_DEFINE_STATIC (debug_log);

static GLogWriterOutput
record_writer (GLogLevelFlags   level,
               const GLogField *fields,
               gsize            n_fields,
               gpointer         user_data)
{
  for (gsize i = 0; i < n_fields; i++)
    if (g_strcmp0 (fields[i].key, "MESSAGE") == 0 && fields[i].length < 0)
      {
        G_LOCK (debug_log);
        if (debug_log != NULL)
          g_string_append_printf (debug_log, "%s\n", (const char *) fields[i].value);
        G_UNLOCK (debug_log);
      }
  return g_log_writer_default (level, fields, n_fields, user_data);
}

static void
run_unreachable_map (gpointer data)
{
  FmMapper *mapper = data;
  guint n_remote = check_squares (mapper, 20, 20, NULL);

  g_assert_cmpuint (n_remote, ==, 20);
}

static void
test_unreachable_host (void)
{
  g_autoptr(FmMapper) mapper = NULL;
  g_autoptr(FmMapper) only = NULL;
  g_autoptr(FmMap) map = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *err = NULL;
  g_autofree char *log = NULL;
  guint64 index;

  if (skip_without_sshd ())
    return;

  /* One host refuses the connection; the map completes on the other. */
  G_LOCK (debug_log);
  debug_log = g_string_new (NULL);
  G_UNLOCK (debug_log);
  mapper = remote_mapper (remote_square, "2/" UNREACHABLE ",1/127.0.0.1");
  err = capture_stderr (run_unreachable_map, mapper);
  G_LOCK (debug_log);
  log = g_string_free (g_steal_pointer (&debug_log), FALSE);
  G_UNLOCK (debug_log);
  g_test_message ("debug: %s\nstderr: %s", log, err);
  g_assert_nonnull (strstr (log, "on host “" UNREACHABLE "”"));
  g_assert_nonnull (strstr (err, "[" UNREACHABLE "] "));

  /* When no host can be reached, the map fails and says which. */
  only = remote_mapper (remote_square, "1/" UNREACHABLE);
  map = fm_mapper_map (only, NULL);
  fm_map_push (map, g_variant_new ("(xu)", (gint64) 1, (guint32) 0));
  fm_map_close (map);
  g_assert_null (fm_map_next (map, &index, &error));
  g_assert_error (error, FM_ERROR, FM_ERROR_WORKER_FAILED);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, "on host “" UNREACHABLE "”"));
  g_assert_nonnull (strstr (error->message, "Connection refused"));
}

int
main (int    argc,
      char **argv)
{
  int status;

  fm_init (&argc, &argv);
  /* For /remote/env-and-stderr; set before any thread runs. */
  g_setenv ("FM_TEST_REMOTE_VAR", "it's a \"value\" with $pace", TRUE);
  g_unsetenv ("FM_TEST_NOT_SET");
  g_log_set_writer_func (record_writer, NULL, NULL);
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/remote/hosts-property", test_hosts_property);
  g_test_add_func ("/remote/same-results", test_same_results);
  g_test_add_func ("/remote/env-and-stderr", test_env_and_stderr);
  g_test_add_func ("/remote/connection-dropped", test_connection_dropped);
  g_test_add_func ("/remote/unreachable-host", test_unreachable_host);

  sshd_start ();
  if (sshd.skip_reason != NULL)
    g_test_message ("sshd could not be started: %s", sshd.skip_reason);
  status = g_test_run ();
  sshd_stop ();
  return status;
}
