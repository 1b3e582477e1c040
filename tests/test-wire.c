/* test-wire.c: frames, good and bad
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gio/gio.h>

#include <fastmap.h>

#include "fm-wire.h"

typedef struct
{
  int fds[2];   /* [0] is read, [1] written */
} Pipe;

static void
pipe_setup (Pipe          *p,
            gconstpointer  data)
{
  g_assert_cmpint (socketpair (AF_UNIX, SOCK_STREAM, 0, p->fds), ==, 0);
}

static void
pipe_teardown (Pipe          *p,
               gconstpointer  data)
{
  close (p->fds[0]);
  if (p->fds[1] >= 0)
    close (p->fds[1]);
}

/* Writes raw bytes, then ends the stream. */
static void
feed (Pipe         *p,
      const void   *bytes,
      gsize         len)
{
  g_assert_cmpint (write (p->fds[1], bytes, len), ==, (gssize) len);
  close (p->fds[1]);
  p->fds[1] = -1;
}

static void
header (guint8  *h,
        guint32  size,
        guint8   kind)
{
  memset (h, 0, 8);
  size = GUINT32_TO_LE (size);
  memcpy (h, &size, 4);
  h[4] = kind;
}

static void
test_batch_round_trip (Pipe          *p,
                       gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) payload = NULL;
  GVariant *values[3];
  guint64 indexes[3] = { 7, 3, 1000000000000ull };
  FmWireBatch batch = { 0 };
  guint8 kind = 0;

  values[0] = g_variant_ref_sink (g_variant_new ("(si)", "a", 1));
  values[1] = g_variant_ref_sink (g_variant_new ("(si)", "bb", -2));
  values[2] = g_variant_ref_sink (g_variant_new ("(si)", "", 3));
  g_assert_true (fm_wire_write_batch (p->fds[1], FM_FRAME_RESULTS, indexes, values, NULL, 3, 17,
                                      FM_WIRE_BATCH_TINY, &error));
  g_assert_no_error (error);

  g_assert_cmpint (fm_wire_read_frame (p->fds[0], &kind, &payload, &error), ==, 1);
  g_assert_no_error (error);
  g_assert_cmpuint (kind, ==, FM_FRAME_RESULTS);
  g_assert_true (fm_wire_parse_batch (payload, FALSE, &batch, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (batch.count, ==, 3);
  g_assert_cmpuint (batch.credit, ==, 17);
  g_assert_cmpuint (batch.flags, ==, FM_WIRE_BATCH_TINY);
  for (guint i = 0; i < 3; i++)
    {
      g_autoptr(GVariant) child = g_variant_get_child_value (batch.values, i);

      g_assert_cmpuint (fm_wire_batch_index (&batch, i), ==, indexes[i]);
      g_assert_true (g_variant_equal (child, values[i]));
      g_variant_unref (values[i]);
    }
  fm_wire_batch_clear (&batch);
}

static void
test_byteswapped_batch (Pipe          *p,
                        gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) payload = NULL;
  g_autoptr(GVariant) native = g_variant_ref_sink (g_variant_new_int64 (0x0102030405060708));
  g_autoptr(GVariant) swapped = g_variant_take_ref (g_variant_byteswap (native));
  g_autoptr(GVariant) child = NULL;
  guint64 index = 0;
  FmWireBatch batch = { 0 };
  guint8 kind;

  /* What a peer of the other byte order sends... */
  g_assert_true (fm_wire_write_batch (p->fds[1], FM_FRAME_TASKS, &index, &swapped, NULL, 1, 0, 0, &error));
  g_assert_cmpint (fm_wire_read_frame (p->fds[0], &kind, &payload, &error), ==, 1);
  /* ...reads as the same value here. */
  g_assert_true (fm_wire_parse_batch (payload, TRUE, &batch, &error));
  g_assert_no_error (error);
  child = g_variant_get_child_value (batch.values, 0);
  g_assert_cmpint (g_variant_get_int64 (child), ==, 0x0102030405060708);
  fm_wire_batch_clear (&batch);
}

