/* fm-wire.h: frames on a worker's stdin/stdout (private)
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>
#include <sys/uio.h>

G_BEGIN_DECLS

/* The protocol, both directions, is a sequence of frames:
 *
 *   frame   := u32 size (LE), u8 kind, u8[3] zero, payload[size]
 *
 * The header is 8 bytes so that a payload read into a fresh g_malloc()
 * buffer is 8-aligned, which GVariant needs to read data in place.
 *
 *   CONFIG  (parent → worker, first frame):  u32 magic, u32 version,
 *            u32 byte order (G_BYTE_ORDER of the sender), u32 threads (0 = no limit),
 *            u32 task timeout in ms (0 = none)
 *   HELLO   (worker → parent, first frame):  u32 magic, u32 version,
 *            u32 byte order, u32 reserved, i64 pid
 *   TASKS   (parent → worker) and
 *   RESULTS (worker → parent), a batch:
 *            u32 count, u32 type length, u32 credit, u32 flags,
 *            u64 index[count], type string, zero padding to 8,
 *            the serialized GVariant of type "a" + type holding the values
 *   ERROR   (worker → parent): one failed task, a serialized "(tsiss)":
 *            index, error domain, code, message, remote traceback
 *
 * Integers of the headers are little-endian; GVariant data is in the
 * sender's byte order, which CONFIG and HELLO declare, and is byteswapped
 * by a receiver of the other order.  A batch's values all have one type:
 * a batch that is an array of the values' own type ("ax" for int64 tasks)
 * costs one GVariant per value on each side and no per-value boxing, which
 * measured about eight times cheaper than an "a(tv)" built with
 * GVariantBuilder (see DESIGN.md, "Performance notes").
 *
 * The "credit" of a RESULTS frame is how many tasks the worker wants to
 * hold at once, given the cost of a task it has measured (G_MAXUINT32: no
 * limit of its own). Its flags say how the worker finds the tasks:
 * FM_WIRE_BATCH_TINY when those it ran lately, these included, took
 * 100 µs or less each on average (it runs them in chunks of several),
 * which lets the parent widen its default window (fm-map.c,
 * widen_locked()). A TASKS frame's flags are 0, and a receiver ignores
 * the flags it does not know.
 */

#define FM_WIRE_MAGIC        0x50414d46u  /* "FMAP" read as LE */
#define FM_WIRE_VERSION      1u
#define FM_WIRE_HEADER_SIZE  8u

#define FM_WIRE_BATCH_TINY   (1u << 0)

/**
 * FM_WIRE_MAX_FRAME:
 *
 * The largest payload a peer may send: 64 MiB. A larger length prefix is
 * a protocol error and nothing is allocated for it.
 */
#define FM_WIRE_MAX_FRAME    (64u * 1024u * 1024u)

typedef enum
{
  FM_FRAME_CONFIG  = 1,
  FM_FRAME_HELLO   = 2,
  FM_FRAME_TASKS   = 3,
  FM_FRAME_RESULTS = 4,
  FM_FRAME_ERROR   = 5,
} FmFrameKind;

typedef struct
{
  guint32 threads;
  guint32 byte_order;
  guint32 timeout_ms;
} FmWireConfig;

typedef struct
{
  guint32 byte_order;
  gint64  pid;
} FmWireHello;

/* A batch read from a frame; the index array points into the frame. */
typedef struct
{
  GBytes        *frame;    /* owned */
  const guint64 *indexes;  /* borrowed from frame, little-endian */
  guint32        count;
  guint32        credit;
  guint32        flags;    /* FM_WIRE_BATCH_TINY... */
  GVariant      *values;   /* owned, an array of count values */
} FmWireBatch;

/* Returns 1 with a frame, 0 at a clean end of stream, -1 with @error. */
int       fm_wire_read_frame     (int                fd,
                                  guint8            *kind,
                                  GBytes           **payload,
                                  GError           **error);

gboolean  fm_wire_write_config   (int                fd,
                                  const FmWireConfig *config,
                                  GError           **error);
gboolean  fm_wire_parse_config   (GBytes            *payload,
                                  FmWireConfig      *config,
                                  GError           **error);
gboolean  fm_wire_write_hello    (int                fd,
                                  GError           **error);
gboolean  fm_wire_parse_hello    (GBytes            *payload,
                                  FmWireHello       *hello,
                                  GError           **error);

gboolean  fm_wire_write_batch    (int                fd,
                                  FmFrameKind        kind,
                                  const guint64     *indexes,
                                  GVariant * const  *values,
                                  const gsize       *sizes,
                                  guint              count,
                                  guint32            credit,
                                  guint32            flags,
                                  GError           **error);
gboolean  fm_wire_write_raw_batch (int                fd,
                                  FmFrameKind        kind,
                                  const guint64     *indexes,
                                  guint              count,
                                  const char        *type,
                                  gconstpointer      data,
                                  gsize              size,
                                  guint32            credit,
                                  guint32            flags,
                                  GError           **error);
gsize     fm_wire_fixed_size     (const char        *type);
gsize     fm_wire_number_size    (const char        *type);
void      fm_wire_copy_number    (gpointer           dest,
                                  GVariant          *value,
                                  gsize              size);
gboolean  fm_wire_parse_batch    (GBytes            *payload,
                                  gboolean           swap,
                                  FmWireBatch       *batch,
                                  GError           **error);
void      fm_wire_batch_clear    (FmWireBatch       *batch);

static inline guint64
fm_wire_batch_index (const FmWireBatch *batch,
                     guint              i)
{
  return GUINT64_FROM_LE (batch->indexes[i]);
}

gboolean  fm_wire_write_error    (int                fd,
                                  guint64            index,
                                  const GError      *task_error,
                                  const char        *traceback,
                                  GError           **error);
gboolean  fm_wire_parse_error    (GBytes            *payload,
                                  gboolean           swap,
                                  guint64           *index,
                                  GError           **task_error,
                                  GError           **error);

gboolean  fm_wire_write_all      (int                fd,
                                  const struct iovec *iov,
                                  int                n_iov,
                                  GError           **error);

G_END_DECLS
