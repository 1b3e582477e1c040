/* test-reexec.c: fm_init() in a PIE and in a non-PIE program
 *
 * Built twice (see meson.build): the re-executed copy finds the function
 * by its offset from the load bias, which is 0 for a non-PIE executable.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <string.h>

#include <fastmap.h>

static GVariant *
cube (GVariant  *task,
      gpointer   user_data,
      GError   **error)
{
  gint64 x = g_variant_get_int64 (task);

  return g_variant_new_int64 (x * x * x);
}

static void
test_reexec_maps (void)
{
  g_autoptr(FmMapper) mapper = fm_mapper_new_for_function (cube);
  g_autoptr(FmMap) map = fm_mapper_map (mapper, NULL);
  g_autoptr(GError) error = NULL;
  GVariant *value;
  guint64 index, n = 0;

  for (gint64 i = 0; i < 500; i++)
    fm_map_push (map, g_variant_new_int64 (i));
  fm_map_close (map);
  while ((value = fm_map_next (map, &index, &error)) != NULL)
    {
      g_assert_cmpuint (index, ==, n);
      g_assert_cmpint (g_variant_get_int64 (value), ==, (gint64) (n * n * n));
      g_variant_unref (value);
      n++;
    }
  g_assert_no_error (error);
  g_assert_cmpuint (n, ==, 500);
}

/* A copy told of a function in another build refuses to call anything. */
static void
check_refused (const char *spec,
               const char *expected)
{
  g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDERR_PIPE |
                                                                       G_SUBPROCESS_FLAGS_STDIN_PIPE);
  g_autoptr(GSubprocess) proc = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *exe = g_file_read_link ("/proc/self/exe", NULL);
  g_autofree char *err = NULL;

  g_subprocess_launcher_setenv (launcher, "FASTMAP_WORKER_FUNCTION", spec, TRUE);
  proc = g_subprocess_launcher_spawn (launcher, &error, exe, NULL);
  g_assert_no_error (error);
  g_subprocess_communicate_utf8 (proc, NULL, NULL, NULL, &err, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_exited (proc));
  g_assert_cmpint (g_subprocess_get_exit_status (proc), ==, 1);
  g_test_message ("refused: %s", err);
  g_assert_nonnull (strstr (err, expected));
}

static void
test_other_build_refused (void)
{
  check_refused ("10:0123456789abcdef:", "another build");
  check_refused ("10:0123456789abcdef:/no/such/object.so", "has no object");
  check_refused ("not-hex:00:", "Malformed");
  check_refused ("garbage", "Malformed");
}

int
main (int    argc,
      char **argv)
{
  fm_init (&argc, &argv);
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/reexec/maps", test_reexec_maps);
  g_test_add_func ("/reexec/other-build-refused", test_other_build_refused);

  return g_test_run ();
}
