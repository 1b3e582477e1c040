/* bad-worker.c: a worker that breaks the protocol, one way per mode
 *
 * Usage: fm-bad-worker MODE [MARKER]
 *
 * It speaks the protocol by hand: reads the CONFIG frame, says HELLO
 * (except in the modes that break the greeting), reads one TASKS batch of
 * int64 values, then misbehaves as MODE says.  After misbehaving it waits
 * for the parent to close the stream (or to kill it), then exits, so that
 * a parent that does nothing would hang and a test would see it.
 *
 * With MARKER, only the first worker to create the file MARKER
 * misbehaves; the others serve x → x * x properly with fm_worker_serve(),
 * so a test sees a bad worker killed and replaced, and every result.
 *
 * Modes:
 *   truncated-header     5 bytes of a frame header, then exits
 *   truncated-frame      a header for 100 bytes, 20 of them, then exits
 *   stall-mid-frame      a header for 100 bytes, 20 of them, then silence
 *   oversized            a RESULTS header one byte over FM_WIRE_MAX_FRAME
 *   garbage-length       a RESULTS header of 0xffffffff bytes
 *   garbage              text that is not a frame at all
 *   unknown-kind         a frame of kind 0x7f
 *   parent-kind          the TASKS batch sent back as a TASKS frame
 *   config-kind          a CONFIG frame
 *   hello-twice          a second HELLO
 *   unknown-index        a result for an index that was never sent
 *   duplicate-index      every result right, then the same frame again
 *   error-unknown-index  a well-formed ERROR for an index never sent
 *   count-mismatch       a RESULTS frame that says 2 values, holds 1
 *   bad-type             a RESULTS frame whose value type is invalid
 *   bad-error            an ERROR frame that is not a (tsiss)
 *   silent               takes the tasks, never answers
 *   bad-hello            a HELLO with the wrong magic (before any task)
 *   no-hello             a RESULTS frame instead of HELLO
 *
 * And modes that keep the protocol:
 *   other-byte-order     as a worker of the other byte order does (a
 *                        remote one on another machine): says so in its
 *                        hello and sends every value byteswapped; serves
 *                        x → x * x for int64 tasks and gives back any
 *                        other task as it is
 *   window               serves x → x * x for int64 tasks, to show how
 *                        many tasks the parent lets it hold (see
 *                        serve_window())
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fastmap.h>

#include "fm-test-util.h"
#include "fm-wire.h"

static int in_fd = 0;
static int out_fd = 1;

static void
die (const char *what,
     GError     *error)
{
  g_printerr ("fm-bad-worker: %s: %s\n", what, error ? error->message : g_strerror (errno));
  exit (1);
}

static void
put (const void *data,
     gsize       len)
{
  struct iovec iov = { (void *) data, len };
  g_autoptr(GError) error = NULL;

  if (!fm_wire_write_all (out_fd, &iov, 1, &error))
    die ("write", error);
}

static void
put_header (guint32 size,
            guint8  kind)
{
  guint8 h[FM_WIRE_HEADER_SIZE] = { 0 };
  guint32 le = GUINT32_TO_LE (size);

  memcpy (h, &le, 4);
  h[4] = kind;
  put (h, sizeof h);
}

/* Waits until the parent closes the stream or kills us. */
static void
linger (void)
{
  char buf[4096];

  for (;;)
    {
      gssize n = read (in_fd, buf, sizeof buf);

      if (n > 0 || (n < 0 && errno == EINTR))
        continue;
      exit (0);
    }
}

static void
read_config (void)
{
  g_autoptr(GBytes) payload = NULL;
  g_autoptr(GError) error = NULL;
  FmWireConfig config;
  guint8 kind;

  if (fm_wire_read_frame (in_fd, &kind, &payload, &error) <= 0 || kind != FM_FRAME_CONFIG ||
      !fm_wire_parse_config (payload, &config, &error))
    die ("reading the configuration", error);
}

static void
read_batch (FmWireBatch *batch)
{
  g_autoptr(GBytes) payload = NULL;
  g_autoptr(GError) error = NULL;
  guint8 kind;

  if (fm_wire_read_frame (in_fd, &kind, &payload, &error) <= 0 || kind != FM_FRAME_TASKS ||
      !fm_wire_parse_batch (payload, FALSE, batch, &error))
    {
      /* The parent closed the stream before giving us anything. */
      exit (0);
    }
}

