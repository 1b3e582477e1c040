/* test-map.c: mapping functions over tasks, end to end
 *
 * The functions mapped here live in this program: fm_init() at the top of
 * main() turns the re-executed copies into workers.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include <fastmap.h>

#include "fm-test-util.h"

#define TEST_ERROR (g_quark_from_static_string ("fm-test-error"))

/* ---- functions the workers run ------------------------------------- */

/* (x, delay_ms) → x * x, after sleeping delay_ms. */
static GVariant *
slow_square (GVariant  *task,
             gpointer   user_data,
             GError   **error)
{
  gint64 x;
  guint32 delay_ms;

  g_variant_get (task, "(xu)", &x, &delay_ms);
  g_usleep (delay_ms * 1000);
  return g_variant_new_int64 (x * x);
}

static GVariant *
twice (GVariant  *task,
       gpointer   user_data,
       GError   **error)
{
  return g_variant_new_int64 (2 * g_variant_get_int64 (task));
}

static GVariant *
identity (GVariant  *task,
          gpointer   user_data,
          GError   **error)
{
  return g_variant_ref (task);
}

/* x → 3x, and task 0 only once the file that FM_TEST_RELEASE names
 * exists (60 s at most): the window test's task held in its worker. */
static GVariant *
held_zero (GVariant  *task,
           gpointer   user_data,
           GError   **error)
{
  gint64 x = g_variant_get_int64 (task);

  for (guint i = 0; x == 0 && i < 60000 && !g_file_test (g_getenv ("FM_TEST_RELEASE"), G_FILE_TEST_EXISTS); i++)
    g_usleep (1000);
  return g_variant_new_int64 (3 * x);
}

/* held_zero(), but every other task waits 200 µs: not a tiny task. */
static GVariant *
held_zero_waits (GVariant  *task,
                 gpointer   user_data,
                 GError   **error)
{
  if (g_variant_get_int64 (task) != 0)
    g_usleep (200);
  return held_zero (task, user_data, error);
}

/* x → 3x, after computing for 5 µs. */
static GVariant *
spun_triple (GVariant  *task,
             gpointer   user_data,
             GError   **error)
{
  fm_test_spin_us (5);
  return g_variant_new_int64 (3 * g_variant_get_int64 (task));
}

/* held_zero(), but its results are strings. */
static GVariant *
held_zero_string (GVariant  *task,
                  gpointer   user_data,
                  GError   **error)
{
  g_autoptr(GVariant) number = held_zero (task, user_data, error);

  return g_variant_new_take_string (g_strdup_printf ("%" G_GINT64_FORMAT, g_variant_get_int64 (number)));
}

/* delay_ms → the worker's pid, after sleeping. */
static GVariant *
worker_pid (GVariant  *task,
            gpointer   user_data,
            GError   **error)
{
  g_usleep (g_variant_get_uint32 (task) * 1000);
  return g_variant_new_int64 (getpid ());
}

/* delay_ms → (start, end) in monotonic µs, a clock all processes share. */
static GVariant *
interval (GVariant  *task,
          gpointer   user_data,
          GError   **error)
{
  gint64 start = g_get_monotonic_time ();

  g_usleep (g_variant_get_uint32 (task) * 1000);
  return g_variant_new ("(xx)", start, g_get_monotonic_time ());
}

static GVariant *
fail_on_five (GVariant  *task,
              gpointer   user_data,
              GError   **error)
{
  gint64 x = g_variant_get_int64 (task);

  if (x == 5)
    {
      g_set_error (error, TEST_ERROR, 42, "five is not welcome");
      return NULL;
    }
  return g_variant_new_int64 (x * x);
}

static GVariant *
chatty (GVariant  *task,
        gpointer   user_data,
        GError   **error)
{
  gint64 x = g_variant_get_int64 (task);

  /* Both stdio and the raw fd 1: neither may reach the protocol. */
  printf ("chatty %" G_GINT64_FORMAT ": some text on stdout\n", x);
  fflush (stdout);
  if (write (1, "\0\0\0\0\3garbage", 12) < 0)
    return NULL;
  return g_variant_new_int64 (x + 1);
}

static GVariant *
returns_null (GVariant  *task,
              gpointer   user_data,
              GError   **error)
{
  return NULL;
}

/* ---- helpers -------------------------------------------------------- */

/* Takes every result, which must all succeed, into an array by arrival. */
static GPtrArray *
take_all (FmMap  *map,
          GArray *indexes)
{
  GPtrArray *values = g_ptr_array_new_with_free_func ((GDestroyNotify) g_variant_unref);
  GVariant *value;
  guint64 index;
  GError *error = NULL;

  while ((value = fm_map_next (map, &index, &error)) != NULL)
    {
      g_ptr_array_add (values, value);
      if (indexes != NULL)
        g_array_append_val (indexes, index);
    }
  g_assert_no_error (error);
  return values;
}

/* Takes every result with fm_map_next_array(), which must all succeed,
 * each array beginning where the last one ended unless @ordered is
 * FALSE. Returns the results in the order they came (their indexes in
 * @indexes, if given) and sets @max_len to the largest array's length. */
static GPtrArray *
take_all_arrays (FmMap    *map,
                 gboolean  ordered,
                 GArray   *indexes,
                 gsize    *max_len)
{
  GPtrArray *values = g_ptr_array_new_with_free_func ((GDestroyNotify) g_variant_unref);
  GVariant *array;
  guint64 first;
  GError *error = NULL;

  *max_len = 0;
  while ((array = fm_map_next_array (map, &first, &error)) != NULL)
    {
      gsize n = g_variant_n_children (array);

      g_assert_true (g_variant_is_of_type (array, G_VARIANT_TYPE_ARRAY));
      g_assert_cmpuint (n, >, 0);
      if (ordered)
        g_assert_cmpuint (first, ==, values->len);
      for (gsize k = 0; k < n; k++)
        {
          guint64 index = first + k;

          g_ptr_array_add (values, g_variant_get_child_value (array, k));
          if (indexes != NULL)
            g_array_append_val (indexes, index);
        }
      *max_len = MAX (*max_len, n);
      g_variant_unref (array);
    }
  g_assert_no_error (error);
  g_assert_null (fm_map_next_array (map, NULL, &error));
  g_assert_no_error (error);
  return values;
}

/* ---- tests ---------------------------------------------------------- */

static void
test_order_random_delays (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (slow_square, 2);
  g_autoptr(FmMap) map = NULL;
  g_autoptr(GArray) indexes = g_array_new (FALSE, FALSE, sizeof (guint64));
  g_autoptr(GPtrArray) values = NULL;
  GRand *rand = g_rand_new_with_seed (g_test_rand_int ());

  map = fm_mapper_map (mapper, NULL);
  for (gint64 i = 0; i < 200; i++)
    fm_map_push (map, g_variant_new ("(xu)", i, g_rand_int_range (rand, 0, 30)));
  fm_map_close (map);
  g_rand_free (rand);

  values = take_all (map, indexes);
  g_assert_cmpuint (values->len, ==, 200);
  for (guint i = 0; i < values->len; i++)
    {
      g_assert_cmpuint (g_array_index (indexes, guint64, i), ==, i);
      g_assert_cmpint (g_variant_get_int64 (values->pdata[i]), ==, (gint64) i * i);
    }
}

static void
test_hundred_thousand (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (twice, 0);
  g_autoptr(FmMap) map = fm_mapper_map (mapper, NULL);
  const guint64 n = 100000;

  for (guint64 i = 0; i < n; i++)
    fm_map_push (map, g_variant_new_int64 (i));
  fm_map_close (map);

  g_assert_cmpuint (fm_test_take_twice (map), ==, n);
}

static void
test_n_processes (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (worker_pid, 3);
  g_autoptr(FmMap) map = fm_mapper_map (mapper, NULL);
  g_autoptr(GHashTable) seen = g_hash_table_new (NULL, NULL);
  g_autoptr(GPtrArray) values = NULL;

  g_assert_cmpuint (fm_map_get_n_workers (map), ==, 3);
  for (guint i = 0; i < 30; i++)
    fm_map_push (map, g_variant_new_uint32 (20));
  fm_map_close (map);

  values = take_all (map, NULL);
  for (guint i = 0; i < values->len; i++)
    g_hash_table_add (seen, GINT_TO_POINTER (g_variant_get_int64 (values->pdata[i])));
  g_assert_cmpuint (g_hash_table_size (seen), ==, 3);
  g_assert_false (g_hash_table_contains (seen, GINT_TO_POINTER (getpid ())));
}

static int
compare_events (gconstpointer a,
                gconstpointer b)
{
  const gint64 *x = a, *y = b;

  /* At one instant, an end comes before a start: touching is no overlap. */
  if (x[0] != y[0])
    return x[0] < y[0] ? -1 : 1;
  return (int) (x[1] - y[1]);
}

static guint
max_overlap (GPtrArray *intervals)
{
  g_autoptr(GArray) events = g_array_new (FALSE, FALSE, 2 * sizeof (gint64));
  guint now = 0, max = 0;

  for (guint i = 0; i < intervals->len; i++)
    {
      gint64 start, end;
      gint64 e[2][2];

      g_variant_get (intervals->pdata[i], "(xx)", &start, &end);
      e[0][0] = start; e[0][1] = +1;
      e[1][0] = end;   e[1][1] = -1;
      g_array_append_vals (events, e, 2);
    }
  g_array_sort (events, compare_events);
  for (guint i = 0; i < events->len; i++)
    {
      const gint64 *e = &g_array_index (events, gint64, 2 * i);

      now += e[1];
      max = MAX (max, now);
    }
  return max;
}

static void
test_threads_limit (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (interval, 2);
  g_autoptr(FmMap) map = NULL;
  g_autoptr(GPtrArray) values = NULL;

  fm_mapper_set_threads_limit (mapper, 3);
  map = fm_mapper_map (mapper, NULL);
  for (guint i = 0; i < 15; i++)
    fm_map_push (map, g_variant_new_uint32 (60));
  fm_map_close (map);

  values = take_all (map, NULL);
  g_assert_cmpuint (values->len, ==, 15);
  /* Never more than the limit; and the limit is used, not fewer. */
  g_assert_cmpuint (max_overlap (values), ==, 3);
}

/* Maps @func, which returns its task's (start, end), over 64 tasks of
 * @delay_ms on two workers with no threads limit: all must overlap. */
