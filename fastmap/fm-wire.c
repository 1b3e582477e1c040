/* fm-wire.c: frames on a worker's stdin/stdout
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gio/gio.h>

#include "fm-error.h"
#include "fm-wire.h"

#define BATCH_HEADER_SIZE 16u
#define ALIGN8(n) (((n) + 7u) & ~(gsize) 7u)

static gboolean
protocol_error (GError     **error,
                const char  *message)
{
  g_set_error_literal (error, FM_ERROR, FM_ERROR_PROTOCOL, message);
  return FALSE;
}

static gboolean
io_error (GError     **error,
          int          errsv,
          const char  *what)
{
  g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errsv),
               "%s: %s", what, g_strerror (errsv));
  return FALSE;
}

/* Reads exactly @len bytes. Returns the number read before the end of
 * the stream (less than @len only at its end), or -1 with @error. */
static gssize
read_full (int      fd,
           void    *buf,
           gsize    len,
           GError **error)
{
  gsize done = 0;

  while (done < len)
    {
      gssize n = read (fd, (char *) buf + done, len - done);

      if (n == 0)
        break;
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          /* A peer that went away mid-stream is the end of its stream. */
          if (errno == ECONNRESET)
            break;
          io_error (error, errno, "Could not read from a worker stream");
          return -1;
        }
      done += n;
    }

  return done;
}

int
fm_wire_read_frame (int       fd,
                    guint8   *kind,
                    GBytes  **payload,
                    GError  **error)
{
  guint8 header[FM_WIRE_HEADER_SIZE];
  guint32 size;
  gssize n;
  g_autofree guint8 *buf = NULL;

  n = read_full (fd, header, sizeof header, error);
  if (n < 0)
    return -1;
  if (n == 0)
    return 0;
  if (n < (gssize) sizeof header)
    {
      protocol_error (error, "Truncated frame header");
      return -1;
    }

  memcpy (&size, header, 4);
  size = GUINT32_FROM_LE (size);
  if (size > FM_WIRE_MAX_FRAME)
    {
      g_set_error (error, FM_ERROR, FM_ERROR_PROTOCOL,
                   "Frame of %u bytes is larger than the limit of %u bytes",
                   size, FM_WIRE_MAX_FRAME);
      return -1;
    }
  if (header[4] < FM_FRAME_CONFIG || header[4] > FM_FRAME_ERROR)
    {
      g_set_error (error, FM_ERROR, FM_ERROR_PROTOCOL,
                   "Unknown frame kind %u", header[4]);
      return -1;
    }

  buf = g_malloc (MAX (size, 1));
  n = read_full (fd, buf, size, error);
  if (n < 0)
    return -1;
  if ((gsize) n < size)
    return protocol_error (error, "Truncated frame") ? 0 : -1;

  *kind = header[4];
  *payload = g_bytes_new_take (g_steal_pointer (&buf), size);
  return 1;
}

gboolean
fm_wire_write_all (int                 fd,
                   const struct iovec *iov,
                   int                 n_iov,
                   GError            **error)
{
  struct iovec local[8];
  struct msghdr msg = { 0 };
  gboolean is_socket = TRUE;

  g_assert (n_iov <= (int) G_N_ELEMENTS (local));
  memcpy (local, iov, n_iov * sizeof *iov);
  msg.msg_iov = local;
  msg.msg_iovlen = n_iov;

  while (msg.msg_iovlen > 0)
    {
      /* sendmsg() with MSG_NOSIGNAL turns a dead peer into EPIPE instead
       * of SIGPIPE; a plain pipe (ssh, a worker's stdout) says ENOTSOCK
       * once and takes writev(). */
      gssize n = is_socket ? sendmsg (fd, &msg, MSG_NOSIGNAL)
                           : writev (fd, msg.msg_iov, msg.msg_iovlen);

      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          if (errno == ENOTSOCK && is_socket)
            {
              is_socket = FALSE;
              continue;
            }
          return io_error (error, errno, "Could not write to a worker stream");
        }
      while (n > 0 && msg.msg_iovlen > 0)
        {
          if ((gsize) n >= msg.msg_iov->iov_len)
            {
              n -= msg.msg_iov->iov_len;
              msg.msg_iov++;
              msg.msg_iovlen--;
            }
          else
            {
              msg.msg_iov->iov_base = (char *) msg.msg_iov->iov_base + n;
              msg.msg_iov->iov_len -= n;
              n = 0;
            }
        }
      while (msg.msg_iovlen > 0 && msg.msg_iov->iov_len == 0)
        {
          msg.msg_iov++;
          msg.msg_iovlen--;
        }
    }

  return TRUE;
}