/* The batch's own answers: its indexes and squares. */
static void
write_answers (FmWireBatch *batch,
               FmFrameKind  kind)
{
  g_autofree guint64 *indexes = g_new (guint64, batch->count);
  g_autofree GVariant **values = g_new (GVariant *, batch->count);
  g_autoptr(GError) error = NULL;

  for (guint i = 0; i < batch->count; i++)
    {
      g_autoptr(GVariant) task = g_variant_get_child_value (batch->values, i);

      indexes[i] = fm_wire_batch_index (batch, i);
      values[i] = g_variant_ref_sink (fm_test_square (task, NULL, NULL));
    }
  if (!fm_wire_write_batch (out_fd, kind, indexes, values, NULL, batch->count, 8, 0, &error))
    die ("write", error);
  for (guint i = 0; i < batch->count; i++)
    g_variant_unref (values[i]);
}

static void
write_one_result (guint64 index)
{
  g_autoptr(GVariant) value = g_variant_ref_sink (g_variant_new_int64 (0));
  g_autoptr(GError) error = NULL;

  if (!fm_wire_write_batch (out_fd, FM_FRAME_RESULTS, &index, &value, NULL, 1, 8, 0, &error))
    die ("write", error);
}

/* A RESULTS payload by hand: batch header, indexes, type, values. */
static void
write_raw_results (guint32      count,
                   const char  *type,
                   guint64      index,
                   gint64       value)
{
  guint8 p[64] = { 0 };
  guint32 u;
  gsize type_len = strlen (type), off;

  g_assert (type_len <= 8);
  u = GUINT32_TO_LE (count);
  memcpy (p, &u, 4);
  u = GUINT32_TO_LE ((guint32) type_len);
  memcpy (p + 4, &u, 4);
  index = GUINT64_TO_LE (index);
  memcpy (p + 16, &index, 8);
  memcpy (p + 16 + 8 * count, type, type_len);
  off = 16 + 8 * count + 8;
  memcpy (p + off, &value, 8);
  put_header (off + 8, FM_FRAME_RESULTS);
  put (p, off + 8);
}

static void
write_hello_in (guint32 magic,
                guint32 byte_order)
{
  guint8 p[24] = { 0 };
  guint32 u;
  gint64 pid = GINT64_TO_LE (getpid ());

  u = GUINT32_TO_LE (magic);
  memcpy (p, &u, 4);
  u = GUINT32_TO_LE (FM_WIRE_VERSION);
  memcpy (p + 4, &u, 4);
  u = GUINT32_TO_LE (byte_order);
  memcpy (p + 8, &u, 4);
  memcpy (p + 16, &pid, 8);
  put_header (sizeof p, FM_FRAME_HELLO);
  put (p, sizeof p);
}

static void
write_hello (guint32 magic)
{
  write_hello_in (magic, G_BYTE_ORDER);
}

/* The worker of the other byte order. What the parent sends is in its
 * order, which is this machine's: read as it is. What goes back is
 * byteswapped as a whole array (a worker of that order would write the
 * framing offsets of its arrays in it too). */
static void
serve_other_byte_order (void)
{
  write_hello_in (FM_WIRE_MAGIC, G_BYTE_ORDER == G_LITTLE_ENDIAN ? G_BIG_ENDIAN : G_LITTLE_ENDIAN);
  for (;;)
    {
      FmWireBatch batch = { 0 };
      g_autofree guint64 *indexes = NULL;
      g_autofree GVariant **values = NULL;
      g_autoptr(GVariant) array = NULL;
      g_autoptr(GVariant) swapped = NULL;
      g_autoptr(GError) error = NULL;
      const char *type;

      read_batch (&batch);
      indexes = g_new (guint64, batch.count);
      values = g_new (GVariant *, batch.count);
      for (guint i = 0; i < batch.count; i++)
        {
          g_autoptr(GVariant) task = g_variant_get_child_value (batch.values, i);

          indexes[i] = fm_wire_batch_index (&batch, i);
          values[i] = g_variant_is_of_type (task, G_VARIANT_TYPE_INT64)
            ? fm_test_square (task, NULL, NULL) : g_variant_ref (task);
        }
      type = g_variant_get_type_string (values[0]);
      array = g_variant_ref_sink (g_variant_new_array (g_variant_get_type (values[0]),
                                                       values, batch.count));
      swapped = g_variant_take_ref (g_variant_byteswap (array));
      if (!fm_wire_write_raw_batch (out_fd, FM_FRAME_RESULTS, indexes, batch.count, type,
                                    g_variant_get_data (swapped), g_variant_get_size (swapped),
                                    4096, 0, &error))
        die ("write", error);
      fm_wire_batch_clear (&batch);
    }
}