static void
check_all_waits_overlap (FmFunction func,
                         guint32    delay_ms)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (func, 2);
  g_autoptr(FmMap) map = fm_mapper_map (mapper, NULL);
  g_autoptr(GPtrArray) values = NULL;

  for (guint i = 0; i < 64; i++)
    fm_map_push (map, g_variant_new_uint32 (delay_ms));
  fm_map_close (map);

  values = take_all (map, NULL);
  g_assert_cmpuint (max_overlap (values), ==, 64);
}

static void
test_no_threads_limit (void)
{
  /* The seed's default: one thread per task in flight, all waits overlap. */
  check_all_waits_overlap (interval, 300);
}

static void
test_unordered (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (slow_square, 2);
  g_autoptr(FmMap) map = NULL;
  g_autoptr(GArray) indexes = g_array_new (FALSE, FALSE, sizeof (guint64));
  g_autoptr(GPtrArray) values = NULL;
  g_autoptr(GHashTable) seen = g_hash_table_new (g_int64_hash, g_int64_equal);

  fm_mapper_set_ordered (mapper, FALSE);
  map = fm_mapper_map (mapper, NULL);
  /* Task 0 takes longest: in order, it would come first. */
  for (gint64 i = 0; i < 20; i++)
    fm_map_push (map, g_variant_new ("(xu)", i, (guint32) (i == 0 ? 600 : 10)));
  fm_map_close (map);

  values = take_all (map, indexes);
  g_assert_cmpuint (values->len, ==, 20);
  g_assert_cmpuint (g_array_index (indexes, guint64, 19), ==, 0);
  for (guint i = 0; i < values->len; i++)
    {
      guint64 *index = &g_array_index (indexes, guint64, i);

      g_assert_cmpint (g_variant_get_int64 (values->pdata[i]), ==, (gint64) (*index * *index));
      g_assert_false (g_hash_table_contains (seen, index));
      g_hash_table_add (seen, index);
    }
}

static void
test_failing_task (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (fail_on_five, 2);
  g_autoptr(FmMap) map = fm_mapper_map (mapper, NULL);
  guint64 expected = 0;

  for (gint64 i = 0; i < 10; i++)
    fm_map_push (map, g_variant_new_int64 (i));
  fm_map_close (map);

  for (;;)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GVariant) value = NULL;
      guint64 index;

      value = fm_map_next (map, &index, &error);
      if (value == NULL && error == NULL)
        break;
      g_assert_cmpuint (index, ==, expected);
      if (index == 5)
        {
          g_assert_null (value);
          g_assert_error (error, TEST_ERROR, 42);
          g_assert_cmpstr (error->message, ==, "five is not welcome");
        }
      else
        {
          g_assert_no_error (error);
          g_assert_cmpint (g_variant_get_int64 (value), ==, (gint64) (index * index));
        }
      expected++;
    }
  g_assert_cmpuint (expected, ==, 10);
}

static void
test_function_returns_null (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (returns_null, 1);
  g_autoptr(FmMap) map = fm_mapper_map (mapper, NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) value = NULL;
  guint64 index = 99;

  fm_map_push (map, g_variant_new_int64 (1));
  fm_map_close (map);
  value = fm_map_next (map, &index, &error);
  g_assert_null (value);
  g_assert_error (error, FM_ERROR, FM_ERROR_INVALID_ARGUMENT);
  g_assert_cmpuint (index, ==, 0);
  g_clear_error (&error);
  g_assert_null (fm_map_next (map, NULL, &error));
  g_assert_no_error (error);
}

static void
check_squares (FmMapper *mapper,
               guint     n)
{
  g_autoptr(FmMap) map = fm_mapper_map (mapper, NULL);
  g_autoptr(GPtrArray) values = NULL;

  for (gint64 i = 0; i < n; i++)
    fm_map_push (map, g_variant_new_int64 (i));
  fm_map_close (map);
  values = take_all (map, NULL);
  g_assert_cmpuint (values->len, ==, n);
  for (guint i = 0; i < n; i++)
    g_assert_cmpint (g_variant_get_int64 (values->pdata[i]), ==, (gint64) i * i);
}

static void
test_module_worker (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(FmMapper) mapper = fm_mapper_new_for_module (FM_TEST_MODULE, "fm_test_square", &error);

  g_assert_no_error (error);
  check_squares (mapper, 1000);
}

static void
test_argv_worker (void)
{
  g_autoptr(FmMapper) mapper = fm_mapper_new ((const char * const[]) { FM_TEST_WORKER, "square", NULL });

  check_squares (mapper, 1000);
}

static GVariant *
bytes_task (const char *s, gsize n)
{
  return g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, s, n, 1);
}

/* fm_worker_serve_bytes(): each `ay` task's bytes in, the result's out;
 * a function's error and a task of another type fail at their index. */
static void
test_bytes_worker (void)
{
  g_autoptr(FmMapper) mapper = fm_mapper_new ((const char * const[]) { FM_TEST_WORKER, "reverse", NULL });
  g_autoptr(FmMap) map = NULL;
  g_autofree char *big = g_malloc (1 << 20);
  GVariant *value;
  GError *error = NULL;
  guint64 index, n = 0;

  for (gsize i = 0; i < 1 << 20; i++)
    big[i] = (char) (i % 251);
  fm_mapper_set_n_processes (mapper, 2);
  map = fm_mapper_map (mapper, NULL);
  fm_map_push (map, bytes_task ("abc", 3));
  fm_map_push (map, bytes_task ("", 0));
  fm_map_push (map, bytes_task ("fail", 4));
  fm_map_push (map, g_variant_new_int64 (7));
  fm_map_push (map, bytes_task (big, 1 << 20));
  for (guint i = 0; i < 200; i++)
    fm_map_push (map, g_variant_new_take_string (g_strdup_printf ("%u", i)));
  fm_map_push (map, bytes_task ("xy", 2));
  fm_map_close (map);

  while ((value = fm_map_next (map, &index, &error)) != NULL || error != NULL)
    {
      gsize len = 0;
      const char *bytes = NULL;

      g_assert_cmpuint (index, ==, n);
      n++;
      if (index == 2)
        {
          g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
          g_clear_error (&error);
          continue;
        }
      if (index == 3 || (index >= 5 && index < 205))
        {
          g_assert_error (error, FM_ERROR, FM_ERROR_INVALID_ARGUMENT);
          g_assert_nonnull (strstr (error->message, "not “ay”"));
          g_clear_error (&error);
          continue;
        }
      g_assert_no_error (error);
      g_assert_true (g_variant_is_of_type (value, G_VARIANT_TYPE_BYTESTRING));
      bytes = g_variant_get_fixed_array (value, &len, 1);
      if (index == 0)
        g_assert_cmpmem (bytes, len, "cba", 3);
      else if (index == 1)
        g_assert_cmpuint (len, ==, 0);
      else if (index == 4)
        {
          g_assert_cmpuint (len, ==, 1 << 20);
          for (gsize i = 0; i < len; i++)
            g_assert_cmpint (bytes[i], ==, big[(1 << 20) - 1 - i]);
        }
      else
        g_assert_cmpmem (bytes, len, "yx", 2);
      g_variant_unref (value);
    }
  g_assert_cmpuint (n, ==, 206);
}

typedef struct
{
  guint64 pulled;
  guint64 limit;     /* G_MAXUINT64: endless */
  gboolean destroyed;
} Counter;

static GVariant *
count_source (gpointer   data,
              GError   **error)
{
  Counter *c = data;

  if (c->pulled == c->limit)
    return NULL;
  return g_variant_new_int64 (c->pulled++);
}

static void
counter_destroyed (gpointer data)
{
  ((Counter *) data)->destroyed = TRUE;
}

/* A source is pulled in the consumer's thread, by fm_map_next() or, with
 * @arrays, fm_map_next_array(), never further ahead than the window. */
static void
test_source_window (gconstpointer arrays)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (twice, 2);
  g_autoptr(FmMap) map = NULL;
  Counter c = { 0, 5000, FALSE };
  GError *error = NULL;
  guint64 index, delivered = 0;

  fm_mapper_set_max_in_flight (mapper, 16);
  map = fm_mapper_map (mapper, NULL);
  fm_map_set_source (map, count_source, &c, counter_destroyed);
  g_assert_cmpuint (c.pulled, ==, 0);   /* nothing is pulled before a consumer asks */

  for (;;)
    {
      g_autoptr(GVariant) got = arrays ? fm_map_next_array (map, &index, &error)
                                       : fm_map_next (map, &index, &error);
      gsize n = 1;
      const gint64 *r = NULL;

      if (got == NULL)
        break;
      g_assert_cmpuint (index, ==, delivered);
      if (arrays)
        r = g_variant_get_fixed_array (got, &n, sizeof (gint64));
      for (gsize k = 0; k < n; k++)
        g_assert_cmpint (arrays ? r[k] : g_variant_get_int64 (got), ==,
                         2 * (gint64) (index + k));
      delivered += n;
      /* Never further ahead of the consumer than the window. */
      g_assert_cmpuint (c.pulled - delivered, <=, 16);
    }
  g_assert_no_error (error);
  g_assert_cmpuint (delivered, ==, 5000);
  g_assert_false (c.destroyed);
  g_clear_object (&map);
  g_assert_true (c.destroyed);
}

static void
test_endless_source (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (twice, 2);
  FmMap *map;
  Counter c = { 0, G_MAXUINT64, FALSE };
  GPid pids[2];

  fm_mapper_set_max_in_flight (mapper, 64);
  map = fm_mapper_map (mapper, NULL);
  fm_map_set_source (map, count_source, &c, counter_destroyed);
  for (guint64 i = 0; i < 5000; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GVariant) value = fm_map_next (map, NULL, &error);

      g_assert_no_error (error);
      g_assert_cmpint (g_variant_get_int64 (value), ==, 2 * (gint64) i);
      g_assert_cmpuint (c.pulled, <=, i + 1 + 64);
    }
  pids[0] = fm_map_get_worker_pid (map, 0);
  pids[1] = fm_map_get_worker_pid (map, 1);
  g_assert_cmpint (pids[0], >, 0);
  g_assert_cmpint (pids[1], >, 0);

  /* Dropping the map ends an endless run and its workers. */
  g_object_unref (map);
  g_assert_true (c.destroyed);
  g_assert_true (fm_test_process_gone (pids[0], 5000));
  g_assert_true (fm_test_process_gone (pids[1], 5000));
}