static void
frame_header (guint8      header[FM_WIRE_HEADER_SIZE],
              FmFrameKind kind,
              gsize       size)
{
  guint32 le = GUINT32_TO_LE ((guint32) size);

  memset (header, 0, FM_WIRE_HEADER_SIZE);
  memcpy (header, &le, 4);
  header[4] = kind;
}

static gboolean
write_simple (int          fd,
              FmFrameKind  kind,
              const void  *payload,
              gsize        size,
              GError     **error)
{
  guint8 header[FM_WIRE_HEADER_SIZE];
  struct iovec iov[2];

  frame_header (header, kind, size);
  iov[0].iov_base = header;
  iov[0].iov_len = sizeof header;
  iov[1].iov_base = (void *) payload;
  iov[1].iov_len = size;
  return fm_wire_write_all (fd, iov, 2, error);
}

static guint32
get_u32 (const guint8 *p)
{
  guint32 v;

  memcpy (&v, p, 4);
  return GUINT32_FROM_LE (v);
}

static void
put_u32 (guint8  *p,
         guint32  v)
{
  v = GUINT32_TO_LE (v);
  memcpy (p, &v, 4);
}

static gboolean
check_preamble (const guint8  *p,
                gsize          size,
                gsize          expected,
                GError       **error)
{
  if (size != expected)
    return protocol_error (error, "Greeting frame has the wrong size");
  if (get_u32 (p) != FM_WIRE_MAGIC)
    return protocol_error (error, "Peer does not speak the fastmap protocol");
  if (get_u32 (p + 4) != FM_WIRE_VERSION)
    {
      g_set_error (error, FM_ERROR, FM_ERROR_PROTOCOL,
                   "Peer speaks fastmap protocol version %u, not %u",
                   get_u32 (p + 4), FM_WIRE_VERSION);
      return FALSE;
    }
  if (get_u32 (p + 8) != G_LITTLE_ENDIAN && get_u32 (p + 8) != G_BIG_ENDIAN)
    return protocol_error (error, "Peer declared an unknown byte order");
  return TRUE;
}

gboolean
fm_wire_write_config (int                 fd,
                      const FmWireConfig *config,
                      GError            **error)
{
  guint8 p[20];

  put_u32 (p, FM_WIRE_MAGIC);
  put_u32 (p + 4, FM_WIRE_VERSION);
  put_u32 (p + 8, G_BYTE_ORDER);
  put_u32 (p + 12, config->threads);
  put_u32 (p + 16, config->timeout_ms);
  return write_simple (fd, FM_FRAME_CONFIG, p, sizeof p, error);
}

gboolean
fm_wire_parse_config (GBytes        *payload,
                      FmWireConfig  *config,
                      GError       **error)
{
  gsize size;
  const guint8 *p = g_bytes_get_data (payload, &size);

  if (!check_preamble (p, size, 20, error))
    return FALSE;
  config->byte_order = get_u32 (p + 8);
  config->threads = get_u32 (p + 12);
  config->timeout_ms = get_u32 (p + 16);
  return TRUE;
}

gboolean
fm_wire_write_hello (int      fd,
                     GError **error)
{
  guint8 p[24];
  guint64 pid = GUINT64_TO_LE ((guint64) getpid ());

  put_u32 (p, FM_WIRE_MAGIC);
  put_u32 (p + 4, FM_WIRE_VERSION);
  put_u32 (p + 8, G_BYTE_ORDER);
  put_u32 (p + 12, 0);
  memcpy (p + 16, &pid, 8);
  return write_simple (fd, FM_FRAME_HELLO, p, sizeof p, error);
}

gboolean
fm_wire_parse_hello (GBytes       *payload,
                     FmWireHello  *hello,
                     GError      **error)
{
  gsize size;
  const guint8 *p = g_bytes_get_data (payload, &size);
  guint64 pid;

  if (!check_preamble (p, size, 24, error))
    return FALSE;
  hello->byte_order = get_u32 (p + 8);
  memcpy (&pid, p + 16, 8);
  hello->pid = (gint64) GUINT64_FROM_LE (pid);
  return TRUE;
}

/* The size of a value of @type when every value of it has one size, for
 * the basic types (the ones tasks of numbers use), else 0. An array of
 * such values serializes as their bytes one after the other. */
gsize
fm_wire_fixed_size (const char *type)
{
  if (type[0] == '\0' || type[1] != '\0')
    return 0;
  switch (type[0])
    {
    case 'b': case 'y':
      return 1;
    case 'n': case 'q':
      return 2;
    case 'i': case 'u': case 'h':
      return 4;
    case 'x': case 't': case 'd':
      return 8;
    default:
      return 0;
    }
}

