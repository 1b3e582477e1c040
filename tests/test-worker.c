/* test-worker.c: a worker program for fm_mapper_new(), and misbehaving ones
 *
 * Usage: fm-test-worker MODE
 *   square       serves x → x * x with fm_worker_serve()
 *   reverse      serves bytes → the same bytes reversed with
 *                fm_worker_serve_bytes(); "fail" fails
 *   exit-early   exits with status 3 before saying anything
 *   few-threads  serves x → x * x after sleeping 1 ms, in a process whose
 *                address space leaves room for only a few dozen threads,
 *                so that the system refuses most of the threads it asks for
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <fastmap.h>

/* AddressSanitizer aborts when it cannot map its own memory for a new
 * thread, instead of letting pthread_create() fail: there the cap would
 * test the sanitizer, so it is left out. */
#if defined(__SANITIZE_ADDRESS__)
# define UNDER_ASAN 1
#elif defined(__has_feature)
# if __has_feature(address_sanitizer)
#  define UNDER_ASAN 1
# endif
#endif

static GVariant *
square (GVariant  *task,
        gpointer   user_data,
        GError   **error)
{
  gint64 x = g_variant_get_int64 (task);

  g_assert (strcmp (user_data, "square") == 0);
  return g_variant_new_int64 (x * x);
}

static GVariant *
sleepy_square (GVariant  *task,
               gpointer   user_data,
               GError   **error)
{
  gint64 x = g_variant_get_int64 (task);

  g_usleep (1000);
  return g_variant_new_int64 (x * x);
}

static GByteArray *
reverse (const guint8  *task,
         gsize          n,
         gpointer       user_data,
         GError       **error)
{
  GByteArray *out;

  g_assert (strcmp (user_data, "reverse") == 0);
  if (n == 4 && memcmp (task, "fail", 4) == 0)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "asked to fail");
      return NULL;
    }
  out = g_byte_array_sized_new (n);
  for (gsize i = 0; i < n; i++)
    g_byte_array_append (out, &task[n - 1 - i], 1);
  return out;
}

#ifndef UNDER_ASAN
/* Caps the address space at what is mapped now plus @headroom bytes:
 * each thread's stack takes 8 MiB of it (sanitizers map terabytes of
 * shadow up front, so a fixed cap would not do). */
static void
limit_address_space (guint64 headroom)
{
  g_autofree char *status = NULL;
  const char *line;
  struct rlimit rl;
  guint64 vm_kb;

  if (!g_file_get_contents ("/proc/self/status", &status, NULL, NULL) ||
      (line = strstr (status, "VmSize:")) == NULL ||
      sscanf (line, "VmSize: %" G_GUINT64_FORMAT, &vm_kb) != 1)
    g_error ("fm-test-worker: cannot read VmSize");
  rl.rlim_cur = rl.rlim_max = vm_kb * 1024 + headroom;
  if (setrlimit (RLIMIT_AS, &rl) < 0)
    g_error ("fm-test-worker: setrlimit: %s", g_strerror (errno));
}
#endif

int
main (int    argc,
      char **argv)
{
  g_autoptr(GError) error = NULL;
  const char *mode = argc > 1 ? argv[1] : "square";

  if (strcmp (mode, "exit-early") == 0)
    return 3;

  if (strcmp (mode, "reverse") == 0)
    {
      if (!fm_worker_serve_bytes (reverse, (gpointer) "reverse", &error))
        {
          g_printerr ("fm-test-worker: %s\n", error->message);
          return 1;
        }
      return 0;
    }

  if (strcmp (mode, "few-threads") == 0)
    {
#ifndef UNDER_ASAN
      limit_address_space (256 * 1024 * 1024);
#endif
      if (!fm_worker_serve (sleepy_square, NULL, &error))
        {
          g_printerr ("fm-test-worker: %s\n", error->message);
          return 1;
        }
      return 0;
    }

  if (!fm_worker_serve (square, (gpointer) "square", &error))
    {
      g_printerr ("fm-test-worker: %s\n", error->message);
      return 1;
    }
  return 0;
}