static void
test_function_prints (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (chatty, 2);
  g_autoptr(FmMap) map = fm_mapper_map (mapper, NULL);
  g_autoptr(GPtrArray) values = NULL;

  for (gint64 i = 0; i < 50; i++)
    fm_map_push (map, g_variant_new_int64 (i));
  fm_map_close (map);
  values = take_all (map, NULL);
  g_assert_cmpuint (values->len, ==, 50);
  for (guint i = 0; i < values->len; i++)
    g_assert_cmpint (g_variant_get_int64 (values->pdata[i]), ==, (gint64) i + 1);
}

static void
test_mixed_types (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (identity, 2);
  g_autoptr(FmMap) map = fm_mapper_map (mapper, NULL);
  g_autoptr(GPtrArray) tasks = g_ptr_array_new_with_free_func ((GDestroyNotify) g_variant_unref);
  g_autoptr(GPtrArray) values = NULL;

  /* Runs of one type and changes of type, for every basic type of a
   * fixed size (a worker sends those as bytes) among others. */
  for (guint i = 0; i < 600; i++)
    {
      GVariant *v;

      switch (i % 15 < 10 ? i % 5 : 5 + (i / 15) % 11)
        {
        case 0: v = g_variant_new_int64 (i); break;
        case 1: v = g_variant_new_string ("a string"); break;
        case 2: v = g_variant_new ("(sdb)", "tuple", i / 3.0, i % 2); break;
        case 3: v = g_variant_new_parsed ("{'key': <[1, 2, 3]>}"); break;
        case 4:   /* empty values: a size of 0 is no number's */
          v = i % 2 ? g_variant_new_string ("")
                    : g_variant_new_fixed_array (G_VARIANT_TYPE_INT64, NULL, 0, sizeof (gint64));
          break;
        case 5: v = g_variant_new_boolean (i % 2); break;
        case 6: v = g_variant_new_byte (i % 256); break;
        case 7: v = g_variant_new_int16 (-(gint16) i); break;
        case 8: v = g_variant_new_uint16 (i); break;
        case 9: v = g_variant_new_int32 (-(gint32) i * 1000); break;
        case 10: v = g_variant_new_uint32 (i * 1000); break;
        case 11: v = g_variant_new_handle (i); break;
        case 12: v = g_variant_new_uint64 (G_MAXUINT64 - i); break;
        case 13: v = g_variant_new_double (i / 7.0); break;
        default: v = g_variant_new_int64 (G_MININT64 + i); break;
        }
      g_ptr_array_add (tasks, g_variant_ref_sink (v));
      fm_map_push (map, v);
    }
  fm_map_close (map);

  values = take_all (map, NULL);
  g_assert_cmpuint (values->len, ==, tasks->len);
  for (guint i = 0; i < values->len; i++)
    g_assert_true (g_variant_equal (values->pdata[i], tasks->pdata[i]));
}

/* Three bytes for an `x`: untrusted data of the wrong size, which GLib
 * takes for the value 0 and has no bytes for (g_variant_get_data() gives
 * NULL), as it does for a number read from a corrupted container. */
static const guint8 three_bytes[3] = { 1, 2, 3 };

static GVariant *
number_without_bytes (void)
{
  return g_variant_new_from_data (G_VARIANT_TYPE_INT64, three_bytes, sizeof three_bytes,
                                  FALSE, NULL, NULL);
}

/* x → x, and 1 → a number without bytes. */
static GVariant *
no_bytes_for_one (GVariant  *task,
                  gpointer   user_data,
                  GError   **error)
{
  if (g_variant_get_int64 (task) == 1)
    return number_without_bytes ();
  return g_variant_ref (task);
}

static void
test_numbers_without_bytes (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (no_bytes_for_one, 2);
  g_autoptr(FmMap) map = fm_mapper_map (mapper, NULL);
  g_autoptr(GVariant) task = g_variant_ref_sink (number_without_bytes ());
  g_autoptr(GPtrArray) values = NULL;
  static const gint64 expected[] = { 7, 0, 9, 0, 11 };

  /* GLib's own reading of such a task: 0, of 8 bytes, and none to copy. */
  g_assert_cmpint (g_variant_get_int64 (task), ==, 0);
  g_assert_cmpuint (g_variant_get_size (task), ==, 8);
  g_assert_null (g_variant_get_data (task));

  /* As a task (the parent sends its bytes) and as a result (the worker
   * sends them), between numbers that have theirs: zeros, not a crash. */
  fm_map_push (map, g_variant_new_int64 (7));
  fm_map_push (map, task);
  fm_map_push (map, g_variant_new_int64 (9));
  fm_map_push (map, g_variant_new_int64 (1));
  fm_map_push (map, g_variant_new_int64 (11));
  fm_map_close (map);
  values = take_all (map, NULL);
  g_assert_cmpuint (values->len, ==, G_N_ELEMENTS (expected));
  for (guint i = 0; i < values->len; i++)
    g_assert_cmpint (g_variant_get_int64 (values->pdata[i]), ==, expected[i]);
}

static void
set_flag (gpointer data)
{
  *(gboolean *) data = TRUE;
}

/* A number pushed is copied, and its GVariant dropped before the push
 * returns: tasks that wait for room cost their bytes. */
static void
test_pushed_numbers_are_copied (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (identity, 1);
  g_autoptr(FmMap) map = NULL;
  g_autoptr(GPtrArray) values = NULL;
  gint64 number = 42;
  gboolean number_freed = FALSE;
  char *string = g_strdup ("a string");

  /* A window of one: the first task is in flight until its result is
   * taken, and the tasks after it wait in the map meanwhile. */
  fm_mapper_set_max_in_flight (mapper, 1);
  map = fm_mapper_map (mapper, NULL);
  fm_map_push (map, g_variant_new_int64 (1));
  fm_map_push (map, g_variant_new_from_data (G_VARIANT_TYPE_INT64, &number, sizeof number,
                                             TRUE, set_flag, &number_freed));
  g_assert_true (number_freed);
  fm_map_push (map, g_variant_new_from_data (G_VARIANT_TYPE_STRING, string, strlen (string) + 1,
                                             TRUE, g_free, string));
  fm_map_push (map, g_variant_new_int64 (3));
  fm_map_close (map);

  values = take_all (map, NULL);
  g_assert_cmpuint (values->len, ==, 4);
  g_assert_cmpint (g_variant_get_int64 (values->pdata[0]), ==, 1);
  g_assert_cmpint (g_variant_get_int64 (values->pdata[1]), ==, 42);
  g_assert_cmpstr (g_variant_get_string (values->pdata[2], NULL), ==, "a string");
  g_assert_cmpint (g_variant_get_int64 (values->pdata[3]), ==, 3);
}

/* Numbers pushed one by one beside arrays of numbers of the same type,
 * and beside other tasks: each joins the segment at the tail of the
 * pending queue, or starts one, and the order holds across them all
 * (add_task_locked(); joining the head's segment fails this). */
static void
test_pushed_numbers_beside_arrays (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (identity, 2);
  g_autoptr(FmMap) map = fm_mapper_map (mapper, NULL);
  g_autoptr(GPtrArray) values = NULL;
  gint64 next = 0;

  for (guint round = 0; round < 40; round++)
    {
      gint64 array[300];

      /* Enough one by one for a segment to fill up now and then. */
      for (guint k = 0; k < 150 * (round % 4); k++)
        fm_map_push (map, g_variant_new_int64 (next++));
      for (guint k = 0; k < G_N_ELEMENTS (array); k++)
        array[k] = next++;
      fm_map_push_array (map, g_variant_new_fixed_array (G_VARIANT_TYPE_INT64, array,
                                                         G_N_ELEMENTS (array), sizeof (gint64)));
      fm_map_push (map, g_variant_new_int64 (next++));
      if (round % 3 == 0)
        fm_map_push (map, g_variant_new_uint32 ((guint32) next++));
      if (round % 5 == 0)
        {
          g_autofree char *text = g_strdup_printf ("%" G_GINT64_FORMAT, next++);

          fm_map_push (map, g_variant_new_string (text));
        }
    }
  fm_map_close (map);

  values = take_all (map, NULL);
  g_assert_cmpuint (values->len, ==, next);
  for (guint i = 0; i < values->len; i++)
    {
      GVariant *v = values->pdata[i];

      if (g_variant_is_of_type (v, G_VARIANT_TYPE_STRING))
        g_assert_cmpint (g_ascii_strtoll (g_variant_get_string (v, NULL), NULL, 10), ==, i);
      else if (g_variant_is_of_type (v, G_VARIANT_TYPE_UINT32))
        g_assert_cmpuint (g_variant_get_uint32 (v), ==, i);
      else
        g_assert_cmpint (g_variant_get_int64 (v), ==, i);
    }
}

/* Task (sut): appends a byte to the file at path s, then waits until
 * the file holds u bytes (all the tasks have started) or 10 s passed;
 * returns how many it held. */
static GVariant *
arrive_and_wait (GVariant  *task,
                 gpointer   user_data,
                 GError   **error)
{
  const char *path;
  guint32 n;
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  GStatBuf st = { 0 };
  FILE *f;

  g_variant_get (task, "(&su)", &path, &n);
  f = fopen (path, "a");
  g_assert_nonnull (f);
  fputc ('.', f);
  fclose (f);
  while (g_stat (path, &st) == 0 && st.st_size < (goffset) n &&
         g_get_monotonic_time () < deadline)
    g_usleep (2000);
  return g_variant_new_uint32 ((guint32) st.st_size);
}

static GVariant *
sleepy_twice (GVariant  *task,
              gpointer   user_data,
              GError   **error)
{
  g_usleep (2000);
  return g_variant_new_int64 (2 * g_variant_get_int64 (task));
}