/* fm_wire_fixed_size(), but 0 for booleans: any bytes of the size of
 * these types are a value of it in normal form (a boolean's byte is 0 or
 * 1). */
gsize
fm_wire_number_size (const char *type)
{
  return type[0] == 'b' ? 0 : fm_wire_fixed_size (type);
}

/* Copies the bytes of @value, a value of @size bytes of a basic
 * fixed-size type: zeros for a value that GLib has no bytes for, one of
 * untrusted data of the wrong size or a child of a corrupted container,
 * whose g_variant_get_data() is %NULL (its value, for GLib, is zero). */
void
fm_wire_copy_number (gpointer  dest,
                     GVariant *value,
                     gsize     size)
{
  gconstpointer data = g_variant_get_data (value);

  if (data != NULL)
    memcpy (dest, data, size);
  else
    memset (dest, 0, size);
}

gboolean
fm_wire_write_raw_batch (int             fd,
                         FmFrameKind     kind,
                         const guint64  *indexes,
                         guint           count,
                         const char     *type,
                         gconstpointer   data,
                         gsize           size,
                         guint32         credit,
                         guint32         flags,
                         GError        **error)
{
  static const guint8 zeros[8] = { 0 };
  guint8 header[FM_WIRE_HEADER_SIZE];
  guint8 batch[BATCH_HEADER_SIZE];
  gsize type_len = strlen (type);
  gsize pad = ALIGN8 (type_len) - type_len;
  g_autofree guint64 *le = NULL;
  struct iovec iov[6];

  g_assert (count > 0);

#if G_BYTE_ORDER != G_LITTLE_ENDIAN
  le = g_new (guint64, count);
  for (guint i = 0; i < count; i++)
    le[i] = GUINT64_TO_LE (indexes[i]);
  indexes = le;
#endif

  put_u32 (batch, count);
  put_u32 (batch + 4, type_len);
  put_u32 (batch + 8, credit);
  put_u32 (batch + 12, flags);
  frame_header (header, kind,
                BATCH_HEADER_SIZE + 8 * (gsize) count + type_len + pad + size);

  iov[0] = (struct iovec) { header, sizeof header };
  iov[1] = (struct iovec) { batch, sizeof batch };
  iov[2] = (struct iovec) { (void *) indexes, 8 * (gsize) count };
  iov[3] = (struct iovec) { (void *) type, type_len };
  iov[4] = (struct iovec) { (void *) zeros, pad };
  iov[5] = (struct iovec) { (void *) data, size };
  return fm_wire_write_all (fd, iov, 6, error);
}

/* Writes a batch of @count values of one type. @sizes, if not %NULL,
 * holds their sizes: g_variant_get_size() takes a value's lock, and the
 * worker, which knows them, once asked it four times per result. */
gboolean
fm_wire_write_batch (int               fd,
                     FmFrameKind       kind,
                     const guint64    *indexes,
                     GVariant * const *values,
                     const gsize      *sizes,
                     guint             count,
                     guint32           credit,
                     guint32           flags,
                     GError          **error)
{
  const char *type = g_variant_get_type_string (values[0]);
  gsize fixed = fm_wire_fixed_size (type);
  g_autoptr(GVariant) array = NULL;
  g_autofree guint8 *buf = NULL;
  guint8 stack[4096];
  guint8 *data;

  g_assert (count > 0);

  /* A value from untrusted bytes may not have its type's size. */
  for (guint i = 0; i < count && fixed > 0; i++)
    if ((sizes != NULL ? sizes[i] : g_variant_get_size (values[i])) != fixed)
      fixed = 0;

  if (fixed == 0)
    {
      /* The children are non-floating: the array takes a reference. */
      array = g_variant_ref_sink (g_variant_new_array (NULL, values, count));
      return fm_wire_write_raw_batch (fd, kind, indexes, count, type,
                                      g_variant_get_data (array), g_variant_get_size (array),
                                      credit, flags, error);
    }

  /* Numbers: their bytes one after the other, without building an array. */
  data = fixed * count <= sizeof stack ? stack : (buf = g_malloc (fixed * count));
  for (guint i = 0; i < count; i++)
    fm_wire_copy_number (data + i * fixed, values[i], fixed);
  return fm_wire_write_raw_batch (fd, kind, indexes, count, type,
                                  data, fixed * count, credit, flags, error);
}