/* Whether the parent sends something (or closes) within @timeout_ms. */
static gboolean
readable_within (guint timeout_ms)
{
  struct pollfd pfd = { .fd = in_fd, .events = POLLIN };
  int n;

  while ((n = poll (&pfd, 1, (int) timeout_ms)) < 0 && errno == EINTR)
    ;
  if (n < 0)
    die ("poll", NULL);
  return n > 0;
}

/* A frame of int64 results for the writer thread. */
typedef struct
{
  guint64 *indexes;
  gint64  *values;
  guint    count;
  guint32  flags;
} Numbers;

/* Writes what the window mode queues: the parent may wait to send tasks
 * until its results are read, so reading the tasks never waits for a
 * write, as in a worker of ours. */
static gpointer
number_writer (gpointer data)
{
  GAsyncQueue *queue = data;

  for (;;)
    {
      Numbers *r = g_async_queue_pop (queue);
      g_autoptr(GError) error = NULL;

      if (!fm_wire_write_raw_batch (out_fd, FM_FRAME_RESULTS, r->indexes, r->count, "x",
                                    r->values, r->count * sizeof (gint64), G_MAXUINT32,
                                    r->flags, &error))
        die ("write", error);
      g_free (r->indexes);
      g_free (r->values);
      g_free (r);
    }
  return NULL;
}

static void
queue_numbers (GAsyncQueue *queue,
               guint64     *indexes,
               gint64      *values,
               guint        count,
               guint32      flags)
{
  Numbers *r;

  if (count == 0)
    {
      g_free (indexes);
      g_free (values);
      return;
    }
  r = g_new (Numbers, 1);
  *r = (Numbers) { indexes, values, count, flags };
  g_async_queue_push (queue, r);
}

/* The window mode, for int64 tasks: x → x * x, but for two tasks held.
 * Tasks before FM_TEST_WINDOW_TINY_UNTIL come back as they come, flagged
 * tiny. The first from there on is held, and the others come back
 * flagged not tiny. Once the parent has sent nothing for 200 ms (its
 * window is full), the held task comes back, and its result is the
 * highest index this worker was sent; the first task after that is held
 * the same way. Then x * x for every task, flagged not tiny. So the
 * result of task FM_TEST_WINDOW_TINY_UNTIL says how far the parent went
 * while its window was wide, and the result of the task after that index
 * how far it went once this worker no longer found the tasks tiny. */
static void
serve_window (void)
{
  GAsyncQueue *queue = g_async_queue_new ();
  guint64 max_seen = 0, held = 0;
  gboolean holding = FALSE;
  guint holds = 0;

  write_hello (FM_WIRE_MAGIC);
  g_thread_unref (g_thread_new ("writer", number_writer, queue));
  for (;;)
    {
      FmWireBatch batch = { 0 };
      guint64 *indexes;
      gint64 *values;
      const gint64 *tasks;
      gsize n;
      guint count = 0;

      if (holding && !readable_within (200))
        {
          queue_numbers (queue, g_memdup2 (&held, sizeof held),
                         g_memdup2 (&max_seen, sizeof max_seen), 1, 0);
          holding = FALSE;
          holds++;
          continue;
        }
      read_batch (&batch);
      tasks = g_variant_get_fixed_array (batch.values, &n, sizeof (gint64));
      g_assert (n == batch.count);
      indexes = g_new (guint64, n);
      values = g_new (gint64, n);
      for (gsize i = 0; i < n; i++)
        {
          guint64 index = fm_wire_batch_index (&batch, i);

          max_seen = MAX (max_seen, index);
          if (!holding && holds < 2 && index >= FM_TEST_WINDOW_TINY_UNTIL)
            {
              held = index;
              holding = TRUE;
              continue;
            }
          indexes[count] = index;
          values[count++] = tasks[i] * tasks[i];
        }
      queue_numbers (queue, indexes, values, count,
                     holds == 0 && !holding ? FM_WIRE_BATCH_TINY : 0);
      fm_wire_batch_clear (&batch);
    }
}