static void
check_push_array (FmFunction func,
                  gint64     n,
                  gboolean   kill_one,
                  gboolean   bulk)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (func, 2);
  g_autoptr(FmMap) map = fm_mapper_map (mapper, NULL);
  g_autoptr(GVariantBuilder) builder = g_variant_builder_new (G_VARIANT_TYPE ("ax"));

  /* Numbers in bulk, one pushed alone, an array built child by child. */
  fm_test_push_range (map, n);
  fm_map_push (map, g_variant_new_int64 (n));
  for (gint64 i = n + 1; i < n + 10; i++)
    g_variant_builder_add (builder, "x", i);
  fm_map_push_array (map, g_variant_builder_end (builder));
  fm_map_push_array (map, g_variant_new_fixed_array (G_VARIANT_TYPE_INT64, NULL, 0, sizeof (gint64)));
  fm_map_close (map);

  if (kill_one)
    {
      g_usleep (30000);
      g_assert_cmpint (kill (fm_map_get_worker_pid (map, 1), SIGKILL), ==, 0);
    }

  if (!bulk)
    g_assert_cmpuint (fm_test_take_twice (map), ==, n + 10);
  else
    {
      gsize max_len;
      g_autoptr(GPtrArray) values = take_all_arrays (map, TRUE, NULL, &max_len);

      g_assert_cmpuint (values->len, ==, n + 10);
      for (guint i = 0; i < values->len; i++)
        g_assert_cmpint (g_variant_get_int64 (values->pdata[i]), ==, 2 * (gint64) i);
      /* Tiny tasks come back thousands to a batch: arrays of one result
       * each would be right but no faster than fm_map_next(). */
      if (!kill_one)
        g_assert_cmpuint (max_len, >, 100);
    }
}

/* delay_ms → the monotonic µs at which the task started. */
static GVariant *
started_at (GVariant  *task,
            gpointer   user_data,
            GError   **error)
{
  gint64 start = g_get_monotonic_time ();
  guint32 delay_ms = g_variant_get_uint32 (task);

  if (delay_ms > 0)
    g_usleep (delay_ms * 1000);
  return g_variant_new_int64 (start);
}

/* Tiny tasks that teach the worker to run them thousands to a chunk, then
 * from task SLOW_FROM on one every SLOW_EVERY that blocks for 3 s: all of
 * them within the window of max-in-flight (8192) tasks. */
#define SLOW_FROM   50000
#define SLOW_EVERY  500
#define SLOW_N      55000

static gboolean
is_slow (guint i)
{
  return i >= SLOW_FROM && (i - SLOW_FROM) % SLOW_EVERY == 0;
}

static void
push_slow_among_tiny (FmMap *map)
{
  g_autofree guint32 *delays = g_new0 (guint32, SLOW_N);

  for (guint i = 0; i < SLOW_N; i++)
    delays[i] = is_slow (i) ? 3000 : 0;
  fm_map_push_array (map, g_variant_new_fixed_array (G_VARIANT_TYPE_UINT32, delays, SLOW_N,
                                                     sizeof (guint32)));
  fm_map_close (map);
}

static void
test_blocking_task_in_chunk (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (started_at, 1);
  g_autoptr(FmMap) map = fm_mapper_map (mapper, NULL);
  g_autoptr(GPtrArray) values = NULL;

  /* The tasks after each slow one, in its chunk, must start on other
   * threads long before it ends. */
  push_slow_among_tiny (map);
  values = take_all (map, NULL);
  g_assert_cmpuint (values->len, ==, SLOW_N);
  for (guint i = SLOW_FROM; i < SLOW_N; i += SLOW_EVERY)
    {
      gint64 slow_start = g_variant_get_int64 (values->pdata[i]);

      for (guint j = i + 1; j < MIN (i + SLOW_EVERY, SLOW_N); j++)
        g_assert_cmpint (g_variant_get_int64 (values->pdata[j]) - slow_start, <, 1500 * 1000);
    }
}

static gint64
threads_of_this_process (void)
{
  g_autofree char *status = NULL;
  const char *line;

  g_assert_true (g_file_get_contents ("/proc/self/status", &status, NULL, NULL));
  line = strstr (status, "\nThreads:");
  g_assert_nonnull (line);
  return g_ascii_strtoll (line + strlen ("\nThreads:"), NULL, 10);
}

static void
test_results_before_a_blocking_task (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (started_at, 1);
  g_autoptr(FmMap) map = NULL;
  g_autofree gint64 *arrived = g_new0 (gint64, SLOW_N);
  gint64 first_slow_start = G_MAXINT64;
  GVariant *value;
  guint64 index;
  GError *error = NULL;

  /* As in /map/blocking-task-in-chunk, but as completed: a task that
   * blocks in the middle of a chunk must not hold back the results of
   * the tasks before it in that chunk, nor, because the parent counts
   * them as still held, the tasks the parent has yet to send. Both made
   * tasks wait for the slow one's 3 s. */
  fm_mapper_set_ordered (mapper, FALSE);
  map = fm_mapper_map (mapper, NULL);
  push_slow_among_tiny (map);

  while ((value = fm_map_next (map, &index, &error)) != NULL)
    {
      g_assert_cmpuint (index, <, SLOW_N);
      arrived[index] = g_get_monotonic_time ();
      if (is_slow (index))
        first_slow_start = MIN (first_slow_start, g_variant_get_int64 (value));
      g_variant_unref (value);
    }
  g_assert_no_error (error);
  for (guint i = 0; i < SLOW_N; i++)
    {
      g_assert_cmpint (arrived[i], >, 0);
      if (!is_slow (i))
        g_assert_cmpint (arrived[i] - first_slow_start, <, 1500 * 1000);
    }
}

/* As /map/results-before-a-blocking-task, with the slow task the last of
 * the input, hence of its batch and of its chunk: there is nothing after
 * it to take back, and the results before it in its chunk came when it
 * ended, 3 s late. */
static void
test_results_before_a_blocking_last_task (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (started_at, 1);
  g_autoptr(FmMap) map = NULL;
  g_autofree guint32 *delays = g_new0 (guint32, SLOW_N);
  g_autofree gint64 *arrived = g_new0 (gint64, SLOW_N);
  gint64 slow_start = 0;
  GVariant *value;
  guint64 index;
  GError *error = NULL;

  fm_mapper_set_ordered (mapper, FALSE);
  map = fm_mapper_map (mapper, NULL);
  delays[SLOW_N - 1] = 3000;
  fm_map_push_array (map, g_variant_new_fixed_array (G_VARIANT_TYPE_UINT32, delays, SLOW_N,
                                                     sizeof (guint32)));
  fm_map_close (map);
  while ((value = fm_map_next (map, &index, &error)) != NULL)
    {
      g_assert_cmpuint (index, <, SLOW_N);
      arrived[index] = g_get_monotonic_time ();
      if (index == SLOW_N - 1)
        slow_start = g_variant_get_int64 (value);
      g_variant_unref (value);
    }
  g_assert_no_error (error);
  g_assert_cmpint (slow_start, >, 0);
  for (guint i = 0; i < SLOW_N - 1; i++)
    g_assert_cmpint (arrived[i] - slow_start, <, 1500 * 1000);
}

/* x → the number of threads of the worker, every 1000th task; 0 else. */
static GVariant *
threads_of_worker (GVariant  *task,
                   gpointer   user_data,
                   GError   **error)
{
  if (g_variant_get_int64 (task) % 1000 != 0)
    return g_variant_new_int64 (0);
  return g_variant_new_int64 (threads_of_this_process ());
}

/* x → the number of threads of the worker, after 2 ms asleep holding a
 * lock that every task takes: the tasks run one after the other, as
 * Python's items do under the GIL. */
static GVariant *
threads_behind_a_lock (GVariant  *task,
                       gpointer   user_data,
                       GError   **error)
{
  static GMutex lock;
  gint64 threads;

  g_mutex_lock (&lock);
  g_usleep (2000);
  threads = threads_of_this_process ();
  g_mutex_unlock (&lock);
  return g_variant_new_int64 (threads);
}

static gpointer
sleep_300_ms (gpointer data)
{
  g_usleep (300 * 1000);
  return NULL;
}

/* → (start, end) in monotonic µs, of a wait for another thread of the
 * worker that sleeps 300 ms: the task sleeps on a futex of its own. The
 * task's value is not used. */
static GVariant *
interval_of_a_join (GVariant  *task,
                    gpointer   user_data,
                    GError   **error)
{
  gint64 start = g_get_monotonic_time ();

  g_thread_join (g_thread_new ("sleeper", sleep_300_ms, NULL));
  return g_variant_new ("(xx)", start, g_get_monotonic_time ());
}

static void
test_waits_on_futexes_of_their_own_overlap (void)
{
  /* Each task waits for an event of its own on a futex (a join here; a
   * GThreadedResolver lookup, a Python queue or future alike): unlike
   * tasks that wait for a lock they share, these gain from a runner
   * each, as tasks that sleep do. */
  check_all_waits_overlap (interval_of_a_join, 0);
}

static void
test_tasks_behind_a_lock_few_threads (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (threads_behind_a_lock, 1);
  g_autoptr(FmMap) map = fm_mapper_map (mapper, NULL);
  g_autoptr(GPtrArray) values = NULL;
  const gint64 n = 400;
  gint64 most = 0;

  /* The process hardly uses the CPU and every runner sleeps: the one
   * with the lock in its wait, the others on the lock. More runners
   * cannot help tasks that wait for each other; a Python worker whose
   * items compute (its runners wait for the GIL) once doubled to 488
   * threads on a loaded machine. */
  for (gint64 i = 0; i < n; i++)
    fm_map_push (map, g_variant_new_int64 (i));
  fm_map_close (map);
  values = take_all (map, NULL);
  g_assert_cmpuint (values->len, ==, n);
  for (guint i = 0; i < values->len; i++)
    most = MAX (most, g_variant_get_int64 (values->pdata[i]));
  g_test_message ("at most %" G_GINT64_FORMAT " threads", most);
  /* The reader, the ticker, the writer, GLib's own, the eight runners
   * of the start and a few per core; a thread per task would be 400. */
  g_assert_cmpint (most, <, 64);
}

/* Pushes 0 … @n - 1 as one array, closes the input, and takes the
 * results, pausing @pause_us after every @every of them, as a consumer that
 * falls behind now and then; returns the largest result. */
static gint64
push_and_take_pausing (FmMap  *map,
                       gint64  n,
                       gint64  every,
                       gulong  pause_us)
{
  GVariant *value;
  GError *error = NULL;
  gint64 most = 0, taken = 0;

  fm_test_push_range (map, n);
  fm_map_close (map);
  while ((value = fm_map_next (map, NULL, &error)) != NULL)
    {
      most = MAX (most, g_variant_get_int64 (value));
      g_variant_unref (value);
      if (++taken % every == 0)
        g_usleep (pause_us);
    }
  g_assert_no_error (error);
  g_assert_cmpint (taken, ==, n);
  return most;
}