gboolean
fm_wire_parse_batch (GBytes       *payload,
                     gboolean      swap,
                     FmWireBatch  *batch,
                     GError      **error)
{
  gsize size;
  const guint8 *p = g_bytes_get_data (payload, &size);
  guint32 count, type_len;
  gsize data_offset;
  char type_string[256];
  g_autoptr(GVariantType) array_type = NULL;
  g_autoptr(GBytes) data = NULL;
  GVariant *values;

  if (size < BATCH_HEADER_SIZE)
    return protocol_error (error, "Batch frame is too short for its header");
  count = get_u32 (p);
  type_len = get_u32 (p + 4);
  if (count == 0)
    return protocol_error (error, "Batch frame holds no value");
  if (type_len == 0 || type_len >= sizeof type_string - 1)
    return protocol_error (error, "Batch frame has a bad type length");
  data_offset = BATCH_HEADER_SIZE + 8 * (gsize) count;
  if (data_offset > size || size - data_offset < ALIGN8 (type_len))
    return protocol_error (error, "Batch frame is shorter than its count says");

  type_string[0] = 'a';
  memcpy (type_string + 1, p + data_offset, type_len);
  type_string[type_len + 1] = '\0';
  if (!g_variant_type_string_is_valid (type_string))
    return protocol_error (error, "Batch frame has an invalid value type");
  array_type = g_variant_type_new (type_string);
  if (!g_variant_type_is_definite (array_type))
    return protocol_error (error, "Batch frame has an indefinite value type");

  data_offset += ALIGN8 (type_len);
  data = g_bytes_new_from_bytes (payload, data_offset, size - data_offset);
  /* Untrusted data: GVariant checks every access and never reads outside
   * the buffer; a value that is not in normal form reads as a default. */
  values = g_variant_ref_sink (g_variant_new_from_bytes (array_type, data, FALSE));
  if (swap)
    {
      GVariant *swapped = g_variant_take_ref (g_variant_byteswap (values));

      g_variant_unref (values);
      values = swapped;
    }
  if (g_variant_n_children (values) != count)
    {
      g_variant_unref (values);
      return protocol_error (error, "Batch frame holds a different number of values than it says");
    }

  batch->frame = g_bytes_ref (payload);
  batch->indexes = (const guint64 *) (p + BATCH_HEADER_SIZE);
  batch->count = count;
  batch->credit = get_u32 (p + 8);
  batch->flags = get_u32 (p + 12);
  batch->values = values;
  return TRUE;
}

void
fm_wire_batch_clear (FmWireBatch *batch)
{
  g_clear_pointer (&batch->values, g_variant_unref);
  g_clear_pointer (&batch->frame, g_bytes_unref);
}

gboolean
fm_wire_write_error (int           fd,
                     guint64       index,
                     const GError *task_error,
                     const char   *traceback,
                     GError      **error)
{
  g_autoptr(GVariant) v = NULL;
  const char *domain = g_quark_to_string (task_error->domain);

  v = g_variant_ref_sink (g_variant_new ("(tsiss)", index,
                                         domain ? domain : "",
                                         task_error->code,
                                         task_error->message ? task_error->message : "",
                                         traceback ? traceback : ""));
  return write_simple (fd, FM_FRAME_ERROR, g_variant_get_data (v),
                       g_variant_get_size (v), error);
}

/* Quarks live as long as the process: a peer may add only so many new
 * error domains, so that a lying one cannot grow the parent without end.
 * Domains this process knows already are always kept. */
#define MAX_NEW_REMOTE_DOMAINS 256

static gboolean
remote_domain_allowed (const char *domain)
{
  static gint new_domains = 0;

  if (g_quark_try_string (domain) != 0)
    return TRUE;
  return g_atomic_int_add (&new_domains, 1) < MAX_NEW_REMOTE_DOMAINS;
}

gboolean
fm_wire_parse_error (GBytes    *payload,
                     gboolean   swap,
                     guint64   *index,
                     GError   **task_error,
                     GError   **error)
{
  g_autoptr(GVariant) v = NULL;
  const char *domain, *message, *traceback;
  gint32 code;

  v = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE ("(tsiss)"),
                                                    payload, FALSE));
  if (!g_variant_is_normal_form (v))
    return protocol_error (error, "Error frame is not a valid (tsiss)");
  if (swap)
    {
      GVariant *swapped = g_variant_take_ref (g_variant_byteswap (v));

      g_variant_unref (v);
      v = swapped;
    }

  g_variant_get (v, "(t&si&s&s)", index, &domain, &code, &message, &traceback);
  if (*domain == '\0' || !remote_domain_allowed (domain))
    domain = "fm-remote-error-quark";
  if (*traceback != '\0')
    *task_error = g_error_new (g_quark_from_string (domain), code,
                               "%s\n\n%s", message, traceback);
  else
    *task_error = g_error_new_literal (g_quark_from_string (domain), code, message);
  return TRUE;
}