static void
misbehave (const char  *mode,
           FmWireBatch *batch)
{
  static const guint8 partial[20] = { 1, 0, 0, 0, 1, 0, 0, 0 };
  guint64 first = fm_wire_batch_index (batch, 0);

  if (g_str_equal (mode, "truncated-header"))
    {
      put ("\x40\0\0\0\4", 5);
      exit (0);
    }
  else if (g_str_equal (mode, "truncated-frame"))
    {
      put_header (100, FM_FRAME_RESULTS);
      put (partial, sizeof partial);
      exit (0);
    }
  else if (g_str_equal (mode, "stall-mid-frame"))
    {
      put_header (100, FM_FRAME_RESULTS);
      put (partial, sizeof partial);
    }
  else if (g_str_equal (mode, "oversized"))
    put_header (FM_WIRE_MAX_FRAME + 1, FM_FRAME_RESULTS);
  else if (g_str_equal (mode, "garbage-length"))
    put_header (0xffffffffu, FM_FRAME_RESULTS);
  else if (g_str_equal (mode, "garbage"))
    put ("this is not a fastmap frame, not at all\n", 40);
  else if (g_str_equal (mode, "unknown-kind"))
    {
      put_header (8, 0x7f);
      put ("\0\0\0\0\0\0\0\0", 8);
    }
  else if (g_str_equal (mode, "parent-kind"))
    write_answers (batch, FM_FRAME_TASKS);
  else if (g_str_equal (mode, "config-kind"))
    {
      FmWireConfig config = { 0, G_BYTE_ORDER };

      fm_wire_write_config (out_fd, &config, NULL);
    }
  else if (g_str_equal (mode, "hello-twice"))
    write_hello (FM_WIRE_MAGIC);
  else if (g_str_equal (mode, "unknown-index"))
    write_one_result (G_GUINT64_CONSTANT (1) << 40);
  else if (g_str_equal (mode, "duplicate-index"))
    {
      write_answers (batch, FM_FRAME_RESULTS);
      write_answers (batch, FM_FRAME_RESULTS);
    }
  else if (g_str_equal (mode, "error-unknown-index"))
    {
      g_autoptr(GError) task_error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_FAILED, "boo");

      fm_wire_write_error (out_fd, G_GUINT64_CONSTANT (1) << 40, task_error, NULL, NULL);
    }
  else if (g_str_equal (mode, "count-mismatch"))
    write_raw_results (2, "x", first, 0);
  else if (g_str_equal (mode, "bad-type"))
    write_raw_results (1, "(", first, 0);
  else if (g_str_equal (mode, "bad-error"))
    {
      put_header (5, FM_FRAME_ERROR);
      put ("\1\2\3\4\5", 5);
    }
  else if (g_str_equal (mode, "silent"))
    ;
  else
    {
      g_printerr ("fm-bad-worker: unknown mode %s\n", mode);
      exit (2);
    }
  linger ();
}

/* TRUE for the one worker that creates @marker first. */
static gboolean
first_run (const char *marker)
{
  int fd = open (marker, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  g_autofree char *pid = NULL;

  if (fd < 0)
    return FALSE;
  pid = g_strdup_printf ("%d\n", (int) getpid ());
  if (write (fd, pid, strlen (pid)) < 0)
    die ("marker", NULL);
  close (fd);
  return TRUE;
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(GError) error = NULL;
  FmWireBatch batch = { 0 };
  const char *mode;

  if (argc < 2)
    {
      g_printerr ("usage: fm-bad-worker MODE [MARKER]\n");
      return 2;
    }
  mode = argv[1];

  if (argc > 2 && !first_run (argv[2]))
    {
      if (!fm_worker_serve (fm_test_square, NULL, &error))
        die ("serving", error);
      return 0;
    }

  read_config ();
  if (g_str_equal (mode, "other-byte-order"))
    serve_other_byte_order ();
  if (g_str_equal (mode, "window"))
    serve_window ();
  if (g_str_equal (mode, "bad-hello"))
    {
      write_hello (0xdeadbeef);
      linger ();
    }
  if (g_str_equal (mode, "no-hello"))
    {
      write_raw_results (1, "x", 0, 0);
      linger ();
    }
  write_hello (FM_WIRE_MAGIC);
  read_batch (&batch);
  misbehave (mode, &batch);
  return 0;
}