static void
test_error_round_trip (Pipe          *p,
                       gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GError) task_error = NULL;
  g_autoptr(GError) sent = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "gone");
  g_autoptr(GBytes) payload = NULL;
  guint64 index = 0;
  guint8 kind;

  g_assert_true (fm_wire_write_error (p->fds[1], 99, sent, "Traceback: here", &error));
  g_assert_cmpint (fm_wire_read_frame (p->fds[0], &kind, &payload, &error), ==, 1);
  g_assert_cmpuint (kind, ==, FM_FRAME_ERROR);
  g_assert_true (fm_wire_parse_error (payload, FALSE, &index, &task_error, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (index, ==, 99);
  g_assert_error (task_error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_assert_true (g_str_has_prefix (task_error->message, "gone"));
  g_assert_nonnull (strstr (task_error->message, "Traceback: here"));
}

static void
test_greetings (Pipe          *p,
                gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) payload = NULL;
  g_autoptr(GBytes) payload2 = NULL;
  FmWireConfig config = { 12, 0 }, got = { 0 };
  FmWireHello hello;
  guint8 kind;

  g_assert_true (fm_wire_write_config (p->fds[1], &config, &error));
  g_assert_true (fm_wire_write_hello (p->fds[1], &error));
  g_assert_cmpint (fm_wire_read_frame (p->fds[0], &kind, &payload, &error), ==, 1);
  g_assert_cmpuint (kind, ==, FM_FRAME_CONFIG);
  g_assert_true (fm_wire_parse_config (payload, &got, &error));
  g_assert_cmpuint (got.threads, ==, 12);
  g_assert_cmpuint (got.byte_order, ==, G_BYTE_ORDER);
  g_assert_cmpint (fm_wire_read_frame (p->fds[0], &kind, &payload2, &error), ==, 1);
  g_assert_cmpuint (kind, ==, FM_FRAME_HELLO);
  g_assert_true (fm_wire_parse_hello (payload2, &hello, &error));
  g_assert_cmpint (hello.pid, ==, getpid ());
  g_assert_no_error (error);
}

static void
expect_read_error (Pipe       *p,
                   const void *bytes,
                   gsize       len)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) payload = NULL;
  guint8 kind;

  feed (p, bytes, len);
  g_assert_cmpint (fm_wire_read_frame (p->fds[0], &kind, &payload, &error), ==, -1);
  g_assert_error (error, FM_ERROR, FM_ERROR_PROTOCOL);
  g_assert_null (payload);
}

static void
test_clean_end (Pipe          *p,
                gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) payload = NULL;
  guint8 kind;

  feed (p, "", 0);
  g_assert_cmpint (fm_wire_read_frame (p->fds[0], &kind, &payload, &error), ==, 0);
  g_assert_no_error (error);
}

static void
test_truncated_header (Pipe          *p,
                       gconstpointer  data)
{
  expect_read_error (p, "\x10\0\0", 3);
}

static void
test_truncated_payload (Pipe          *p,
                        gconstpointer  data)
{
  guint8 bytes[8 + 5];

  header (bytes, 100, FM_FRAME_RESULTS);
  memset (bytes + 8, 'x', 5);
  expect_read_error (p, bytes, sizeof bytes);
}

static void
test_oversized (Pipe          *p,
                gconstpointer  data)
{
  guint8 bytes[8];

  /* Refused from its header: nothing is allocated for it. */
  header (bytes, FM_WIRE_MAX_FRAME + 1, FM_FRAME_RESULTS);
  expect_read_error (p, bytes, sizeof bytes);
}

static void
test_garbage_length (Pipe          *p,
                     gconstpointer  data)
{
  expect_read_error (p, "\xff\xff\xff\xff\x04\0\0\0", 8);
}

static void
test_unknown_kind (Pipe          *p,
                   gconstpointer  data)
{
  guint8 bytes[8];

  header (bytes, 0, 77);
  expect_read_error (p, bytes, sizeof bytes);
}

