/* fuzz-frame.c: libFuzzer over everything that reads a peer's bytes
 *
 * Input: one flags byte, then a stream of bytes as a worker (or parent)
 * would write it.  Each input is
 *
 * 1. read frame by frame with fm_wire_read_frame() from a socket, as the
 *    parent's reader threads do, each frame parsed as its kind says;
 * 2. parsed directly, past the 8 bytes of a frame header, with every
 *    parser (batch, error, hello, config), whatever kind it claims.
 *
 * Bit 0 of the flags byte reads GVariant data as the other byte order.
 * Every value of a parsed batch is taken apart, so that a batch that
 * parses but lies about its contents shows up here and not in a parent.
 *
 * Run with -malloc_limit_mb=65: a frame is never larger than
 * FM_WIRE_MAX_FRAME (64 MiB), and nothing bigger may be allocated for one.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gio/gio.h>

#include "fm-error.h"
#include "fm-wire.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
take_apart (GVariant *value)
{
  g_autofree char *text = NULL;

  /* Printing visits every byte of every child. Keep it to small values:
   * the cost of printing is not what is under test. */
  if (g_variant_get_size (value) <= 4096)
    text = g_variant_print (value, TRUE);
  (void) g_variant_is_normal_form (value);
}

static void
parse_batch (GBytes   *payload,
             gboolean  swap)
{
  FmWireBatch batch = { 0 };
  g_autoptr(GError) error = NULL;
  guint64 sum = 0;

  if (!fm_wire_parse_batch (payload, swap, &batch, &error))
    {
      g_assert (error != NULL && error->domain == FM_ERROR && error->code == FM_ERROR_PROTOCOL);
      return;
    }
  g_assert (error == NULL);
  g_assert (batch.count > 0);
  g_assert (g_variant_n_children (batch.values) == batch.count);
  for (guint i = 0; i < batch.count; i++)
    {
      g_autoptr(GVariant) child = g_variant_get_child_value (batch.values, i);

      sum += fm_wire_batch_index (&batch, i);
      if (i < 64)
        take_apart (child);
    }
  (void) sum;
  fm_wire_batch_clear (&batch);
}

static void
parse_error (GBytes   *payload,
             gboolean  swap)
{
  g_autoptr(GError) task_error = NULL;
  g_autoptr(GError) error = NULL;
  guint64 index;

  if (fm_wire_parse_error (payload, swap, &index, &task_error, &error))
    {
      g_assert (task_error != NULL && task_error->message != NULL);
      g_assert (error == NULL);
    }
  else
    g_assert (error != NULL && task_error == NULL);
}

static void
parse_greetings (GBytes *payload)
{
  g_autoptr(GError) error = NULL;
  FmWireHello hello;
  FmWireConfig config;

  if (!fm_wire_parse_hello (payload, &hello, &error))
    g_assert (error != NULL);
  g_clear_error (&error);
  if (!fm_wire_parse_config (payload, &config, &error))
    g_assert (error != NULL);
}

static void
parse_as (guint8    kind,
          GBytes   *payload,
          gboolean  swap)
{
  switch (kind)
    {
    case FM_FRAME_TASKS:
    case FM_FRAME_RESULTS:
      parse_batch (payload, swap);
      break;
    case FM_FRAME_ERROR:
      parse_error (payload, swap);
      break;
    default:
      parse_greetings (payload);
      break;
    }
}

/* The stream, read as a reader thread reads it. */
static void
read_stream (const uint8_t *data,
             size_t         size,
             gboolean       swap)
{
  int sv[2];
  guint frames = 0;

  g_assert (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  g_assert (write (sv[1], data, size) == (gssize) size);
  close (sv[1]);

  for (;;)
    {
      g_autoptr(GBytes) payload = NULL;
      g_autoptr(GError) error = NULL;
      guint8 kind = 0;
      int r = fm_wire_read_frame (sv[0], &kind, &payload, &error);

      if (r < 0)
        {
          g_assert (error != NULL);
          break;
        }
      g_assert (error == NULL);
      if (r == 0)
        break;
      g_assert (payload != NULL);
      g_assert (g_bytes_get_size (payload) <= FM_WIRE_MAX_FRAME);
      g_assert (kind >= FM_FRAME_CONFIG && kind <= FM_FRAME_ERROR);
      parse_as (kind, payload, swap);
      frames++;
    }
  close (sv[0]);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  gboolean swap;

  if (size < 1)
    return 0;
  swap = data[0] & 1;
  data++;
  size--;

  /* A unix socket holds a few hundred KiB: more would block the write. */
  if (size <= 128 * 1024)
    read_stream (data, size, swap);

  if (size >= FM_WIRE_HEADER_SIZE)
    {
      /* A fresh g_malloc() copy, 8-aligned as a frame read from a socket. */
      g_autoptr(GBytes) payload = g_bytes_new (data + FM_WIRE_HEADER_SIZE,
                                               size - FM_WIRE_HEADER_SIZE);

      parse_batch (payload, swap);
      parse_error (payload, swap);
      parse_greetings (payload);
    }
  return 0;
}
