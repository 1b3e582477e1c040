/* test-mapper.c: FmMapper's properties and constructors
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <fastmap.h>

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

  return g_test_run ();
}