static void
expect_bad_batch (const void *bytes,
                  gsize       len)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) payload = g_bytes_new (bytes, len);
  FmWireBatch batch = { 0 };

  g_assert_false (fm_wire_parse_batch (payload, FALSE, &batch, &error));
  g_assert_error (error, FM_ERROR, FM_ERROR_PROTOCOL);
  g_assert_null (batch.values);
  g_test_message ("refused: %s", error->message);
}

static void
test_bad_batches (void)
{
  guint8 b[64];
  guint32 v;

  memset (b, 0, sizeof b);
  expect_bad_batch (b, 8);                      /* shorter than its header */
  expect_bad_batch (b, 32);                     /* count 0 */

  v = GUINT32_TO_LE (1000); memcpy (b, &v, 4);  /* count beyond the frame */
  v = GUINT32_TO_LE (1); memcpy (b + 4, &v, 4);
  expect_bad_batch (b, 40);

  v = GUINT32_TO_LE (1); memcpy (b, &v, 4);     /* an invalid type string */
  b[24] = '(';
  expect_bad_batch (b, 40);

  b[24] = '*';                                  /* an indefinite type */
  expect_bad_batch (b, 40);

  v = GUINT32_TO_LE (300); memcpy (b + 4, &v, 4);  /* a type longer than the frame */
  b[24] = 'x';
  expect_bad_batch (b, 40);

  v = GUINT32_TO_LE (2); memcpy (b, &v, 4);     /* two indexes, one int64 value */
  v = GUINT32_TO_LE (1); memcpy (b + 4, &v, 4);
  b[32] = 'x';
  expect_bad_batch (b, 48);
}

static void
test_bad_error_frame (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GError) task_error = NULL;
  g_autoptr(GBytes) payload = g_bytes_new ("\1\2\3garbage", 10);
  guint64 index;

  g_assert_false (fm_wire_parse_error (payload, FALSE, &index, &task_error, &error));
  g_assert_error (error, FM_ERROR, FM_ERROR_PROTOCOL);
  g_assert_null (task_error);
}

static void
test_bad_greetings (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) short_one = g_bytes_new ("FMAP", 4);
  g_autoptr(GBytes) wrong_magic = g_bytes_new ("XXXX\1\0\0\0\xd2\x04\0\0\0\0\0\0", 16);
  g_autoptr(GBytes) wrong_version = g_bytes_new ("FMAP\x09\0\0\0\xd2\x04\0\0\0\0\0\0", 16);
  FmWireConfig config;

  g_assert_false (fm_wire_parse_config (short_one, &config, &error));
  g_assert_error (error, FM_ERROR, FM_ERROR_PROTOCOL);
  g_clear_error (&error);
  g_assert_false (fm_wire_parse_config (wrong_magic, &config, &error));
  g_assert_error (error, FM_ERROR, FM_ERROR_PROTOCOL);
  g_clear_error (&error);
  g_assert_false (fm_wire_parse_config (wrong_version, &config, &error));
  g_assert_error (error, FM_ERROR, FM_ERROR_PROTOCOL);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, func) g_test_add (path, Pipe, NULL, pipe_setup, func, pipe_teardown)
  ADD ("/wire/batch-round-trip", test_batch_round_trip);
  ADD ("/wire/byteswapped-batch", test_byteswapped_batch);
  ADD ("/wire/error-round-trip", test_error_round_trip);
  ADD ("/wire/greetings", test_greetings);
  ADD ("/wire/clean-end", test_clean_end);
  ADD ("/wire/truncated-header", test_truncated_header);
  ADD ("/wire/truncated-payload", test_truncated_payload);
  ADD ("/wire/oversized", test_oversized);
  ADD ("/wire/garbage-length", test_garbage_length);
  ADD ("/wire/unknown-kind", test_unknown_kind);
#undef ADD
  g_test_add_func ("/wire/bad-batches", test_bad_batches);
  g_test_add_func ("/wire/bad-error-frame", test_bad_error_frame);
  g_test_add_func ("/wire/bad-greetings", test_bad_greetings);

  return g_test_run ();
}