static void
test_tiny_tasks_few_threads (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (threads_of_worker, 2);
  g_autoptr(FmMap) map = fm_mapper_map (mapper, NULL);

  /* Tiny tasks, with a caller that falls behind now and then: runners
   * that wait for the parent to read their results, or a chunk that took
   * long because the system ran something else, are not tasks that block,
   * and must not make the worker start a thread per task. The reader, the
   * ticker, the writer, GLib's own, a few runners per core; a thread per
   * task was 500-1 000. On a loaded machine (under AddressSanitizer,
   * beside the other suites) the runners may double a few times: 71
   * threads were seen. */
  g_assert_cmpint (push_and_take_pausing (map, 300000, 20000, 20000), <, 128);
}

/* x → the number of threads of the worker (every 500th task), after
 * 50 µs of computation. */
static GVariant *
threads_after_computing (GVariant  *task,
                         gpointer   user_data,
                         GError   **error)
{
  fm_test_spin_us (50);
  if (g_variant_get_int64 (task) % 500 != 0)
    return g_variant_new_int64 (0);
  return g_variant_new_int64 (threads_of_this_process ());
}

/* A consumer that stops now and then leaves the runners with nothing to
 * do (the window is full): that is no stall. The worker once counted the
 * idle time as time without progress, took the runners for stuck when
 * the next tasks came, and doubled them at every pause. */
static void
test_pauses_of_the_consumer_start_no_threads (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (threads_after_computing, 2);
  g_autoptr(FmMap) map = NULL;

  fm_mapper_set_max_in_flight (mapper, 2048);
  map = fm_mapper_map (mapper, NULL);
  /* The reader, the ticker, the writer, GLib's own, 8 runners: 11. Under
   * valgrind, beside the other suites on two cores, the parent reads 20
   * to 50 times slower and the runners may double once or twice more
   * (19 and 33 were seen); the worker this test caught doubled them at
   * each of the 20 pauses, to hundreds (515). */
  g_assert_cmpint (push_and_take_pausing (map, 40000, 2000, 30000), <,
                   fm_test_under_valgrind () ? 48 : 24);
}

static void
test_push_array (gconstpointer bulk)
{
  check_push_array (twice, 200000, FALSE, GPOINTER_TO_INT (bulk));
}

static void
test_push_array_worker_killed (gconstpointer bulk)
{
  /* Tasks of an array that must run again get a GVariant of their own. */
  check_push_array (sleepy_twice, 2000, TRUE, GPOINTER_TO_INT (bulk));
}

static GVariant *
mixed_value (guint i)
{
  /* Runs of 50 of one type, the numbers most of them. */
  switch ((i / 50) % 14)
    {
    case 0: return g_variant_new_string ("a string");
    case 1: return g_variant_new ("(sdb)", "tuple", i / 3.0, i % 2);
    case 2: return g_variant_new_boolean (i % 3 == 0);
    case 3: return g_variant_new_byte (i % 256);
    case 4: return g_variant_new_int16 (-(gint16) i);
    case 5: return g_variant_new_uint16 (i);
    case 6: return g_variant_new_int32 (-(gint32) i * 1000);
    case 7: return g_variant_new_uint32 (i * 1000);
    case 8: return g_variant_new_handle (i);
    case 9: return g_variant_new_uint64 (G_MAXUINT64 - i);
    case 10: return g_variant_new_double (i / 7.0);
    case 11: return g_variant_new ("(ii)", i, -(gint32) i);
    case 12: return g_variant_new_string ("");
    default: return g_variant_new_int64 (G_MININT64 + i);
    }
}

/* Takes @n results with fm_map_next_array() into @values, checking that
 * the arrays follow each other and hold no more than one run of 50. */
static void
take_arrays (FmMap     *map,
             GPtrArray *values,
             guint      n)
{
  guint end = values->len + n;

  while (values->len < end)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GVariant) array = NULL;
      guint64 first;

      array = fm_map_next_array (map, &first, &error);
      g_assert_no_error (error);
      g_assert_nonnull (array);
      g_assert_cmpuint (first, ==, values->len);
      g_assert_cmpuint (g_variant_n_children (array), <=, 50);
      for (gsize k = 0; k < g_variant_n_children (array); k++)
        g_ptr_array_add (values, g_variant_get_child_value (array, k));
    }
  g_assert_cmpuint (values->len, ==, end);
}

/* Results of every kind of type, taken in arrays: an array holds one
 * type, and numbers are copied as bytes, from GVariants made before the
 * first fm_map_next_array() and from frames after it. */
static void
test_next_array_mixed_types (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (identity, 2);
  g_autoptr(FmMap) map = fm_mapper_map (mapper, NULL);
  g_autoptr(GPtrArray) tasks = g_ptr_array_new_with_free_func ((GDestroyNotify) g_variant_unref);
  g_autoptr(GPtrArray) values = g_ptr_array_new_with_free_func ((GDestroyNotify) g_variant_unref);
  g_autoptr(GVariant) first = NULL;

  for (guint i = 0; i < 3000; i++)
    {
      g_ptr_array_add (tasks, g_variant_ref_sink (mixed_value (i)));
      if (i < 1400)
        fm_map_push (map, tasks->pdata[i]);
    }

  /* Before any fm_map_next_array(), the reader makes a GVariant of each
   * result; the first 1400 are all back (or nearly) after this wait. */
  first = fm_map_next (map, NULL, NULL);
  g_ptr_array_add (values, g_steal_pointer (&first));
  g_usleep (200000);
  take_arrays (map, values, 1399);

  /* After it, results that are numbers stay in their frames. */
  for (guint i = 1400; i < 3000; i++)
    fm_map_push (map, tasks->pdata[i]);
  fm_map_close (map);
  take_arrays (map, values, 1600);
  g_assert_null (fm_map_next_array (map, NULL, NULL));

  for (guint i = 0; i < values->len; i++)
    g_assert_true (g_variant_equal (values->pdata[i], tasks->pdata[i]));
}

/* A failed task ends an array; its error comes alone, at its index. */
static void
test_next_array_failing_task (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (fail_on_five, 2);
  g_autoptr(FmMap) map = fm_mapper_map (mapper, NULL);
  g_autofree gint64 *numbers = g_new (gint64, 1000);
  guint64 expected = 0, errors = 0;

  for (gint64 i = 0; i < 1000; i++)
    numbers[i] = i % 100;
  fm_map_push_array (map, g_variant_new_fixed_array (G_VARIANT_TYPE_INT64, numbers, 1000,
                                                     sizeof (gint64)));
  fm_map_close (map);

  for (;;)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GVariant) array = NULL;
      const gint64 *r;
      guint64 first;
      gsize n;

      array = fm_map_next_array (map, &first, &error);
      if (array == NULL && error == NULL)
        break;
      g_assert_cmpuint (first, ==, expected);
      if (first % 100 == 5)
        {
          g_assert_null (array);
          g_assert_error (error, TEST_ERROR, 42);
          g_assert_cmpstr (error->message, ==, "five is not welcome");
          errors++;
          expected++;
          continue;
        }
      g_assert_no_error (error);
      r = g_variant_get_fixed_array (array, &n, sizeof (gint64));
      for (gsize k = 0; k < n; k++)
        {
          g_assert_cmpuint ((first + k) % 100, !=, 5);
          g_assert_cmpint (r[k], ==, (gint64) (((first + k) % 100) * ((first + k) % 100)));
        }
      expected += n;
    }
  g_assert_cmpuint (expected, ==, 1000);
  g_assert_cmpuint (errors, ==, 10);
}

typedef enum
{
  WINDOW_WIDENS,          /* numbers both ways: 8192, then 65536 */
  WINDOW_TASKS_PUSHED,    /* the same tasks, one fm_map_push() each */
  WINDOW_STRING_RESULTS,  /* results that are not numbers */
  WINDOW_SET,             /* max-in-flight set to the default's value */
  WINDOW_TASKS_WAIT,      /* numbers both ways, but tasks that wait */
} WindowCase;

#define WINDOW_TASKS   70000

typedef struct
{
  GMutex    lock;
  GCond     cond;
  gboolean  reached;   /* the consumer took what it waited for */
  gboolean  done;
  const char *release; /* the file that lets task 0 end */
} Release;

/* Creates the release file 200 ms after the consumer took what it
 * waited for (any result more comes meanwhile), or after 30 s. */
static gpointer
release_later (gpointer data)
{
  Release *r = data;
  gint64 end = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;

  g_mutex_lock (&r->lock);
  while (!r->reached && !r->done && g_cond_wait_until (&r->cond, &r->lock, end))
    ;
  if (r->reached)
    {
      end = g_get_monotonic_time () + 200 * 1000;
      while (g_cond_wait_until (&r->cond, &r->lock, end))
        ;
    }
  g_mutex_unlock (&r->lock);
  g_assert_true (g_file_set_contents (r->release, "", 0, NULL));
  return NULL;
}

/* Unordered, task 0 held in its worker: the results that come before its
 * are the window's other tasks. With the default window, that is 8191 of
 * them, and more once it widened: only when tasks and results are
 * numbers, the tasks given in arrays and the results taken in bulk, and
 * the tasks tiny. */
static void
test_window (gconstpointer data)
{
  WindowCase how = GPOINTER_TO_INT (data);
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (how == WINDOW_STRING_RESULTS ? held_zero_string
                                                   : how == WINDOW_TASKS_WAIT ? held_zero_waits
                                                   : held_zero, 2);
  g_autoptr(FmMap) map = NULL;
  g_autofree gboolean *seen = g_new0 (gboolean, WINDOW_TASKS);
  Release r = { .release = g_getenv ("FM_TEST_RELEASE") };
  guint64 before_zero = 0, taken = 0, first;
  guint64 wait_for = how == WINDOW_WIDENS ? FM_TEST_DEFAULT_WINDOW : FM_TEST_DEFAULT_WINDOW - 1;
  gboolean zero_seen = FALSE;
  g_autoptr(GError) error = NULL;
  GThread *releaser;
  GVariant *array;

  g_assert_false (g_file_test (r.release, G_FILE_TEST_EXISTS));
  g_mutex_init (&r.lock);
  g_cond_init (&r.cond);
  fm_mapper_set_ordered (mapper, FALSE);
  if (how == WINDOW_SET)
    fm_mapper_set_max_in_flight (mapper, FM_TEST_DEFAULT_WINDOW);
  map = fm_mapper_map (mapper, NULL);
  releaser = g_thread_new ("releaser", release_later, &r);

  if (how == WINDOW_TASKS_PUSHED)
    for (gint64 i = 0; i < WINDOW_TASKS; i++)
      fm_map_push (map, g_variant_new_int64 (i));
  else
    fm_test_push_range (map, WINDOW_TASKS);
  fm_map_close (map);

  /* The window's results wait, in the order they came, for the first
   * fm_map_next_array(): it takes one run of them, and the window widens
   * with the others still queued. */
  g_usleep (200 * 1000);
  while ((array = fm_map_next_array (map, &first, &error)) != NULL)
    {
      gsize n = g_variant_n_children (array);

      for (gsize k = 0; k < n; k++)
        {
          g_autoptr(GVariant) v = g_variant_get_child_value (array, k);
          g_autofree char *expected = g_strdup_printf ("%" G_GUINT64_FORMAT, 3 * (first + k));

          g_assert_cmpuint (first + k, <, WINDOW_TASKS);
          g_assert_false (seen[first + k]);
          seen[first + k] = TRUE;
          if (how == WINDOW_STRING_RESULTS)
            g_assert_cmpstr (g_variant_get_string (v, NULL), ==, expected);
          else
            g_assert_cmpint (g_variant_get_int64 (v), ==, 3 * (gint64) (first + k));
          zero_seen = zero_seen || first + k == 0;
          before_zero += !zero_seen;
        }
      taken += n;
      g_variant_unref (array);
      g_mutex_lock (&r.lock);
      if (!zero_seen && before_zero >= wait_for && !r.reached)
        {
          r.reached = TRUE;
          g_cond_broadcast (&r.cond);
        }
      g_mutex_unlock (&r.lock);
    }
  g_assert_no_error (error);
  g_assert_cmpuint (taken, ==, WINDOW_TASKS);

  g_mutex_lock (&r.lock);
  r.done = TRUE;
  g_cond_broadcast (&r.cond);
  g_mutex_unlock (&r.lock);
  g_thread_join (releaser);
  g_assert_no_errno (g_unlink (r.release));
  g_mutex_clear (&r.lock);
  g_cond_clear (&r.cond);

  g_test_message ("%" G_GUINT64_FORMAT " results before task 0's", before_zero);
  if (how == WINDOW_WIDENS)
    {
      g_assert_cmpuint (before_zero, >=, FM_TEST_DEFAULT_WINDOW);
      g_assert_cmpuint (before_zero, <, FM_TEST_WIDE_WINDOW);
    }
  else
    g_assert_cmpuint (before_zero, ==, FM_TEST_DEFAULT_WINDOW - 1);
}

/* In order, the window widens while tasks are in flight: their slots move
 * to the wider ring, and every result comes in its place. */
static void
test_window_widens_in_order (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (spun_triple, 2);
  g_autoptr(FmMap) map = fm_mapper_map (mapper, NULL);
  g_autoptr(GPtrArray) values = NULL;
  gsize max_len;

  fm_test_push_range (map, WINDOW_TASKS);
  fm_map_close (map);
  values = take_all_arrays (map, TRUE, NULL, &max_len);
  g_assert_cmpuint (values->len, ==, WINDOW_TASKS);
  for (guint i = 0; i < values->len; i++)
    g_assert_cmpint (g_variant_get_int64 (values->pdata[i]), ==, 3 * (gint64) i);
}

/* Not in order: every result once, child k of an array being the result
 * of task first + k. */
static void
test_next_array_unordered (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (slow_square, 2);
  g_autoptr(FmMap) map = NULL;
  g_autoptr(GArray) indexes = g_array_new (FALSE, FALSE, sizeof (guint64));
  g_autoptr(GPtrArray) values = NULL;
  g_autofree gboolean *seen = g_new0 (gboolean, 2000);
  gsize max_len;

  fm_mapper_set_ordered (mapper, FALSE);
  map = fm_mapper_map (mapper, NULL);
  /* Task 0 takes longest: in order, nothing would come before it. */
  for (gint64 i = 0; i < 2000; i++)
    fm_map_push (map, g_variant_new ("(xu)", i, (guint32) (i == 0 ? 600 : 0)));
  fm_map_close (map);

  values = take_all_arrays (map, FALSE, indexes, &max_len);
  g_assert_cmpuint (values->len, ==, 2000);
  g_assert_cmpuint (g_array_index (indexes, guint64, 1999), ==, 0);
  for (guint i = 0; i < values->len; i++)
    {
      guint64 index = g_array_index (indexes, guint64, i);

      g_assert_cmpuint (index, <, 2000);
      g_assert_false (seen[index]);
      seen[index] = TRUE;
      g_assert_cmpint (g_variant_get_int64 (values->pdata[i]), ==, (gint64) (index * index));
    }
  g_assert_cmpuint (max_len, >, 1);
}

typedef struct
{
  GMainLoop *loop;
  guint64    taken;
  guint64    arrays;
  gboolean   in_order;
} ArrayWait;

static void
on_next_array (GObject      *source,
               GAsyncResult *result,
               gpointer      data)
{
  ArrayWait *w = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) array = NULL;
  guint64 first;
  const gint64 *r;
  gsize n;

  array = fm_map_next_array_finish (FM_MAP (source), result, &first, &error);
  g_assert_no_error (error);
  if (array == NULL)
    {
      g_main_loop_quit (w->loop);
      return;
    }
  r = g_variant_get_fixed_array (array, &n, sizeof (gint64));
  w->in_order = w->in_order && first == w->taken;
  for (gsize k = 0; k < n; k++)
    w->in_order = w->in_order && r[k] == 2 * (gint64) (first + k);
  w->taken += n;
  w->arrays++;
  fm_map_next_array_async (FM_MAP (source), NULL, on_next_array, w);
}

/* The asynchronous form, in a main loop: every result once, in order, in
 * arrays of many. */
static void
test_next_array_async (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (twice, 2);
  g_autoptr(FmMap) map = fm_mapper_map (mapper, NULL);
  g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);
  ArrayWait w = { loop, 0, 0, TRUE };

  fm_test_push_range (map, 100000);
  fm_map_close (map);
  fm_map_next_array_async (map, NULL, on_next_array, &w);
  g_main_loop_run (loop);

  g_assert_true (w.in_order);
  g_assert_cmpuint (w.taken, ==, 100000);
  g_assert_cmpuint (w.arrays, <, 100000 / 100);
}

/* A map dropped with results of numbers still in their frames, in order
 * or not: every slot lets its frame go (valgrind and AddressSanitizer,
 * which the C tests also run under, see a leak or a double free). */
static void
test_next_array_dropped_early (gconstpointer ordered)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (twice, 2);
  g_autoptr(FmMap) map = NULL;
  g_autoptr(GVariant) array = NULL;
  g_autoptr(GError) error = NULL;
  guint64 first;
  GPid pids[2];

  fm_mapper_set_ordered (mapper, GPOINTER_TO_INT (ordered));
  map = fm_mapper_map (mapper, NULL);
  fm_test_push_range (map, 100000);
  fm_map_close (map);
  array = fm_map_next_array (map, &first, &error);
  g_assert_no_error (error);
  g_assert_nonnull (array);
  /* Let more results arrive and wait in the ring. */
  g_usleep (50000);
  for (guint w = 0; w < 2; w++)
    pids[w] = fm_map_get_worker_pid (map, w);
  g_clear_object (&map);
  for (guint w = 0; w < 2; w++)
    g_assert_true (fm_test_process_gone (pids[w], 10000));
}

/* fm_map_next() and fm_map_next_array() on one map, by turns: results
 * that wait in their batch for an array are taken one by one too. */
static void
test_next_array_and_next (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (twice, 2);
  g_autoptr(FmMap) map = fm_mapper_map (mapper, NULL);
  guint64 expected = 0, turns = 0;

  fm_test_push_range (map, 100000);
  fm_map_close (map);

  for (;; turns++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GVariant) got = NULL;
      guint64 index;

      got = turns % 2 ? fm_map_next (map, &index, &error) : fm_map_next_array (map, &index, &error);
      g_assert_no_error (error);
      if (got == NULL)
        break;
      g_assert_cmpuint (index, ==, expected);
      if (turns % 2)
        {
          g_assert_cmpint (g_variant_get_int64 (got), ==, 2 * (gint64) expected);
          expected++;
        }
      else
        for (gsize k = 0; k < g_variant_n_children (got); k++, expected++)
          {
            g_autoptr(GVariant) child = g_variant_get_child_value (got, k);

            g_assert_cmpint (g_variant_get_int64 (child), ==, 2 * (gint64) expected);
          }
    }
  g_assert_cmpuint (expected, ==, 100000);
}

/* x → x bytes of zeros. */
static GVariant *
blob (GVariant  *task,
      gpointer   user_data,
      GError   **error)
{
  gsize size = g_variant_get_int64 (task);
  gpointer zeros = g_malloc0 (size);

  return g_variant_new_from_data (G_VARIANT_TYPE_BYTESTRING, zeros, size, TRUE, g_free, zeros);
}

/* Takes the results of @n tasks of which the second is too big (as a
 * task or as a result): an error at its index, and the run goes on; the
 * others come whole, of @sizes bytes. */
static void
check_second_too_big (FmMap       *map,
                      const gsize *sizes,
                      guint        n)
{
  for (guint i = 0; i < n; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GVariant) value = NULL;
      guint64 index;

      value = fm_map_next (map, &index, &error);
      g_assert_cmpuint (index, ==, i);
      if (i == 1)
        {
          g_assert_error (error, FM_ERROR, FM_ERROR_INVALID_ARGUMENT);
          g_assert_null (value);
          continue;
        }
      g_assert_no_error (error);
      g_assert_cmpuint (g_variant_get_size (value), ==, sizes[i]);
    }
  g_assert_null (fm_map_next (map, NULL, NULL));
}

static void
test_huge_result (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (blob, 1);
  g_autoptr(FmMap) map = fm_mapper_map (mapper, NULL);
  const gsize sizes[] = { 10, 40 * 1024 * 1024, 20 * 1024 * 1024, 10 };

  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++)
    fm_map_push (map, g_variant_new_int64 (sizes[i]));
  fm_map_close (map);
  /* Too big for a frame of results. */
  check_second_too_big (map, sizes, G_N_ELEMENTS (sizes));
}

static void
test_huge_task (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (identity, 1);
  g_autoptr(FmMap) map = fm_mapper_map (mapper, NULL);
  const gsize sizes[] = { 10, 17 * 1024 * 1024, 16 * 1024 * 1024 - 64, 10 };

  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++)
    {
      gpointer zeros = g_malloc0 (sizes[i]);

      fm_map_push (map, g_variant_new_from_data (G_VARIANT_TYPE_BYTESTRING, zeros, sizes[i],
                                                 TRUE, g_free, zeros));
    }
  fm_map_close (map);
  /* Too big for a batch of tasks of its own; the next one, under that
   * limit, gets there and back whole. */
  check_second_too_big (map, sizes, G_N_ELEMENTS (sizes));
}

static void
test_empty (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (twice, 2);
  g_autoptr(FmMap) map = fm_mapper_map (mapper, NULL);
  g_autoptr(GError) error = NULL;

  fm_map_close (map);
  g_assert_null (fm_map_next (map, NULL, &error));
  g_assert_no_error (error);
  g_assert_null (fm_map_next (map, NULL, &error));
  g_assert_no_error (error);
}

static void
check_start_failure (FmMapper *mapper)
{
  g_autoptr(FmMap) map = fm_mapper_map (mapper, NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) value = NULL;

  fm_map_push (map, g_variant_new_int64 (1));
  fm_map_close (map);
  value = fm_map_next (map, NULL, &error);
  g_assert_null (value);
  g_assert_error (error, FM_ERROR, FM_ERROR_WORKER_FAILED);
  g_test_message ("start failure: %s", error->message);
  g_clear_error (&error);
  /* Then the end, not a hang. */
  g_assert_null (fm_map_next (map, NULL, &error));
  g_assert_no_error (error);
}

static void
test_worker_fails_to_start (void)
{
  g_autoptr(FmMapper) missing = fm_mapper_new ((const char * const[]) { "/nonexistent/fastmap-worker", NULL });
  g_autoptr(FmMapper) quits = fm_mapper_new ((const char * const[]) { FM_TEST_WORKER, "exit-early", NULL });
  g_autoptr(FmMapper) not_a_worker = fm_mapper_new ((const char * const[]) { "/bin/echo", "hello", NULL });
  g_autoptr(GError) error = NULL;
  FmMapper *bad;

  check_start_failure (missing);
  check_start_failure (quits);
  check_start_failure (not_a_worker);

  bad = fm_mapper_new_for_module ("/nonexistent/module.so", "fm_test_square", &error);
  g_assert_null (bad);
  g_assert_error (error, FM_ERROR, FM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  bad = fm_mapper_new_for_module (FM_TEST_MODULE, "no_such_function", &error);
  g_assert_null (bad);
  g_assert_error (error, FM_ERROR, FM_ERROR_INVALID_ARGUMENT);
}

typedef struct
{
  GMainLoop *loop;
  FmMap     *map;
  GArray    *indexes;
  GPtrArray *values;
  GPtrArray *errors;
  guint      finished;
  GError    *finished_error;
} Collect;

static void
on_next (GObject      *source,
         GAsyncResult *result,
         gpointer      data)
{
  Collect *c = data;
  g_autoptr(GError) error = NULL;
  GVariant *value;
  guint64 index;

  value = fm_map_next_finish (FM_MAP (source), result, &index, &error);
  if (value == NULL && error == NULL)
    {
      g_main_loop_quit (c->loop);
      return;
    }
  g_array_append_val (c->indexes, index);
  if (value != NULL)
    g_ptr_array_add (c->values, value);
  else
    g_ptr_array_add (c->errors, g_steal_pointer (&error));
  fm_map_next_async (c->map, NULL, on_next, c);
}

static void
collect_init (Collect *c)
{
  c->loop = g_main_loop_new (NULL, FALSE);
  c->indexes = g_array_new (FALSE, FALSE, sizeof (guint64));
  c->values = g_ptr_array_new_with_free_func ((GDestroyNotify) g_variant_unref);
  c->errors = g_ptr_array_new_with_free_func ((GDestroyNotify) g_error_free);
  c->finished = 0;
  c->finished_error = NULL;
}

static void
collect_clear (Collect *c)
{
  g_main_loop_unref (c->loop);
  g_array_unref (c->indexes);
  g_ptr_array_unref (c->values);
  g_ptr_array_unref (c->errors);
  g_clear_error (&c->finished_error);
}

static void
test_async (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (fail_on_five, 2);
  g_autoptr(FmMap) map = fm_mapper_map (mapper, NULL);
  Collect c;

  collect_init (&c);
  c.map = map;
  for (gint64 i = 0; i < 100; i++)
    fm_map_push (map, g_variant_new_int64 (i));
  fm_map_close (map);

  fm_map_next_async (map, NULL, on_next, &c);
  g_main_loop_run (c.loop);

  g_assert_cmpuint (c.indexes->len, ==, 100);
  g_assert_cmpuint (c.values->len, ==, 99);
  g_assert_cmpuint (c.errors->len, ==, 1);
  g_assert_error ((GError *) c.errors->pdata[0], TEST_ERROR, 42);
  for (guint i = 0; i < 100; i++)
    g_assert_cmpuint (g_array_index (c.indexes, guint64, i), ==, i);
  collect_clear (&c);
}

static void
test_async_source (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (twice, 2);
  g_autoptr(FmMap) map = NULL;
  Counter counter = { 0, 300, FALSE };
  Collect c;

  fm_mapper_set_max_in_flight (mapper, 8);
  map = fm_mapper_map (mapper, NULL);
  collect_init (&c);
  c.map = map;
  fm_map_set_source (map, count_source, &counter, NULL);
  fm_map_next_async (map, NULL, on_next, &c);
  g_main_loop_run (c.loop);

  g_assert_cmpuint (c.values->len, ==, 300);
  for (guint i = 0; i < 300; i++)
    g_assert_cmpint (g_variant_get_int64 (c.values->pdata[i]), ==, 2 * (gint64) i);
  collect_clear (&c);
}

static void
on_result (FmMap    *map,
           guint64   index,
           GVariant *value,
           gpointer  data)
{
  Collect *c = data;

  g_assert_true (g_main_context_is_owner (g_main_context_default ()));
  g_array_append_val (c->indexes, index);
  g_ptr_array_add (c->values, g_variant_ref (value));
}

static void
on_task_failed (FmMap        *map,
                guint64       index,
                const GError *error,
                gpointer      data)
{
  Collect *c = data;

  g_array_append_val (c->indexes, index);
  g_ptr_array_add (c->errors, g_error_copy (error));
}

static void
on_finished (FmMap        *map,
             const GError *error,
             gpointer      data)
{
  Collect *c = data;

  c->finished++;
  c->finished_error = error ? g_error_copy (error) : NULL;
  g_main_loop_quit (c->loop);
}

static void
test_signals (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (fail_on_five, 2);
  g_autoptr(FmMap) map = fm_mapper_map (mapper, NULL);
  Collect c;

  collect_init (&c);
  g_signal_connect (map, "result", G_CALLBACK (on_result), &c);
  g_signal_connect (map, "task-failed", G_CALLBACK (on_task_failed), &c);
  g_signal_connect (map, "finished", G_CALLBACK (on_finished), &c);
  for (gint64 i = 0; i < 3000; i++)
    fm_map_push (map, g_variant_new_int64 (i));
  fm_map_close (map);
  g_main_loop_run (c.loop);

  g_assert_cmpuint (c.finished, ==, 1);
  g_assert_no_error (c.finished_error);
  g_assert_cmpuint (c.indexes->len, ==, 3000);
  g_assert_cmpuint (c.errors->len, ==, 1);
  g_assert_cmpuint (c.values->len, ==, 2999);
  g_assert_error ((GError *) c.errors->pdata[0], TEST_ERROR, 42);
  for (guint i = 0; i < 3000; i++)
    g_assert_cmpuint (g_array_index (c.indexes, guint64, i), ==, i);
  /* The values too, each at its place (the failed task's is not one). */
  for (guint i = 0; i < 2999; i++)
    {
      gint64 x = i < 5 ? i : i + 1;

      g_assert_cmpint (g_variant_get_int64 (c.values->pdata[i]), ==, x * x);
    }
  collect_clear (&c);
}

typedef struct
{
  FmMap      *map;
  const char *path;
  guint       n;
  gboolean    all_arrived;
} Pusher;

/* Pushes the tasks one by one, each after the consumer has had time to go
 * to sleep, and closes the input once all of them have started (closing
 * sends what waits). */
static gpointer
push_slowly (gpointer data)
{
  Pusher *p = data;
  gint64 deadline;

  for (guint i = 0; i < p->n; i++)
    {
      g_usleep (20 * 1000);
      fm_map_push (p->map, g_variant_new ("(su)", p->path, p->n));
    }
  deadline = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;
  while (!p->all_arrived && g_get_monotonic_time () < deadline)
    {
      GStatBuf st = { 0 };

      p->all_arrived = g_stat (p->path, &st) == 0 && st.st_size >= p->n;
      g_usleep (2000);
    }
  fm_map_close (p->map);
  return NULL;
}

/* Tasks pushed one by one while the consumer waits, in fm_map_next(), in
 * fm_map_next_async() or for the signals, and that each wait for all the
 * others to start: every push must go out without another push, a result
 * or the end of the input to send it. (Pushes past the first few per
 * worker waited for one of those, and so these for their deadline:
 * Python's fast_map() hit it when a ping was pushed just after its
 * consumer had gone to sleep.) */
static void
test_pushes_go_out_while_nothing_comes_back (gconstpointer data)
{
  const char *how = data;
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (arrive_and_wait, 2);
  g_autoptr(FmMap) map = fm_mapper_map (mapper, NULL);
  g_autofree char *dir = g_dir_make_tmp ("fm-test-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "arrived", NULL);
  Pusher pusher = { map, path, 12, FALSE };
  g_autoptr(GPtrArray) values = NULL;
  GThread *thread;
  Collect c;

  collect_init (&c);
  c.map = map;
  g_assert_true (g_file_set_contents (path, "", 0, NULL));
  if (g_str_equal (how, "signals"))
    {
      g_signal_connect (map, "result", G_CALLBACK (on_result), &c);
      g_signal_connect (map, "finished", G_CALLBACK (on_finished), &c);
    }
  thread = g_thread_new ("pusher", push_slowly, &pusher);
  if (g_str_equal (how, "next"))
    values = take_all (map, NULL);
  else
    {
      if (g_str_equal (how, "async"))
        fm_map_next_async (map, NULL, on_next, &c);
      g_main_loop_run (c.loop);
      values = g_ptr_array_ref (c.values);
    }
  g_thread_join (thread);

  g_assert_true (pusher.all_arrived);
  g_assert_cmpuint (values->len, ==, pusher.n);
  for (guint i = 0; i < pusher.n; i++)
    g_assert_cmpuint (g_variant_get_uint32 (values->pdata[i]), ==, pusher.n);
  collect_clear (&c);
  g_unlink (path);
  g_rmdir (dir);
}

static gpointer
cancel_later (gpointer data)
{
  g_usleep (100000);
  g_cancellable_cancel (data);
  return NULL;
}

static void
test_cancel (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (slow_square, 2);
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(FmMap) map = fm_mapper_map (mapper, cancellable);
  g_autoptr(GError) error = NULL;
  g_autoptr(GThread) thread = NULL;
  GVariant *value;
  GPid pids[2];

  for (gint64 i = 0; i < 10; i++)
    fm_map_push (map, g_variant_new ("(xu)", i, (guint32) (i == 0 ? 0 : 60000)));
  fm_map_close (map);

  value = fm_map_next (map, NULL, &error);
  g_assert_no_error (error);
  g_variant_unref (value);
  pids[0] = fm_map_get_worker_pid (map, 0);
  pids[1] = fm_map_get_worker_pid (map, 1);

  /* Cancelled from another thread while this one waits. */
  thread = g_thread_new ("cancel", cancel_later, cancellable);
  value = fm_map_next (map, NULL, &error);
  g_assert_null (value);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);
  g_assert_null (fm_map_next (map, NULL, &error));
  g_assert_no_error (error);
  /* Killed and reaped long before their 60 s tasks would end: 20 s, as a
   * loaded CI machine under AddressSanitizer once took more than 5. */
  g_assert_true (fm_test_process_gone (pids[0], 20000));
  g_assert_true (fm_test_process_gone (pids[1], 20000));
}

static void
test_worker_killed (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (slow_square, 2);
  g_autoptr(FmMap) map = fm_mapper_map (mapper, NULL);
  g_autoptr(GPtrArray) values = NULL;
  GPid victim;

  for (gint64 i = 0; i < 40; i++)
    fm_map_push (map, g_variant_new ("(xu)", i, (guint32) 200));
  fm_map_close (map);

  g_usleep (50000);
  victim = fm_map_get_worker_pid (map, 0);
  g_assert_cmpint (victim, >, 0);
  g_assert_cmpint (kill (victim, SIGKILL), ==, 0);

  values = take_all (map, NULL);
  g_assert_cmpuint (values->len, ==, 40);
  for (guint i = 0; i < 40; i++)
    g_assert_cmpint (g_variant_get_int64 (values->pdata[i]), ==, (gint64) i * i);
  /* The dead worker was replaced. */
  g_assert_true (fm_test_process_gone (victim, 5000));
}

static void
count_ends (const char     *domain,
            GLogLevelFlags  level,
            const char     *message,
            gpointer        data)
{
  guint *counts = data;

  if (strstr (message, "killed by signal") != NULL)
    counts[0]++;
  else if (strstr (message, "exited with status 0") != NULL)
    counts[1]++;
}

/* A worker ends by itself when its map ends, not killed after the 2 s
 * the map gives it: a ticker that was starting runners as the map ended
 * missed the signal to stop and waited for ever (a short map in three, in
 * /mapper/take-worker/bad-arguments). */
static void
test_workers_end_by_themselves (void)
{
  g_autoptr(FmMapper) mapper = fm_test_mapper_for (fm_test_square, 1);
  guint counts[2] = { 0, 0 };
  guint handler = g_log_set_handler ("FastMap", G_LOG_LEVEL_DEBUG, count_ends, counts);

  for (guint round = 0; round < 30; round++)
    {
      g_autoptr(FmMap) map = fm_mapper_map (mapper, NULL);

      for (gint64 i = 0; i < 10; i++)
        fm_map_push (map, g_variant_new_int64 (i));
      fm_map_close (map);
      for (gint64 i = 0; i < 10; i++)
        {
          g_autoptr(GVariant) value = fm_map_next (map, NULL, NULL);

          g_assert_cmpint (g_variant_get_int64 (value), ==, i * i);
        }
      g_assert_null (fm_map_next (map, NULL, NULL));
    }
  g_log_remove_handler ("FastMap", handler);
  g_assert_cmpuint (counts[0], ==, 0);
  g_assert_cmpuint (counts[1], ==, 30);
}

int
main (int    argc,
      char **argv)
{
  g_autofree char *release_dir = NULL;
  g_autofree char *release = NULL;
  int status;

  fm_init (&argc, &argv);
  g_test_init (&argc, &argv, NULL);
  /* held_zero()'s release file, named before any thread starts, for
   * every worker to inherit. */
  release_dir = g_dir_make_tmp ("fm-test-map-XXXXXX", NULL);
  g_assert_nonnull (release_dir);
  release = g_build_filename (release_dir, "release", NULL);
  g_setenv ("FM_TEST_RELEASE", release, TRUE);

  g_test_add_func ("/map/order-random-delays", test_order_random_delays);
  g_test_add_func ("/map/workers-end-by-themselves", test_workers_end_by_themselves);
  g_test_add_func ("/map/hundred-thousand", test_hundred_thousand);
  g_test_add_func ("/map/n-processes", test_n_processes);
  g_test_add_func ("/map/threads-limit", test_threads_limit);
  g_test_add_func ("/map/no-threads-limit", test_no_threads_limit);
  g_test_add_func ("/map/unordered", test_unordered);
  g_test_add_func ("/map/failing-task", test_failing_task);
  g_test_add_func ("/map/function-returns-null", test_function_returns_null);
  g_test_add_func ("/map/module-worker", test_module_worker);
  g_test_add_func ("/map/argv-worker", test_argv_worker);
  g_test_add_func ("/map/bytes-worker", test_bytes_worker);
  g_test_add_data_func ("/map/source-window", GINT_TO_POINTER (FALSE), test_source_window);
  g_test_add_func ("/map/endless-source", test_endless_source);
  g_test_add_func ("/map/function-prints", test_function_prints);
  g_test_add_func ("/map/mixed-types", test_mixed_types);
  g_test_add_func ("/map/push/numbers-are-copied", test_pushed_numbers_are_copied);
  g_test_add_func ("/map/push/numbers-beside-arrays", test_pushed_numbers_beside_arrays);
  g_test_add_func ("/map/numbers-without-bytes", test_numbers_without_bytes);
  g_test_add_data_func ("/map/pushes-go-out-while-nothing-comes-back/next",
                        "next", test_pushes_go_out_while_nothing_comes_back);
  g_test_add_data_func ("/map/pushes-go-out-while-nothing-comes-back/async",
                        "async", test_pushes_go_out_while_nothing_comes_back);
  g_test_add_data_func ("/map/pushes-go-out-while-nothing-comes-back/signals",
                        "signals", test_pushes_go_out_while_nothing_comes_back);
  g_test_add_func ("/map/empty", test_empty);
  g_test_add_func ("/map/huge-result", test_huge_result);
  g_test_add_func ("/map/huge-task", test_huge_task);
  g_test_add_data_func ("/map/push-array", GINT_TO_POINTER (FALSE), test_push_array);
  g_test_add_data_func ("/map/push-array-worker-killed", GINT_TO_POINTER (FALSE),
                        test_push_array_worker_killed);
  g_test_add_data_func ("/map/next-array/push-array", GINT_TO_POINTER (TRUE), test_push_array);
  g_test_add_data_func ("/map/next-array/push-array-worker-killed", GINT_TO_POINTER (TRUE),
                        test_push_array_worker_killed);
  g_test_add_func ("/map/next-array/mixed-types", test_next_array_mixed_types);
  g_test_add_func ("/map/next-array/failing-task", test_next_array_failing_task);
  g_test_add_func ("/map/next-array/unordered", test_next_array_unordered);
  g_test_add_func ("/map/next-array/and-next", test_next_array_and_next);
  g_test_add_func ("/map/next-array/async", test_next_array_async);
  g_test_add_data_func ("/map/next-array/source", GINT_TO_POINTER (TRUE), test_source_window);
  g_test_add_data_func ("/map/next-array/dropped-early/ordered", GINT_TO_POINTER (TRUE),
                        test_next_array_dropped_early);
  g_test_add_data_func ("/map/next-array/dropped-early/unordered", GINT_TO_POINTER (FALSE),
                        test_next_array_dropped_early);
  g_test_add_data_func ("/map/window/widens", GINT_TO_POINTER (WINDOW_WIDENS), test_window);
  g_test_add_data_func ("/map/window/tasks-pushed", GINT_TO_POINTER (WINDOW_TASKS_PUSHED),
                        test_window);
  g_test_add_data_func ("/map/window/string-results", GINT_TO_POINTER (WINDOW_STRING_RESULTS),
                        test_window);
  g_test_add_data_func ("/map/window/set", GINT_TO_POINTER (WINDOW_SET), test_window);
  g_test_add_data_func ("/map/window/tasks-wait", GINT_TO_POINTER (WINDOW_TASKS_WAIT), test_window);
  g_test_add_func ("/map/window/widens-in-order", test_window_widens_in_order);
  g_test_add_func ("/map/blocking-task-in-chunk", test_blocking_task_in_chunk);
  g_test_add_func ("/map/results-before-a-blocking-task", test_results_before_a_blocking_task);
  g_test_add_func ("/map/results-before-a-blocking-last-task", test_results_before_a_blocking_last_task);
  g_test_add_func ("/map/tiny-tasks-few-threads", test_tiny_tasks_few_threads);
  g_test_add_func ("/map/pauses-of-the-consumer-start-no-threads",
                   test_pauses_of_the_consumer_start_no_threads);
  g_test_add_func ("/map/tasks-behind-a-lock-few-threads", test_tasks_behind_a_lock_few_threads);
  g_test_add_func ("/map/waits-on-futexes-of-their-own-overlap",
                   test_waits_on_futexes_of_their_own_overlap);
  g_test_add_func ("/map/worker-fails-to-start", test_worker_fails_to_start);
  g_test_add_func ("/map/async", test_async);
  g_test_add_func ("/map/async-source", test_async_source);
  g_test_add_func ("/map/signals", test_signals);
  g_test_add_func ("/map/cancel", test_cancel);
  g_test_add_func ("/map/worker-killed", test_worker_killed);

  status = g_test_run ();
  g_rmdir (release_dir);
  return status;
}
