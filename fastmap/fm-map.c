/* fm-map.c: one run of a function over a stream of tasks
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fm-error.h"
#include "fm-map.h"
#include "fm-private.h"
#include "fm-wire.h"

/**
 * SECTION:fm-map
 * @title: FmMap
 * @short_description: One run of a function over a stream of tasks
 *
 * An #FmMap is one run, started by fm_mapper_map(). It takes tasks,
 * either pushed with fm_map_push() and ended with fm_map_close(), or
 * pulled lazily from a source set with fm_map_set_source(), and gives
 * each result, in input order unless #FmMapper:ordered is %FALSE, as
 * soon as it (and, in order, everything before it) is done.
 *
 * Results are taken in one of three ways, one per map:
 *
 * - fm_map_next() blocks the calling thread until the next result, and
 *   fm_map_next_array() until the next results, as many as are ready, in
 *   one array (the way to take results of tiny tasks);
 * - fm_map_next_async() and fm_map_next_finish() (and
 *   fm_map_next_array_async() and fm_map_next_array_finish()) do the same
 *   without blocking, in the thread-default main context of the caller;
 * - the #FmMap::result, #FmMap::task-failed and #FmMap::finished
 *   signals, emitted in the thread-default main context of the thread
 *   that created the map, while that context runs. Signals are emitted
 *   only while at least one of them has a handler, and never once
 *   fm_map_next() or fm_map_next_async() has been called: connect the
 *   handlers before the main context runs.
 *
 * A task whose function fails gives its error at its index, and the run
 * goes on. A worker that dies is replaced, and the tasks it held run
 * again on another worker; a task that killed #FmMapper:max-retries + 1
 * workers fails with %FM_ERROR_WORKER_DIED. A failure of the whole map
 * (no worker could start, a source that failed, cancellation) ends it:
 * fm_map_next() gives that error once, then the end.
 *
 * Memory is bounded by #FmMapper:max-in-flight, the number of tasks taken
 * and not yet handed back, not by the number of tasks: a source is never
 * pulled further ahead than that, so an endless one works. (Tasks given
 * with fm_map_push() wait in the map until there is room for them.)
 *
 * Closing the input and taking every result, cancelling the map's
 * #GCancellable or dropping the last reference to the map ends its
 * worker processes.
 */

/* How the parent works.
 *
 * Each worker process is spoken to over one end of a socketpair that is
 * the worker's stdin and stdout. A reader thread per worker reads its
 * frames with blocking reads and applies them under the map's lock.
 * Frames to a worker are written by whichever thread dispatches: the
 * consumer (after it took a result or pulled the source), a producer
 * (fm_map_push()), or a reader (after results freed room at its worker).
 *
 * Tasks in flight live in a ring of slots indexed by task index modulo a
 * power of two no smaller than the window. Dispatch never sends index i
 * before index i - window has been delivered, so a slot is never shared.
 * A slot keeps its task until the result comes, so that the task can run
 * again if its worker dies.
 *
 * Credits: each worker says in its result frames how many tasks it wants
 * to hold (enough to keep its threads busy for a round trip); dispatch
 * gives the next tasks to the workers with the most room, in batches,
 * retries first. So one slow task never stalls the others, and tasks
 * pile up in no worker while another one starves.
 */

#define MAX_BATCH        4096
#define MAX_BATCH_BYTES  (16 * 1024 * 1024)
/* A worker that the caller forked (fm_mapper_take_worker()) and that says
 * nothing for this long may be hung before its hello: a fork copies only
 * the thread that forks, and a lock that another thread held then stays
 * held in the child for ever. It is killed, and one of argv replaces it.
 * FASTMAP_HELLO_TIMEOUT_MS sets another (for tests). */
#define HELLO_TIMEOUT_MS 30000
#define HELLO_TIMEOUT_ENV "FASTMAP_HELLO_TIMEOUT_MS"
/* A push dispatches at once while workers hold fewer than this many
 * tasks each; past that, pushes gather into batches that go out when a
 * result comes back, when PUSH_BATCH tasks wait, when the input ends, or
 * when someone waits for results: see arm_flush_locked(). (Without the
 * last, tasks that wait for tasks pushed after them waited for ever.) */
#define SEND_TIMEOUT_S   10
#define PUSH_EAGER       2
#define PUSH_BATCH       256
#define PUSH_FLUSH_US    1000
/* Numbers given with fm_map_push() gather in segments of their bytes (see
 * add_task_locked()), each growing up to this many. */
#define PUSHED_NUMBERS   4096

typedef enum
{
  SLOT_FREE,
  SLOT_SENT,
  SLOT_RETRY,
  SLOT_DONE,
  SLOT_DELIVERED,
} SlotState;

/* The tasks of one fm_map_push_array() call, numbers given one after
 * the other with fm_map_push() (their bytes, in a buffer of the map's
 * own), or the results of one batch of numbers. Guarded by the map's
 * lock, refcount and bytes included: the pending queue holds one while
 * tasks remain to be dispatched, and each slot of one of its tasks or
 * results holds one. */
typedef struct
{
  GVariant     *array;     /* owned, or NULL for pushed numbers */
  const guint8 *data;      /* its bytes, when its children have a fixed size */
  gsize         elem_size; /* that size, or 0 */
  guint64       n;
  guint64       taken;     /* children dispatched so far */
  guint         refs;
  guint8       *own;       /* pushed numbers: data, owned, room for cap */
  guint64       cap;
  char          type[2];   /* pushed numbers: their type string */
} Segment;

static void
segment_unref (Segment *seg)
{
  if (--seg->refs > 0)
    return;
  g_clear_pointer (&seg->array, g_variant_unref);
  g_free (seg->own);
  g_free (seg);
}

/* The type string of the children of @seg. */
static const char *
segment_type (Segment *seg)
{
  return seg->array != NULL ? g_variant_get_type_string (seg->array) + 1 : seg->type;
}

/* Child @pos of @seg, as a GVariant of its own. */
static GVariant *
segment_child (Segment *seg,
               guint64  pos)
{
  g_autoptr(GBytes) bytes = NULL;

  if (seg->array != NULL)
    return g_variant_get_child_value (seg->array, pos);
  bytes = g_bytes_new (seg->data + pos * seg->elem_size, seg->elem_size);
  return g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE (seg->type), bytes, TRUE));
}

/* The pending queue holds GVariant* (one pushed task) and Segment*
 * tagged with the low bit (pointers are at least 2-aligned). */
#define SEGMENT_TAG ((gsize) 1)
#define IS_SEGMENT(item) ((GPOINTER_TO_SIZE (item) & SEGMENT_TAG) != 0)
#define AS_SEGMENT(item) ((Segment *) GSIZE_TO_POINTER (GPOINTER_TO_SIZE (item) & ~SEGMENT_TAG))

static void
pending_item_free (gpointer item)
{
  if (IS_SEGMENT (item))
    segment_unref (AS_SEGMENT (item));
  else
    g_variant_unref (item);
}

typedef struct
{
  GVariant *task;     /* owned while SENT or RETRY (NULL while seg holds it) */
  Segment  *seg;      /* a reference, when the task is a child of a pushed array,
                       * or while DONE, when the result is a child of a batch
                       * that fm_map_next_array() may copy from */
  guint64   seg_pos;  /* which child */
  GVariant *value;    /* owned while DONE, when the task succeeded */
  GError   *error;    /* owned while DONE, when it failed */
  guint16   worker;   /* the worker that holds it, while SENT */
  guint8    state;    /* SlotState */
  guint8    deaths;   /* workers that died holding it */
} Slot;

typedef struct
{
  FmMap       *map;        /* unowned: the map joins this reader before it goes */
  guint        id;
  GSubprocess *process;    /* owned, NULL for a worker the caller started */
  int          pidfd;      /* owned, -1 but for a worker the caller started */
  int          fd;         /* our end of the socketpair */
  GThread     *reader;     /* owned, joined by the map */
  gint         reader_tid; /* the reader's thread id, once it runs */
  GPid         pid;        /* for a remote worker, the launcher's */
  const char  *host;       /* NULL here, else a string of the map's config */
  FmStderrForward *stderr_fwd; /* owned, a remote worker's stderr until it died */
  guint        threads;    /* this worker's share of threads-limit, 0: none */
  guint32      credit;     /* tasks it wants to hold, G_MAXUINT32: no limit,
                            * 0: a remote worker that has not said hello */
  guint        outstanding;
  gboolean     tiny;       /* its last results said FM_WIRE_BATCH_TINY */
  gboolean     said_hello;
  gboolean     swap;       /* its byte order is not ours */
  gboolean     dead;
  gboolean     retiring;   /* it timed a task out and exits: not the others' fault */
  gboolean     stuck;      /* the parent's watchdog killed it for its silence */
  gint64       quiet_since; /* monotonic µs: its last frame, or when it got work while idle */
  gboolean     isolating;  /* it runs a suspect task alone */
} Proc;

struct _FmMap
{
  GObject       parent_instance;

  /* Immutable after construction. */
  FmMapConfig   config;           /* argv and envp_extra owned */
  GMainContext *context;          /* owned: where signals are emitted */
  GSource      *signal_source;    /* owned */
  GCancellable *cancellable;      /* owned */
  gulong        cancelled_id;

  GMutex        lock;             /* guards everything below */
  GCond         cond;             /* signalled when a waiter may go on */

  Slot         *slots;            /* the ring */
  guint64       mask;             /* ring size - 1 */
  guint64       window;           /* config.max_in_flight, or while widened
                                   * config.wide_window (widen_locked()) */
  gboolean      narrow;           /* a task or a result was not a number: the
                                   * window stays config.max_in_flight */
  gboolean      numbers_taken;    /* fm_map_next_array() took a run of numbers */
  guint64       base;             /* lowest index not yet delivered */
  guint64       dispatch_next;    /* next index never dispatched */
  guint64       next_index;       /* next index to give an input task */
  guint64       n_delivered;
  GPtrArray    *pending;          /* from pending_head: tasks [dispatch_next, next_index),
                                   * GVariant* or Segment* */
  guint         pending_head;
  guint64       n_pending;        /* how many tasks that is */
  GArray       *retry;            /* guint64: indexes in SLOT_RETRY, oldest first */
  GArray       *suspects;         /* guint64: SLOT_RETRY indexes that run alone */
  guint64      *done_queue;       /* unordered: DONE indexes, a ring */
  guint64       done_head;
  guint64       done_len;

  GPtrArray    *procs;            /* Proc*, the current one of each id */
  GPtrArray    *retired;          /* Proc*, replaced ones, freed at the end */
  GArray       *adopted;          /* FmAdopted: started by the caller, not yet used */
  guint         rr;               /* where the next dispatch scan starts */

  FmSourceFunc  source_func;
  gpointer      source_data;
  GDestroyNotify source_destroy;
  gboolean      pulling;          /* a thread is inside source_func */

  GError       *fatal;            /* the error that ended the map */
  gboolean      fatal_reported;
  gboolean      input_closed;
  gboolean      stopping;         /* workers are being ended */
  gboolean      pull_mode;        /* next() or next_async() was called */
  gboolean      finished_emitted;
  guint         n_waiting;        /* threads in g_cond_wait() */
  gboolean      flush_armed;      /* pushed tasks wait for a batch, and those who
                                   * wait for results were told (arm_flush_locked()) */
  gint          bulk;             /* fm_map_next_array() was called: results that
                                   * are numbers stay in their batch (atomic) */
  GQueue        async_waiters;    /* GTask* of next_async() */
  GThread      *watchdog;         /* with a task-timeout: times out silent workers */
};

G_DEFINE_FINAL_TYPE (FmMap, fm_map, G_TYPE_OBJECT)

enum {
  RESULT,
  TASK_FAILED,
  FINISHED,
  N_SIGNALS
};

static guint signals [N_SIGNALS];

static void   proc_start            (FmMap *self, guint id, GError **error);
static void   wake_locked           (FmMap *self);
static void   dispatch_locked       (FmMap *self);

static inline Slot *
slot_at (FmMap   *self,
         guint64  index)
{
  return &self->slots[index & self->mask];
}

static void
slot_drop_task (Slot *s)
{
  g_clear_pointer (&s->task, g_variant_unref);
  g_clear_pointer (&s->seg, segment_unref);
}

/* The task as a GVariant of its own, for the ways that need one: a task
 * of a pushed array, or a pushed number, gets its own only if it has to
 * run again. */
static GVariant *
slot_task (Slot *s)
{
  if (s->task == NULL)
    {
      s->task = segment_child (s->seg, s->seg_pos);
      g_clear_pointer (&s->seg, segment_unref);
    }
  return s->task;
}

static void
slot_clear (Slot *s)
{
  slot_drop_task (s);
  g_clear_pointer (&s->value, g_variant_unref);
  g_clear_error (&s->error);
  s->state = SLOT_FREE;
  s->deaths = 0;
}

/* ---- ending workers ---------------------------------------------- */

static void
proc_free (Proc *p)
{
  if (p == NULL)
    return;
  if (p->fd >= 0)
    close (p->fd);
  if (p->stderr_fwd != NULL)
    g_free (_fm_stderr_forward_end (p->stderr_fwd, 0));
  g_clear_object (&p->process);
  if (p->pidfd >= 0)
    close (p->pidfd);
  g_free (p);
}

/* Kills the worker, whether it has exited already or not. */
static void
proc_kill (Proc *p)
{
  if (p->process != NULL)
    g_subprocess_force_exit (p->process);
  else if (p->pidfd >= 0)
    pidfd_send_signal (p->pidfd, SIGKILL, NULL, 0);
}

/* Ends every worker: closing our end is the end of its input, and a
 * worker exits at that. @kill is for the cases where nobody wants what
 * the workers are doing: it does not wait for them to notice. */
static void
stop_workers_locked (FmMap    *self,
                     gboolean  kill)
{
  self->stopping = TRUE;
  for (guint i = 0; i < self->procs->len; i++)
    {
      Proc *p = g_ptr_array_index (self->procs, i);

      if (p == NULL || p->dead)
        continue;
      if (kill)
        proc_kill (p);
      shutdown (p->fd, SHUT_RDWR);
    }
}

static void
set_fatal_locked (FmMap  *self,
                  GError *error)
{
  if (self->fatal != NULL)
    {
      g_error_free (error);
      return;
    }
  self->fatal = error;
  stop_workers_locked (self, TRUE);
  wake_locked (self);
}

static gboolean
finished_locked (FmMap *self)
{
  return self->input_closed && self->n_delivered == self->next_index;
}

/* ---- waking the consumer ----------------------------------------- */

static gboolean
ready_locked (FmMap *self)
{
  if (self->fatal != NULL || finished_locked (self))
    return TRUE;
  if (self->config.ordered)
    return self->base < self->dispatch_next && slot_at (self, self->base)->state == SLOT_DONE;
  return self->done_len > 0;
}

static gboolean retry_async (gpointer data);

static void
wake_locked (FmMap *self)
{
  if (self->n_waiting > 0)
    g_cond_broadcast (&self->cond);

  while (self->async_waiters.length > 0)
    {
      GTask *task = g_queue_pop_head (&self->async_waiters);

      _fm_post (g_task_get_context (task), retry_async, task);
    }

  if (!self->pull_mode && self->signal_source != NULL)
    g_source_set_ready_time (self->signal_source, 0);
}

/* ---- taking results ---------------------------------------------- */

static void
complete_slot_locked (FmMap    *self,
                      guint64   index,
                      GVariant *value,
                      GError   *error)
{
  Slot *s = slot_at (self, index);

  slot_drop_task (s);
  s->value = value;
  s->error = error;
  s->state = SLOT_DONE;
  if (!self->config.ordered)
    {
      self->done_queue[(self->done_head + self->done_len) & self->mask] = index;
      self->done_len++;
    }
}

/* The index of the result that comes @n-th from now, if it is done:
 * in order, or in the order the results came when not ordered. */
static gboolean
peek_ready_locked (FmMap   *self,
                   guint64  n,
                   guint64 *index)
{
  if (self->config.ordered)
    {
      *index = self->base + n;
      return *index < self->dispatch_next && slot_at (self, *index)->state == SLOT_DONE;
    }
  if (n >= self->done_len)
    return FALSE;
  *index = self->done_queue[(self->done_head + n) & self->mask];
  return TRUE;
}

/* Marks the next @n results, of tasks @first to @first + @n - 1 (those
 * peek_ready_locked() gives at 0 to @n - 1, one index after the other),
 * whose values and errors were taken, as handed over. */
static void
deliver_locked (FmMap   *self,
                guint64  first,
                guint64  n)
{
  self->n_delivered += n;
  if (self->config.ordered)
    {
      /* In order, what is handed over starts at base: free at once. */
      g_assert (first == self->base);
      for (guint64 k = 0; k < n; k++)
        slot_at (self, first + k)->state = SLOT_FREE;
      self->base += n;
      return;
    }
  for (guint64 k = 0; k < n; k++)
    slot_at (self, first + k)->state = SLOT_DELIVERED;
  self->done_head += n;
  self->done_len -= n;
  while (self->base < self->dispatch_next &&
         slot_at (self, self->base)->state == SLOT_DELIVERED)
    {
      slot_at (self, self->base)->state = SLOT_FREE;
      self->base++;
    }
}

/* Whether every worker's last results said its tasks are tiny. */
static gboolean
workers_tiny_locked (FmMap *self)
{
  for (guint i = 0; i < self->procs->len; i++)
    {
      Proc *p = g_ptr_array_index (self->procs, i);

      if (p != NULL && !p->dead && !p->tiny)
        return FALSE;
    }
  return TRUE;
}

/* The default window widens for numbers (#FmMapper:max-in-flight): once
 * the consumer takes them in bulk, a task given in an array of numbers
 * and a result that is a number cost their bytes and a slot each, and
 * 8192 tasks of a microsecond run dry in the workers while the consumer
 * waits for a core to take their results (B2, docs/benchmarks.md). Only
 * while every worker finds the tasks tiny: tasks that wait would each
 * hold a thread of a worker with threads-limit 0, and 65536 threads is
 * no default (unwiden_locked()). The ring grows to fit, once; it never
 * shrinks. */
static void
widen_locked (FmMap *self)
{
  guint64 size = self->mask + 1;

  if (self->narrow || !self->numbers_taken || self->window >= self->config.wide_window ||
      !workers_tiny_locked (self))
    return;
  while (size < self->config.wide_window)
    size <<= 1;
  if (size > self->mask + 1)
    {
      Slot *slots = g_new0 (Slot, size);

      /* Only slots [base, dispatch_next) hold anything. */
      for (guint64 i = self->base; i < self->dispatch_next; i++)
        slots[i & (size - 1)] = *slot_at (self, i);
      if (self->done_queue != NULL)
        {
          guint64 *queue = g_new (guint64, size);

          for (guint64 k = self->done_head; k < self->done_head + self->done_len; k++)
            queue[k & (size - 1)] = self->done_queue[k & self->mask];
          g_free (self->done_queue);
          self->done_queue = queue;
        }
      g_free (self->slots);
      self->slots = slots;
      self->mask = size - 1;
    }
  self->window = self->config.wide_window;
}

/* A worker does not find the tasks tiny (or not yet, as a new one): the
 * window is the default's until they all do again. Tasks beyond it wait
 * for room, as when the consumer is slow. */
static void
unwiden_locked (FmMap *self)
{
  self->window = self->config.max_in_flight;
}

/* A task or a result that is not a number: the window is the default's
 * again, for good. */
static void
narrow_locked (FmMap *self)
{
  self->narrow = TRUE;
  unwiden_locked (self);
}

/* Hands over the next result, if there is one. */
static gboolean
take_ready_locked (FmMap     *self,
                   guint64   *index,
                   GVariant **value,
                   GError   **error)
{
  guint64 i;
  Slot *s;

  if (!peek_ready_locked (self, 0, &i))
    return FALSE;
  s = slot_at (self, i);

  *index = i;
  if (s->seg != NULL)
    {
      *value = g_variant_get_child_value (s->seg->array, s->seg_pos);
      g_clear_pointer (&s->seg, segment_unref);
    }
  else
    *value = g_steal_pointer (&s->value);
  *error = g_steal_pointer (&s->error);
  deliver_locked (self, i, 1);
  return TRUE;
}

/* ---- the input ----------------------------------------------------- */

static guint64
room_locked (FmMap *self)
{
  guint64 held = self->next_index - self->n_delivered;

  return held >= self->window ? 0 : self->window - held;
}

/* The pending queue is an array read from its head, so that a task pushed
 * costs no list node (a GQueue allocated one per task); what was read is
 * dropped when the queue runs dry, or once it is half of the array. */
static void
pending_push_locked (FmMap    *self,
                     gpointer  item)
{
  /* Only the tasks of a pushed array of numbers keep the window wide:
   * not numbers given one by one (a segment without an array). */
  if (!IS_SEGMENT (item) || AS_SEGMENT (item)->elem_size == 0 ||
      AS_SEGMENT (item)->array == NULL)
    narrow_locked (self);
  g_ptr_array_add (self->pending, item);
}

static gpointer
pending_peek_locked (FmMap *self)
{
  return self->pending_head < self->pending->len ? self->pending->pdata[self->pending_head] : NULL;
}

static gpointer
pending_pop_locked (FmMap *self)
{
  gpointer item = self->pending->pdata[self->pending_head++];

  if (self->pending_head == self->pending->len)
    {
      g_ptr_array_set_size (self->pending, 0);
      self->pending_head = 0;
    }
  else if (self->pending_head >= 1024 && 2 * self->pending_head >= self->pending->len)
    {
      g_ptr_array_remove_range (self->pending, 0, self->pending_head);
      self->pending_head = 0;
    }
  return item;
}

/* A task as add_task_locked() takes it, read before the map's lock is
 * taken: a number (of a basic fixed-size type but a boolean, whose byte
 * may not be 0 or 1 in a value from elsewhere) is its bytes. */
typedef struct
{
  GVariant *task;       /* owned */
  char      type;       /* a number's type, else 0 */
  gsize     size;       /* its size */
  guint8    bytes[8];   /* its bytes (8 at most, fm_wire_fixed_size()) */
} NewTask;

static void
new_task_read (NewTask  *t,
               GVariant *task)
{
  const char *type = g_variant_get_type_string (task);

  t->task = task;
  t->size = fm_wire_number_size (type);
  t->type = t->size > 0 ? type[0] : 0;
  if (t->size > 0)
    fm_wire_copy_number (t->bytes, task, t->size);
}

/* Adds @t at the end of the input. A number joins, as its bytes, the
 * segment of pushed numbers of its type at the end of the pending queue,
 * or starts one: it is then sent as numbers of a pushed array are, and
 * gets a GVariant again only if it has to run again. The caller then
 * drops the task, in its own thread, which made it, at once: tasks that
 * wait for room hold no GVariant each, and GLib's slice allocator gets
 * its memory back where it gave it. Returns whether that is so; else the
 * queue holds the task. */
static gboolean
add_task_locked (FmMap         *self,
                 const NewTask *t)
{
  Segment *seg = NULL;

  self->n_pending++;
  self->next_index++;
  if (t->size == 0)
    {
      pending_push_locked (self, t->task);
      return FALSE;
    }

  if (self->pending_head < self->pending->len)
    {
      gpointer last = g_ptr_array_index (self->pending, self->pending->len - 1);

      if (IS_SEGMENT (last) && AS_SEGMENT (last)->array == NULL &&
          AS_SEGMENT (last)->type[0] == t->type && AS_SEGMENT (last)->n < PUSHED_NUMBERS)
        seg = AS_SEGMENT (last);
    }
  if (seg == NULL)
    {
      seg = g_new0 (Segment, 1);
      seg->elem_size = t->size;
      seg->type[0] = t->type;
      seg->refs = 1;
      pending_push_locked (self, GSIZE_TO_POINTER (GPOINTER_TO_SIZE (seg) | SEGMENT_TAG));
    }
  if (seg->n == seg->cap)
    {
      /* Only this lock's holders read the bytes: they may move. */
      seg->cap = MIN (MAX (2 * seg->cap, 32), PUSHED_NUMBERS);
      seg->own = g_realloc (seg->own, seg->cap * t->size);
      seg->data = seg->own;
    }
  memcpy (seg->own + seg->n * t->size, t->bytes, t->size);
  seg->n++;
  return TRUE;
}

/* Pulls the source while there is room. Called on the consumer's side
 * only; drops the lock around the user's function. */
static void
fill_locked (FmMap *self)
{
  while (self->source_func != NULL && !self->input_closed && !self->pulling &&
         self->fatal == NULL && room_locked (self) > 0)
    {
      g_autoptr(GError) error = NULL;
      GVariant *task;
      NewTask t;

      self->pulling = TRUE;
      g_mutex_unlock (&self->lock);
      task = self->source_func (self->source_data, &error);
      if (task != NULL)
        new_task_read (&t, g_variant_ref_sink (task));
      g_mutex_lock (&self->lock);
      self->pulling = FALSE;

      if (task != NULL)
        {
          if (add_task_locked (self, &t))
            g_variant_unref (task);
          continue;
        }
      self->input_closed = TRUE;
      if (error != NULL)
        {
          g_prefix_error (&error, "The source of tasks failed: ");
          set_fatal_locked (self, g_steal_pointer (&error));
        }
      wake_locked (self);
    }
  dispatch_locked (self);
}

/* ---- dispatch ------------------------------------------------------ */

/* How many tasks a worker should hold: what it asks for, and no more
 * than its share of the window. */
static guint64
proc_cap (FmMap *self,
          Proc  *p)
{
  guint64 share = (self->window + self->procs->len - 1) / self->procs->len;

  return MIN (p->credit, share);
}

static guint64
proc_room (FmMap *self,
           Proc  *p)
{
  guint64 cap = proc_cap (self, p);

  if (p->dead || p->isolating || p->outstanding >= cap)
    return 0;
  return cap - p->outstanding;
}

/* New tasks go to a worker once it has run down to half of what it
 * should hold, and then fill it up: tasks travel in batches of at least
 * half a worker's share, never one frame per freed slot. */
/* What a worker may hold until its first results say what it wants. */
static guint32
proc_initial_credit (Proc *p)
{
  return p->threads > 0 ? p->threads * 2 : G_MAXUINT32;
}

static gboolean
proc_hungry (FmMap *self,
             Proc  *p)
{
  return p->outstanding <= proc_cap (self, p) / 2;
}

static gboolean
next_task_locked (FmMap     *self,
                  guint64   *index,
                  GVariant **task)
{
  Slot *s;

  if (self->retry->len > 0)
    {
      /* Oldest first: in order, the consumer waits for it. Retries are
       * rare, so the cost of removing from the front does not matter. */
      *index = g_array_index (self->retry, guint64, 0);
      g_array_remove_index (self->retry, 0);
      s = slot_at (self, *index);
    }
  else
    {
      gpointer item = pending_peek_locked (self);

      if (item == NULL ||
          self->dispatch_next >= self->base + self->window)
        return FALSE;
      *index = self->dispatch_next++;
      s = slot_at (self, *index);
      g_assert (s->state == SLOT_FREE);
      self->n_pending--;
      if (!IS_SEGMENT (item))
        s->task = pending_pop_locked (self);
      else
        {
          Segment *seg = AS_SEGMENT (item);

          s->task = segment_child (seg, seg->taken++);
          if (seg->taken == seg->n)
            segment_unref (AS_SEGMENT (pending_pop_locked (self)));
        }
    }
  *task = slot_task (s);
  return TRUE;
}

static void
fail_task_locked (FmMap   *self,
                  guint64  index,
                  GError  *error)
{
  complete_slot_locked (self, index, NULL, error);
}

/* After a frame of @count tasks, already counted in p->outstanding, was
 * written: a worker that was idle starts its watchdog clock now, and a
 * write that failed means a worker that is gone or stuck: kill it, and
 * its reader then runs again elsewhere what it held. */
static void
proc_sent (Proc     *p,
           guint     count,
           gboolean  written)
{
  if (p->outstanding == count)
    p->quiet_since = g_get_monotonic_time ();
  if (!written)
    proc_kill (p);
}

/* @sizes: the values' sizes, or NULL (each g_variant_get_size() takes
 * the value's lock). */
static void
send_tasks (Proc           *p,
            const guint64  *indexes,
            GVariant      **values,
            const gsize    *sizes,
            guint           count)
{
  proc_sent (p, count,
             fm_wire_write_batch (p->fd, FM_FRAME_TASKS, indexes, values, sizes, count, 0, 0,
                                  NULL));
}

/* Sends the next tasks as they are, when they are numbers of a pushed
 * array: a slice of the array's bytes is an array of those tasks, so they
 * travel without a GVariant of their own. */
static gboolean
send_slice_locked (FmMap *self,
                   Proc  *p,
                   guint  max,
                   guint *sent)
{
  gpointer item = pending_peek_locked (self);
  guint64 window_end = self->base + self->window;
  g_autofree guint64 *indexes = NULL;
  Segment *seg;
  guint64 k;

  if (item == NULL || !IS_SEGMENT (item) || AS_SEGMENT (item)->elem_size == 0 ||
      self->dispatch_next >= window_end)
    return FALSE;
  seg = AS_SEGMENT (item);
  k = MIN (MIN (max, seg->n - seg->taken), window_end - self->dispatch_next);
  k = MIN (k, MAX_BATCH_BYTES / seg->elem_size);

  indexes = g_new (guint64, k);
  for (guint64 i = 0; i < k; i++)
    {
      Slot *s = slot_at (self, self->dispatch_next);

      g_assert (s->state == SLOT_FREE);
      s->seg = seg;
      s->seg_pos = seg->taken + i;
      seg->refs++;
      s->state = SLOT_SENT;
      s->worker = p->id;
      indexes[i] = self->dispatch_next++;
    }
  p->outstanding += k;
  self->n_pending -= k;
  proc_sent (p, k,
             fm_wire_write_raw_batch (p->fd, FM_FRAME_TASKS, indexes, k,
                                      segment_type (seg),
                                      seg->data + seg->taken * seg->elem_size,
                                      k * seg->elem_size, 0, 0, NULL));
  seg->taken += k;
  if (seg->taken == seg->n)
    segment_unref (AS_SEGMENT (pending_pop_locked (self)));
  *sent += k;
  return TRUE;
}

/* Sends up to @n tasks to @p, in frames of one value type each. */
static void
send_batch_locked (FmMap *self,
                   Proc  *p,
                   guint  n)
{
  guint64 indexes[256];
  GVariant *values[256];
  gsize sizes[256];
  const char *type = NULL;  /* of values[0] */
  guint count = 0, sent = 0;
  gsize bytes = 0;
  guint64 index;
  GVariant *task;

  for (;;)
    {
      const char *task_type;
      gsize size;
      Slot *s;

      if (sent < n && self->retry->len == 0 && send_slice_locked (self, p, n - sent, &sent))
        {
          if (count > 0)
            send_tasks (p, indexes, values, sizes, count);
          count = 0;
          bytes = 0;
          continue;
        }
      if (sent >= n || !next_task_locked (self, &index, &task))
        break;

      size = g_variant_get_size (task);
      s = slot_at (self, index);
      if (size > MAX_BATCH_BYTES)
        {
          fail_task_locked (self, index,
                            g_error_new (FM_ERROR, FM_ERROR_INVALID_ARGUMENT,
                                         "Task %" G_GUINT64_FORMAT " is %" G_GSIZE_FORMAT
                                         " bytes, more than the limit of %u",
                                         index, size, MAX_BATCH_BYTES));
          continue;
        }
      /* Tasks of one basic type have one type string of GLib's. */
      task_type = g_variant_get_type_string (task);
      if (count > 0 &&
          (count == G_N_ELEMENTS (values) || bytes + size > MAX_BATCH_BYTES ||
           (task_type != type && !g_str_equal (type, task_type))))
        {
          send_tasks (p, indexes, values, sizes, count);
          count = 0;
          bytes = 0;
        }
      if (count == 0)
        type = task_type;
      s->state = SLOT_SENT;
      s->worker = p->id;
      p->outstanding++;
      indexes[count] = index;
      sizes[count] = size;
      values[count++] = task;
      bytes += size;
      sent++;
    }
  if (count > 0)
    send_tasks (p, indexes, values, sizes, count);
}

/* Gives each suspect a worker of its own, where a death is its own. */
static void
dispatch_suspects_locked (FmMap *self)
{
  for (guint i = 0; i < self->procs->len && self->suspects->len > 0; i++)
    {
      Proc *p = g_ptr_array_index (self->procs, i);
      guint64 index;
      Slot *s;

      if (p == NULL || p->dead || p->isolating || p->outstanding > 0 || p->credit == 0)
        continue;
      index = g_array_index (self->suspects, guint64, 0);
      g_array_remove_index (self->suspects, 0);
      s = slot_at (self, index);
      s->state = SLOT_SENT;
      s->worker = p->id;
      p->outstanding = 1;
      p->isolating = TRUE;
      slot_task (s);
      send_tasks (p, &index, &s->task, NULL, 1);
    }
}

static guint64
batch_min_locked (FmMap *self)
{
  return CLAMP (self->window / 8, 1, 1024);
}

static void
dispatch_locked (FmMap *self)
{
  /* What stays pending after this waits for room in the window or at a
   * worker, which a result taken or given back brings, with a dispatch. */
  self->flush_armed = FALSE;
  if (self->fatal != NULL || self->stopping)
    return;

  dispatch_suspects_locked (self);

  for (;;)
    {
      guint64 window_end = self->base + self->window;
      guint64 fresh = MIN (self->n_pending,
                           window_end > self->dispatch_next ? window_end - self->dispatch_next : 0);
      guint64 total;
      guint n_procs = self->procs->len;
      guint with_room = 0;
      Proc *best = NULL;

      /* When the window, not the workers, holds tasks back (the consumer
       * is slower, or a result before the others is late), each delivery
       * frees one slot: wait until a batch's worth is free, unless the
       * consumer is about to wait or this is the end of the input. */
      if (fresh < batch_min_locked (self) && ready_locked (self) &&
          !(self->input_closed && fresh == self->n_pending))
        fresh = 0;
      total = self->retry->len + fresh;

      if (total == 0)
        return;

      for (guint k = 0; k < n_procs; k++)
        {
          Proc *p = g_ptr_array_index (self->procs, (self->rr + k) % n_procs);

          if (p == NULL || proc_room (self, p) == 0 ||
              (self->retry->len == 0 && !proc_hungry (self, p)))
            continue;
          with_room++;
          if (best == NULL || proc_room (self, p) > proc_room (self, best))
            best = p;
        }
      if (best == NULL)
        return;

      self->rr = (best->id + 1) % n_procs;
      send_batch_locked (self, best,
                         MIN (MIN ((total + with_room - 1) / with_room, proc_room (self, best)),
                              MAX_BATCH));
    }
}

/* ---- reading a worker ---------------------------------------------- */

/* @values: a GVariant per result of @batch, made by the reader before it
 * took the lock: a frame of tiny results holds thousands, and the
 * consumer and the producer would wait while each is allocated. The
 * slots take them; the caller drops what is left after an error. Or
 * %NULL, for results that are numbers (of @number_size bytes each, from
 * fm_wire_number_size()) once fm_map_next_array() was called: each slot
 * then points into the batch, whose bytes fm_map_next_array() copies,
 * and no GVariant is made for a result unless fm_map_next() takes it. */
static gboolean
apply_results_locked (FmMap       *self,
                      Proc        *p,
                      FmWireBatch *batch,
                      GVariant   **values,
                      gsize        number_size,
                      GError     **error)
{
  Segment *seg = NULL;
  gboolean ok = TRUE;

  if (values == NULL)
    {
      seg = g_new0 (Segment, 1);
      seg->array = g_variant_ref (batch->values);
      seg->data = g_variant_get_data (seg->array);
      seg->elem_size = number_size;
      seg->n = batch->count;
      seg->refs = 1;
    }

  for (guint i = 0; i < batch->count; i++)
    {
      guint64 index = fm_wire_batch_index (batch, i);
      Slot *s = slot_at (self, index);

      if (index < self->base || index >= self->dispatch_next ||
          s->state != SLOT_SENT || s->worker != p->id)
        {
          g_set_error (error, FM_ERROR, FM_ERROR_PROTOCOL,
                       "Worker %u sent a result for task %" G_GUINT64_FORMAT
                       ", which it does not hold", p->id, index);
          ok = FALSE;
          break;
        }
      p->outstanding--;
      p->isolating = p->isolating && p->outstanding > 0;
      if (seg == NULL)
        complete_slot_locked (self, index, g_steal_pointer (&values[i]), NULL);
      else
        {
          complete_slot_locked (self, index, NULL, NULL);
          s->seg = seg;
          s->seg_pos = i;
          seg->refs++;
        }
    }
  if (seg != NULL)
    segment_unref (seg);
  if (ok)
    p->credit = MAX (batch->credit, 1);
  return ok;
}

/* What a frame of results says of the default window: results that are
 * not numbers narrow it for good; else the worker's word, that it finds
 * the tasks tiny or not, widens it or brings it back (widen_locked()). */
static void
window_after_results_locked (FmMap             *self,
                             Proc              *p,
                             const FmWireBatch *batch,
                             gsize              number_size)
{
  p->tiny = (batch->flags & FM_WIRE_BATCH_TINY) != 0;
  if (number_size == 0)
    narrow_locked (self);
  else if (!p->tiny)
    unwiden_locked (self);
  else
    widen_locked (self);
}

static gboolean
apply_error_locked (FmMap    *self,
                    Proc     *p,
                    guint64   index,
                    GError   *task_error,
                    GError  **error)
{
  Slot *s = slot_at (self, index);

  if (index < self->base || index >= self->dispatch_next ||
      s->state != SLOT_SENT || s->worker != p->id)
    {
      g_error_free (task_error);
      g_set_error (error, FM_ERROR, FM_ERROR_PROTOCOL,
                   "Worker %u sent an error for task %" G_GUINT64_FORMAT
                   ", which it does not hold", p->id, index);
      return FALSE;
    }
  p->outstanding--;
  p->isolating = p->isolating && p->outstanding > 0;
  /* A worker that timed a task out exits next: see fm-worker.c. */
  if (g_error_matches (task_error, FM_ERROR, FM_ERROR_TIMED_OUT))
    p->retiring = TRUE;
  complete_slot_locked (self, index, NULL, task_error);
  return TRUE;
}

static gboolean
handle_frame (FmMap   *self,
              Proc    *p,
              guint8   kind,
              GBytes  *payload,
              GError **error)
{
  FmWireBatch batch = { 0 };
  GError *task_error = NULL;
  FmWireHello hello;
  guint64 index;
  gboolean ok;
  GVariant *stack_values[256];
  g_autofree GVariant **heap_values = NULL;
  GVariant **values = NULL;
  gsize number_size;

  if (!p->said_hello && kind != FM_FRAME_HELLO)
    {
      g_set_error (error, FM_ERROR, FM_ERROR_PROTOCOL,
                   "Worker %u spoke before it said hello", p->id);
      return FALSE;
    }

  switch (kind)
    {
    case FM_FRAME_HELLO:
      if (p->said_hello)
        {
          g_set_error (error, FM_ERROR, FM_ERROR_PROTOCOL, "Worker %u said hello twice", p->id);
          return FALSE;
        }
      if (!fm_wire_parse_hello (payload, &hello, error))
        return FALSE;
      g_mutex_lock (&self->lock);
      p->quiet_since = g_get_monotonic_time ();
      p->said_hello = TRUE;
      p->swap = hello.byte_order != G_BYTE_ORDER;
      if (p->credit == 0)
        {
          /* A remote worker is connected: it may take tasks now. */
          p->credit = proc_initial_credit (p);
          dispatch_locked (self);
        }
      g_mutex_unlock (&self->lock);
      return TRUE;

    case FM_FRAME_RESULTS:
      if (!fm_wire_parse_batch (payload, p->swap, &batch, error))
        return FALSE;
      number_size = fm_wire_number_size (g_variant_get_type_string (batch.values) + 1);
      if (number_size == 0 || !g_atomic_int_get (&self->bulk))
        {
          values = batch.count <= G_N_ELEMENTS (stack_values)
            ? stack_values : (heap_values = g_new (GVariant *, batch.count));
          for (guint i = 0; i < batch.count; i++)
            values[i] = g_variant_get_child_value (batch.values, i);
        }
      g_mutex_lock (&self->lock);
      p->quiet_since = g_get_monotonic_time ();
      ok = apply_results_locked (self, p, &batch, values, number_size, error);
      if (ok)
        window_after_results_locked (self, p, &batch, number_size);
      break;

    case FM_FRAME_ERROR:
      if (!fm_wire_parse_error (payload, p->swap, &index, &task_error, error))
        return FALSE;
      g_mutex_lock (&self->lock);
      p->quiet_since = g_get_monotonic_time ();
      ok = apply_error_locked (self, p, index, task_error, error);
      break;

    default:
      g_set_error (error, FM_ERROR, FM_ERROR_PROTOCOL,
                   "Worker %u sent a frame of kind %u, which only a parent sends",
                   p->id, kind);
      return FALSE;
    }

  dispatch_locked (self);
  if (ready_locked (self))
    wake_locked (self);
  g_mutex_unlock (&self->lock);
  for (guint i = 0; values != NULL && i < batch.count; i++)
    g_clear_pointer (&values[i], g_variant_unref);
  fm_wire_batch_clear (&batch);
  return ok;
}

static void
on_waited (GObject      *source,
           GAsyncResult *result,
           gpointer      data)
{
  *(gboolean *) data = TRUE;
}

static gboolean
on_wait_timeout (gpointer data)
{
  *(gboolean *) data = TRUE;
  return G_SOURCE_REMOVE;
}

/* Waits up to @timeout_ms for the process to exit on its own, then kills
 * it, and waits for that. */
static void
reap (GSubprocess *process,
      guint        timeout_ms)
{
  GMainContext *context = g_main_context_new ();
  GSource *timeout = g_timeout_source_new (timeout_ms);
  gboolean done = FALSE, late = FALSE;

  g_main_context_push_thread_default (context);
  g_source_set_callback (timeout, on_wait_timeout, &late, NULL);
  g_source_attach (timeout, context);
  g_subprocess_wait_async (process, NULL, on_waited, &done);
  while (!done)
    {
      if (late)
        {
          g_subprocess_force_exit (process);
          late = FALSE;
        }
      g_main_context_iteration (context, TRUE);
    }
  g_source_destroy (timeout);
  g_source_unref (timeout);
  g_main_context_pop_thread_default (context);
  g_main_context_unref (context);
}

/* Whether @fd has something to read (or its end) within @timeout_ms. */
static gboolean
wait_readable (int   fd,
               guint timeout_ms)
{
  struct pollfd pfd = { .fd = fd, .events = POLLIN };
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
  int n;

  do
    {
      gint64 left = MAX (0, deadline - g_get_monotonic_time ()) / 1000;

      n = poll (&pfd, 1, (int) left);
    }
  while (n < 0 && errno == EINTR);
  return n != 0;
}

/* The same for a worker the caller started: its wait status, or -1 if
 * someone else took it (SIGCHLD set to SIG_IGN, a waitpid (-1, …) of the
 * caller's). A pidfd is readable once its process has exited. */
static int
reap_pidfd (int      pidfd,
            guint    timeout_ms)
{
  siginfo_t info = { 0 };

  if (!wait_readable (pidfd, timeout_ms))
    pidfd_send_signal (pidfd, SIGKILL, NULL, 0);
  while (waitid (P_PIDFD, pidfd, &info, WEXITED) < 0)
    if (errno != EINTR)
      return -1;
  if (info.si_code == CLD_EXITED)
    return W_EXITCODE (info.si_status, 0);
  return W_EXITCODE (0, info.si_status);
}

static char *
describe_status (Proc *p,
                 int   status)
{
  /* A remote worker's pid is its launcher's, whose status is the remote
   * command's (ssh: 255 for a failure of ssh itself). */
  g_autofree char *who = p->host == NULL
    ? g_strdup_printf ("worker %u (pid %d)", p->id, p->pid)
    : g_strdup_printf ("worker %u on host “%s” (launcher pid %d)", p->id, p->host, p->pid);

  /* A fork server's child is its parent's to reap. */
  if (status == -1)
    return g_strdup_printf ("%s has exited (its status went to its parent, a fork server, "
                            "or elsewhere: is SIGCHLD ignored?)", who);
  if (WIFSIGNALED (status) && WTERMSIG (status) != SIGKILL)
    return g_strdup_printf ("%s was killed by signal %d (%s)",
                            who, WTERMSIG (status), g_strsignal (WTERMSIG (status)));
  if (WIFSIGNALED (status))
    return g_strdup_printf ("%s was killed by signal %d (%s) or closed its stream",
                            who, WTERMSIG (status), g_strsignal (WTERMSIG (status)));
  return g_strdup_printf ("%s exited with status %d", who, WEXITSTATUS (status));
}

static char *
describe_exit (Proc    *p,
               gboolean stopping)
{
  g_autofree char *last_line = NULL;
  guint timeout_ms = stopping ? 2000 : 0;
  char *why;

  /* The worker closed its stream. At the end of a map it is exiting:
   * give it a moment to finish (a Python worker, a profiler). Otherwise
   * something broke: make sure it is gone. */
  if (p->process != NULL)
    {
      reap (p->process, timeout_ms);
      why = describe_status (p, g_subprocess_get_status (p->process));
    }
  else
    why = describe_status (p, reap_pidfd (p->pidfd, timeout_ms));

  /* The last words of a remote worker, or of its launcher, say why a
   * host could not be reached: keep them in the message. */
  if (p->stderr_fwd != NULL)
    last_line = _fm_stderr_forward_end (g_steal_pointer (&p->stderr_fwd), 1000);
  if (last_line != NULL && !stopping)
    {
      char *tmp = g_strdup_printf ("%s; its last line on stderr: “%s”", why, last_line);

      g_free (why);
      why = tmp;
    }
  return why;
}

/* A worker times its own tasks out (fm-worker.c). One that is stopped,
 * or stuck as a whole, cannot: a worker that holds tasks and sends
 * nothing for twice the task-timeout and a second is killed here. */
static gint64
silence_limit_us (FmMap *self)
{
  return (2 * (gint64) self->config.task_timeout + 1000) * 1000;
}

/* How a death counts against a task the dead worker held: fully when the
 * task ran alone there; when several shared the worker, up to max-retries
 * only, after which the task runs alone (a suspect). Not at all when the
 * worker never said hello (it ran nothing) or exited because another task
 * timed out. */
static guint
count_death (FmMap *self,
             Proc  *p,
             Slot  *s)
{
  guint max = self->config.max_retries;

  if (!p->said_hello || p->retiring || p->stuck)
    return s->deaths;
  if (p->isolating || max == 0)
    return s->deaths + 1;
  return MIN ((guint) s->deaths + 1, max);
}

/* Runs again, elsewhere, what a dead worker held. */
static void
requeue_locked (FmMap      *self,
                Proc       *p,
                const char *why)
{
  guint max = self->config.max_retries;
  gboolean blamed = FALSE;

  for (guint64 i = self->base; i < self->dispatch_next; i++)
    {
      Slot *s = slot_at (self, i);

      if (s->state != SLOT_SENT || s->worker != p->id)
        continue;
      /* A worker that went silent: its oldest task is the one that ran
       * too long, as far as the parent can tell. */
      if (p->stuck && !blamed)
        {
          blamed = TRUE;
          fail_task_locked (self, i,
                            g_error_new (FM_ERROR, FM_ERROR_TIMED_OUT,
                                         "Task %" G_GUINT64_FORMAT " ran longer than %u ms, as far as "
                                         "the parent can tell: worker %u (pid %d) held it and said "
                                         "nothing for %" G_GINT64_FORMAT " ms, so it was killed",
                                         i, self->config.task_timeout, p->id, p->pid,
                                         silence_limit_us (self) / 1000));
          continue;
        }
      s->deaths = MIN (count_death (self, p, s), G_MAXUINT8);
      if (s->deaths > max)
        {
          fail_task_locked (self, i,
                            g_error_new (FM_ERROR, FM_ERROR_WORKER_DIED,
                                         "Task %" G_GUINT64_FORMAT " killed %u workers; the last: %s",
                                         i, (guint) s->deaths, why));
          continue;
        }
      s->state = SLOT_RETRY;
      if (s->deaths > 0 && s->deaths >= max)
        g_array_append_val (self->suspects, i);
      else
        g_array_append_val (self->retry, i);
    }
  p->outstanding = 0;
  p->isolating = FALSE;
}

static guint
n_live_locked (FmMap *self)
{
  guint n = 0;

  for (guint i = 0; i < self->procs->len; i++)
    {
      Proc *p = g_ptr_array_index (self->procs, i);

      n += p != NULL && !p->dead;
    }
  return n;
}

static void
handle_death (FmMap  *self,
              Proc   *p,
              GError *error)
{
  g_autofree char *why = describe_exit (p, g_atomic_int_get (&self->stopping));
  g_autoptr(GError) spawn_error = NULL;

  if (error != NULL)
    {
      char *tmp = g_strdup_printf ("%s (%s)", why, error->message);

      g_free (why);
      why = tmp;
    }

  g_mutex_lock (&self->lock);
  p->dead = TRUE;
  g_debug ("%s%s", why, self->stopping ? " (the map is ending)" : "");
  if (!self->stopping)
    {
      requeue_locked (self, p, why);
      /* A worker that died after its hello is replaced; one that could
       * not even start would only fail again. (One that the caller
       * started is replaced by one of argv, which may start.) */
      if (p->said_hello || p->pidfd >= 0)
        proc_start (self, p->id, &spawn_error);
      if (n_live_locked (self) == 0)
        set_fatal_locked (self,
                          g_error_new (FM_ERROR, FM_ERROR_WORKER_FAILED,
                                       "No worker is left: %s%s%s", why,
                                       spawn_error ? "; " : "",
                                       spawn_error ? spawn_error->message : ""));
      dispatch_locked (self);
      wake_locked (self);
    }
  g_mutex_unlock (&self->lock);
}

static guint
hello_timeout_ms (void)
{
  const char *env = g_getenv (HELLO_TIMEOUT_ENV);
  guint64 ms;

  if (env != NULL && g_ascii_string_to_unsigned (env, 10, 1, G_MAXINT, &ms, NULL))
    return ms;
  return HELLO_TIMEOUT_MS;
}

static gpointer
reader_thread (gpointer data)
{
  Proc *p = data;
  FmMap *self = p->map;
  g_autoptr(GError) error = NULL;
  guint hello_timeout = p->pidfd >= 0 ? hello_timeout_ms () : 0;

  g_atomic_int_set (&p->reader_tid, gettid ());

  if (p->pidfd >= 0 && !wait_readable (p->fd, hello_timeout))
    {
      error = g_error_new (FM_ERROR, FM_ERROR_WORKER_FAILED,
                           "it said nothing for %u ms after it was forked: killed",
                           hello_timeout);
      proc_kill (p);
      handle_death (self, p, error);
      return NULL;
    }

  for (;;)
    {
      g_autoptr(GBytes) payload = NULL;
      guint8 kind;
      int r = fm_wire_read_frame (p->fd, &kind, &payload, &error);

      if (r <= 0 || !handle_frame (self, p, kind, payload, &error))
        break;
    }

  handle_death (self, p, error);
  return NULL;
}

/* ---- the parent's watchdog ------------------------------------------ */

static gpointer
watchdog_thread (gpointer data)
{
  FmMap *self = data;
  gint64 period = MAX (silence_limit_us (self) / 4, 20 * 1000);

  g_mutex_lock (&self->lock);
  while (!self->stopping)
    {
      gint64 now = g_get_monotonic_time ();

      for (guint i = 0; i < self->procs->len; i++)
        {
          Proc *p = g_ptr_array_index (self->procs, i);

          if (p == NULL || p->dead || p->stuck || p->outstanding == 0 ||
              now - p->quiet_since < silence_limit_us (self))
            continue;
          g_debug ("worker %u (pid %d) held %u tasks and said nothing for %" G_GINT64_FORMAT " ms: killing it",
                   p->id, p->pid, p->outstanding, (now - p->quiet_since) / 1000);
          p->stuck = TRUE;
          proc_kill (p);
        }
      g_cond_wait_until (&self->cond, &self->lock, now + period);
    }
  g_mutex_unlock (&self->lock);
  return NULL;
}

/* ---- starting workers ---------------------------------------------- */

static guint
threads_share (FmMap *self,
               guint  id)
{
  guint limit = self->config.threads_limit, n = self->config.n_processes;

  if (limit == 0)
    return 0;
  return limit / n + (id < limit % n ? 1 : 0);
}

/* The command line of worker @id: the worker's own here, or, for a
 * worker on another host, the launcher's, which runs there the remote
 * command (see fm-remote.c). */
static char **
proc_argv (FmMap      *self,
           const char *host)
{
  GStrvBuilder *builder;
  char **argv;

  if (host == NULL)
    return g_strdupv (self->config.argv);
  builder = g_strv_builder_new ();
  g_strv_builder_addv (builder, (const char **) self->config.launcher);
  g_strv_builder_add (builder, host);
  g_strv_builder_add (builder, self->config.remote_command);
  argv = g_strv_builder_end (builder);
  g_strv_builder_unref (builder);
  return argv;
}

/* Starts worker @id, replacing the one there was: one the caller
 * started and gave the mapper (fm_mapper_take_worker()) while there is
 * one, else a process of #FmMapper:argv. Called with the lock held (or
 * before any thread runs). */
static void
proc_start (FmMap   *self,
            guint    id,
            GError **error)
{
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GError) local_error = NULL;
  g_auto(GStrv) argv = NULL;
  const char *host = NULL;
  FmWireConfig config;
  Proc *p, *old;
  int sv[2];

  if (self->config.hosts != NULL && self->config.hosts[id][0] != '\0')
    host = self->config.hosts[id];

  p = g_new0 (Proc, 1);
  p->map = self;
  p->id = id;
  p->pidfd = -1;
  p->host = host;
  p->threads = threads_share (self, id);
  /* A remote worker gets no task before its hello: a host that takes
   * long to fail (a connection that times out) holds none back. */
  p->credit = host != NULL ? 0 : proc_initial_credit (p);

  if (host == NULL && self->adopted->len > 0)
    {
      FmAdopted *w = &g_array_index (self->adopted, FmAdopted, 0);

      p->fd = w->fd;
      p->pidfd = w->pidfd;
      p->pid = w->pid;
      g_array_remove_index (self->adopted, 0);
    }
  else
    {
      if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        {
          int errsv = errno;

          g_set_error (error, FM_ERROR, FM_ERROR_WORKER_FAILED,
                       "Could not make a socket for a worker: %s", g_strerror (errsv));
          p->fd = -1;
          proc_free (p);
          return;
        }
      p->fd = sv[0];

      /* A local worker shares our stderr; a remote one's comes through a
       * pipe, to be forwarded line by line with its host's name. */
      launcher = g_subprocess_launcher_new (host != NULL ? G_SUBPROCESS_FLAGS_STDERR_PIPE
                                                         : G_SUBPROCESS_FLAGS_NONE);
      g_subprocess_launcher_take_stdin_fd (launcher, sv[1]);
      g_subprocess_launcher_take_stdout_fd (launcher, fcntl (sv[1], F_DUPFD_CLOEXEC, 3));
      /* (A remote worker gets these in its command line.) */
      for (char **e = self->config.envp_extra; host == NULL && e != NULL && *e != NULL; e++)
        {
          g_auto(GStrv) kv = g_strsplit (*e, "=", 2);

          g_subprocess_launcher_setenv (launcher, kv[0], kv[1] ? kv[1] : "", TRUE);
        }

      argv = proc_argv (self, host);
      p->process = g_subprocess_launcher_spawnv (launcher, (const char * const *) argv, &local_error);
      if (p->process == NULL && host != NULL)
        {
          g_set_error (error, FM_ERROR, FM_ERROR_WORKER_FAILED,
                       "Could not start “%s” for a worker on host “%s”: %s",
                       argv[0], host, local_error->message);
          proc_free (p);
          return;
        }
      if (p->process == NULL)
        {
          g_set_error (error, FM_ERROR, FM_ERROR_WORKER_FAILED,
                       "Could not start worker “%s”: %s",
                       self->config.argv[0], local_error->message);
          proc_free (p);
          return;
        }
      if (host != NULL)
        p->stderr_fwd = _fm_stderr_forward_new (g_subprocess_get_stderr_pipe (p->process), host);
      /* No identifier once the child has exited: its reader finds out why. */
      if (g_subprocess_get_identifier (p->process) != NULL)
        p->pid = atoi (g_subprocess_get_identifier (p->process));
    }

  /* A worker that stops reading (stopped, or hung in its reader) must not
   * hold the map's lock forever: a write that waits this long fails, and
   * the worker is then treated as dead. */
  setsockopt (p->fd, SOL_SOCKET, SO_SNDTIMEO,
              &(struct timeval) { .tv_sec = SEND_TIMEOUT_S }, sizeof (struct timeval));

  config.threads = p->threads;
  config.byte_order = G_BYTE_ORDER;
  config.timeout_ms = self->config.task_timeout;
  /* A worker that is already gone is noticed by its reader. */
  fm_wire_write_config (p->fd, &config, NULL);

  old = g_ptr_array_index (self->procs, id);
  if (old != NULL)
    g_ptr_array_add (self->retired, old);
  g_ptr_array_index (self->procs, id) = p;
  p->reader = g_thread_new ("fm-reader", reader_thread, p);
}

/* ---- workers the caller started ------------------------------------ */

/* The parent of @pid, from /proc, or 0. */
static GPid
parent_of (GPid pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/stat", (int) pid);
  g_autofree char *stat = NULL;
  const char *end;
  int ppid = 0;

  /* "pid (comm) state ppid …", where comm may hold anything, ")" too. */
  if (!g_file_get_contents (path, &stat, NULL, NULL) ||
      (end = strrchr (stat, ')')) == NULL ||
      sscanf (end + 1, " %*c %d", &ppid) != 1)
    return 0;
  return ppid;
}

/* Whether the process of @pidfd, @pid, is a child of a child of ours. */
static gboolean
is_grandchild (int  pidfd,
               GPid pid)
{
  GPid parent = parent_of (pid);

  /* Read from /proc by pid: the process must still be there (alive or a
   * zombie: its pid not yet another's) for the answer to be its own. */
  return parent > 0 && parent != getpid () && parent_of (parent) == getpid () &&
         pidfd_send_signal (pidfd, 0, NULL, 0) == 0;
}

gboolean
_fm_adopted_init (FmAdopted  *w,
                  int         fd,
                  GPid        pid,
                  GError    **error)
{
  siginfo_t info = { 0 };
  int type = 0;
  socklen_t len = sizeof type;
  int pidfd, errsv;

  if (fd < 0 || getsockopt (fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM)
    {
      g_set_error (error, FM_ERROR, FM_ERROR_INVALID_ARGUMENT,
                   "File descriptor %d is not a stream socket", fd);
      return FALSE;
    }
  if (pid <= 0)
    {
      g_set_error (error, FM_ERROR, FM_ERROR_INVALID_ARGUMENT,
                   "%d is not a process id", (int) pid);
      return FALSE;
    }
  pidfd = pidfd_open (pid, 0);
  if (pidfd < 0)
    {
      errsv = errno;
      g_set_error (error, FM_ERROR, errsv == ESRCH ? FM_ERROR_INVALID_ARGUMENT : FM_ERROR_FAILED,
                   "Cannot watch process %d: %s", (int) pid, g_strerror (errsv));
      return FALSE;
    }
  /* A child, which can be reaped, or the child of a child (a fork
   * server's), which its parent reaps: never a process of someone else's,
   * which the map would kill at its end. */
  if (waitid (P_PIDFD, pidfd, &info, WEXITED | WNOHANG | WNOWAIT) < 0)
    {
      errsv = errno;
      if (errsv != ECHILD || !is_grandchild (pidfd, pid))
        {
          close (pidfd);
          g_set_error (error, FM_ERROR, FM_ERROR_INVALID_ARGUMENT,
                       "Process %d cannot be a worker of this process: %s", (int) pid,
                       errsv == ECHILD ? "it is neither its child nor a child of one"
                                       : g_strerror (errsv));
          return FALSE;
        }
    }
  fcntl (fd, F_SETFD, FD_CLOEXEC);
  w->fd = fd;
  w->pidfd = pidfd;
  w->pid = pid;
  return TRUE;
}

/* Ends a worker that no map used: it ran nothing anyone waits for. */
void
_fm_adopted_end (FmAdopted *w)
{
  close (w->fd);
  pidfd_send_signal (w->pidfd, SIGKILL, NULL, 0);
  reap_pidfd (w->pidfd, 0);
  close (w->pidfd);
}

/* ---- the object ---------------------------------------------------- */

/* g_thread_join() returns once the thread has cleared its id, a moment
 * before the system ends it, and until then /proc/self/task lists it: a
 * caller that forks only when it runs alone (Python's fast_map()) would
 * see it, and spawn instead. Waits for it to go, 100 ms at most (a loaded
 * machine may not run it at once). */
static void
wait_thread_gone (gint tid)
{
  char path[64];

  if (tid <= 0)
    return;
  g_snprintf (path, sizeof path, "/proc/self/task/%d", tid);
  for (guint i = 0; i < 1000 && access (path, F_OK) == 0; i++)
    g_usleep (100);
}

static void
join_readers (FmMap *self)
{
  GPtrArray *all = g_ptr_array_new ();

  /* Workers of a map whose every result was taken are ending already:
   * let them end (each reader kills its worker after a moment), so that
   * what a remote one wrote on stderr last still comes through ssh. */
  g_mutex_lock (&self->lock);
  stop_workers_locked (self, self->fatal != NULL || !finished_locked (self));
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
  if (self->watchdog != NULL)
    g_thread_join (g_steal_pointer (&self->watchdog));

  /* A reader that notices a death may replace its worker, so look again
   * after each join; once stopping is set no reader starts another. */
  for (;;)
    {
      GThread *t = NULL;
      gint tid = 0;

      g_mutex_lock (&self->lock);
      for (guint i = 0; i < self->procs->len && t == NULL; i++)
        {
          Proc *p = g_ptr_array_index (self->procs, i);

          if (p != NULL && p->reader != NULL)
            {
              t = g_steal_pointer (&p->reader);
              tid = g_atomic_int_get (&p->reader_tid);
            }
        }
      for (guint i = 0; i < self->retired->len && t == NULL; i++)
        {
          Proc *p = g_ptr_array_index (self->retired, i);

          if (p->reader != NULL)
            {
              t = g_steal_pointer (&p->reader);
              tid = g_atomic_int_get (&p->reader_tid);
            }
        }
      g_mutex_unlock (&self->lock);
      if (t == NULL)
        break;
      g_ptr_array_add (all, t);
      g_thread_join (t);
      wait_thread_gone (tid);
    }
  g_ptr_array_free (all, TRUE);
}

static void
fm_map_dispose (GObject *object)
{
  FmMap *self = FM_MAP (object);

  if (self->cancelled_id != 0)
    g_cancellable_disconnect (self->cancellable, self->cancelled_id);
  self->cancelled_id = 0;

  if (self->signal_source != NULL)
    {
      g_source_destroy (self->signal_source);
      g_clear_pointer (&self->signal_source, g_source_unref);
    }

  join_readers (self);

  if (self->source_destroy != NULL)
    self->source_destroy (self->source_data);
  self->source_func = NULL;
  self->source_destroy = NULL;

  G_OBJECT_CLASS (fm_map_parent_class)->dispose (object);
}

static void
fm_map_finalize (GObject *object)
{
  FmMap *self = FM_MAP (object);

  /* Only slots of tasks dispatched and not delivered hold anything: the
   * rest of the ring may never have been touched (its pages are not even
   * mapped yet), and clearing it all would map it, 384 KiB for Python's
   * window. */
  for (guint64 i = self->base; i < self->dispatch_next; i++)
    slot_clear (slot_at (self, i));
  g_free (self->slots);
  g_free (self->done_queue);
  for (guint i = self->pending_head; i < self->pending->len; i++)
    pending_item_free (self->pending->pdata[i]);
  g_ptr_array_unref (self->pending);
  g_array_unref (self->retry);
  g_array_unref (self->suspects);
  g_ptr_array_unref (self->procs);
  g_ptr_array_unref (self->retired);
  /* Workers given for more processes than the map had. */
  for (guint i = 0; i < self->adopted->len; i++)
    _fm_adopted_end (&g_array_index (self->adopted, FmAdopted, i));
  g_array_unref (self->adopted);
  g_clear_error (&self->fatal);
  g_clear_object (&self->cancellable);
  g_clear_pointer (&self->context, g_main_context_unref);
  g_strfreev (self->config.argv);
  g_strfreev (self->config.envp_extra);
  g_strfreev (self->config.hosts);
  g_strfreev (self->config.launcher);
  g_free (self->config.remote_command);
  g_mutex_clear (&self->lock);
  g_cond_clear (&self->cond);

  G_OBJECT_CLASS (fm_map_parent_class)->finalize (object);
}

static void
fm_map_class_init (FmMapClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = fm_map_dispose;
  object_class->finalize = fm_map_finalize;

  /**
   * FmMap::result:
   * @map: the #FmMap
   * @index: the index of the task, counted from 0 in input order
   * @value: the result
   *
   * Emitted for each task that succeeded, in input order unless
   * #FmMapper:ordered is %FALSE, in the thread-default main context of
   * the thread that created @map. See the section on #FmMap for when
   * signals are emitted.
   */
  signals [RESULT] =
    g_signal_new ("result", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 2, G_TYPE_UINT64, G_TYPE_VARIANT);

  /**
   * FmMap::task-failed:
   * @map: the #FmMap
   * @index: the index of the task, counted from 0 in input order
   * @error: why it failed: the function's own error, domain and code
   *   kept, or one in the %FM_ERROR domain
   *
   * Emitted, in the place of #FmMap::result, for each task that failed,
   * in the same order and main context.
   */
  signals [TASK_FAILED] =
    g_signal_new ("task-failed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 2, G_TYPE_UINT64, G_TYPE_ERROR);

  /**
   * FmMap::finished:
   * @map: the #FmMap
   * @error: (nullable): %NULL when every result was given, or the error
   *   that ended the map early
   *
   * Emitted once, after the last #FmMap::result or #FmMap::task-failed,
   * in the thread-default main context of the thread that created @map.
   */
  signals [FINISHED] =
    g_signal_new ("finished", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 1, G_TYPE_ERROR);
}

static void
fm_map_init (FmMap *self)
{
  g_mutex_init (&self->lock);
  g_cond_init (&self->cond);
  self->pending = g_ptr_array_new ();
  g_queue_init (&self->async_waiters);
  self->retry = g_array_new (FALSE, FALSE, sizeof (guint64));
  self->suspects = g_array_new (FALSE, FALSE, sizeof (guint64));
  self->procs = g_ptr_array_new_with_free_func ((GDestroyNotify) proc_free);
  self->retired = g_ptr_array_new_with_free_func ((GDestroyNotify) proc_free);
}

/* ---- signals ------------------------------------------------------- */

static gboolean
has_signal_handlers (FmMap *self)
{
  for (guint i = 0; i < N_SIGNALS; i++)
    if (g_signal_has_handler_pending (self, signals[i], 0, TRUE))
      return TRUE;
  return FALSE;
}

#define SIGNALS_PER_DISPATCH 1024

static gboolean
emit_signals (FmMap *self)
{
  g_autoptr(GError) end_error = NULL;
  gboolean emit_finished = FALSE;
  guint emitted = 0;

  g_mutex_lock (&self->lock);
  for (;;)
    {
      g_autoptr(GVariant) value = NULL;
      g_autoptr(GError) error = NULL;
      guint64 index;

      if (self->pull_mode || self->finished_emitted)
        break;
      fill_locked (self);
      if (emitted == SIGNALS_PER_DISPATCH)
        {
          g_source_set_ready_time (self->signal_source, 0);
          break;
        }
      if (take_ready_locked (self, &index, &value, &error))
        {
          dispatch_locked (self);
          g_mutex_unlock (&self->lock);
          if (value != NULL)
            g_signal_emit (self, signals[RESULT], 0, index, value);
          else
            g_signal_emit (self, signals[TASK_FAILED], 0, index, error);
          emitted++;
          g_mutex_lock (&self->lock);
          continue;
        }
      if (self->fatal != NULL || finished_locked (self))
        {
          self->finished_emitted = TRUE;
          self->fatal_reported = TRUE;
          end_error = self->fatal ? g_error_copy (self->fatal) : NULL;
          emit_finished = TRUE;
          stop_workers_locked (self, FALSE);
        }
      break;
    }
  g_mutex_unlock (&self->lock);

  if (emit_finished)
    g_signal_emit (self, signals[FINISHED], 0, end_error);
  return G_SOURCE_CONTINUE;
}

static gboolean
signal_source_dispatch (GSource     *source,
                        GSourceFunc  callback,
                        gpointer     user_data)
{
  GWeakRef *weak = user_data;
  g_autoptr(FmMap) self = g_weak_ref_get (weak);

  g_source_set_ready_time (source, -1);
  if (self == NULL || !has_signal_handlers (self))
    return G_SOURCE_CONTINUE;
  return emit_signals (self);
}

static void
weak_ref_free (gpointer data)
{
  g_weak_ref_clear (data);
  g_free (data);
}

static GSourceFuncs signal_source_funcs = {
  .dispatch = signal_source_dispatch,
};

static void
attach_signal_source (FmMap *self)
{
  GWeakRef *weak = g_new0 (GWeakRef, 1);

  g_weak_ref_init (weak, self);
  self->signal_source = g_source_new (&signal_source_funcs, sizeof (GSource));
  g_source_set_static_name (self->signal_source, "[fastmap] FmMap signals");
  g_source_set_callback (self->signal_source, NULL, weak, weak_ref_free);
  g_source_set_ready_time (self->signal_source, 0);
  g_source_attach (self->signal_source, self->context);
}

/* ---- construction -------------------------------------------------- */

static void
on_cancelled (GCancellable *cancellable,
              gpointer      data)
{
  FmMap *self = data;

  g_mutex_lock (&self->lock);
  set_fatal_locked (self, g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED,
                                               "The map was cancelled"));
  g_mutex_unlock (&self->lock);
}

FmMap *
_fm_map_new (const FmMapConfig *config,
             GCancellable      *cancellable)
{
  FmMap *self = g_object_new (FM_TYPE_MAP, NULL);
  g_autoptr(GError) error = NULL;
  guint64 size = 1;

  self->config = *config;
  self->config.argv = g_strdupv (config->argv);
  self->config.envp_extra = g_strdupv (config->envp_extra);
  self->config.hosts = g_strdupv (config->hosts);
  self->config.launcher = g_strdupv (config->launcher);
  self->config.remote_command = g_strdup (config->remote_command);
  self->config.error = NULL;
  self->config.adopted = NULL;
  self->adopted = config->adopted != NULL ? config->adopted
                                          : g_array_new (FALSE, FALSE, sizeof (FmAdopted));

  self->window = config->max_in_flight;
  while (size < config->max_in_flight)
    size <<= 1;
  self->mask = size - 1;
  self->slots = g_new0 (Slot, size);
  if (!config->ordered)
    self->done_queue = g_new (guint64, size);

  self->context = g_main_context_ref_thread_default ();
  attach_signal_source (self);

  g_mutex_lock (&self->lock);
  g_ptr_array_set_size (self->procs, config->n_processes);
  if (config->error != NULL)
    error = g_error_copy (config->error);
  for (guint i = 0; i < config->n_processes && error == NULL; i++)
    proc_start (self, i, &error);
  if (error != NULL)
    set_fatal_locked (self, g_steal_pointer (&error));
  if (config->task_timeout > 0)
    self->watchdog = g_thread_new ("fm-watchdog", watchdog_thread, self);
  g_mutex_unlock (&self->lock);

  if (cancellable != NULL)
    {
      self->cancellable = g_object_ref (cancellable);
      self->cancelled_id = g_cancellable_connect (cancellable, G_CALLBACK (on_cancelled),
                                                  self, NULL);
    }
  return self;
}

/* ---- the public API ------------------------------------------------ */

/* Pushed tasks wait for a batch: someone who waits for results sends
 * them. A consumer asleep in fm_map_next() is woken, and dispatches as it
 * looks again (by then more pushes have joined them); the signal source
 * runs, and an async waiter tries again, PUSH_FLUSH_US from now, and
 * dispatch. Once per batch, not per push: dispatch_locked() clears
 * flush_armed. */
static void
arm_flush_locked (FmMap *self)
{
  self->flush_armed = TRUE;
  if (self->n_waiting > 0)
    g_cond_broadcast (&self->cond);
  if (!self->pull_mode && self->signal_source != NULL)
    {
      gint64 ready = g_source_get_ready_time (self->signal_source);
      gint64 at = g_get_monotonic_time () + PUSH_FLUSH_US;

      if (ready < 0 || ready > at)
        g_source_set_ready_time (self->signal_source, at);
    }
  if (self->async_waiters.length > 0)
    {
      GTask *task = g_queue_pop_head (&self->async_waiters);

      _fm_post_after (g_task_get_context (task), PUSH_FLUSH_US / 1000, retry_async, task);
    }
}

/**
 * fm_map_push:
 * @self: an #FmMap
 * @task: the next task; a floating reference is sunk
 *
 * Adds a task at the end of the input; its index is the number of tasks
 * given before it. It may be called from any thread, but not after
 * fm_map_close() nor on a map that has a source.
 *
 * Pushing never blocks: tasks beyond #FmMapper:max-in-flight wait in the
 * map. To bound memory with an input of unknown length, use
 * fm_map_set_source(). A task that is a number (of one basic type other
 * than a boolean, as `x`, `u` or `d`) costs its bytes while it waits: the
 * map copies them and drops @task before this returns, and makes a
 * GVariant of them again only for a task that has to run again. Other
 * tasks are kept as they are until their results come.
 *
 * Tasks pushed close together travel to the workers in batches. While
 * the results are waited for (fm_map_next(), fm_map_next_async() or the
 * signals) and the window has room, a task waits at most about a
 * millisecond for others to join it: it starts without a later push, a
 * result or fm_map_close(), so tasks may wait for tasks pushed after
 * them.
 */
void
fm_map_push (FmMap    *self,
             GVariant *task)
{
  guint64 at_workers;
  gboolean copied;
  NewTask t;

  g_return_if_fail (FM_IS_MAP (self));
  g_return_if_fail (task != NULL);

  new_task_read (&t, g_variant_ref_sink (task));
  g_mutex_lock (&self->lock);
  if (self->input_closed || self->source_func != NULL)
    {
      g_mutex_unlock (&self->lock);
      g_variant_unref (task);
      g_critical ("fm_map_push: the map's input is %s",
                  self->source_func ? "a source" : "closed");
      return;
    }
  copied = add_task_locked (self, &t);
  at_workers = self->dispatch_next - self->n_delivered;
  /* With the window full, only a result taken frees room, and the
   * consumer dispatches then: a producer ahead of the workers would look
   * at every worker on every push for nothing. */
  if (self->dispatch_next < self->base + self->window)
    {
      if (self->n_pending >= PUSH_BATCH || at_workers < PUSH_EAGER * self->procs->len)
        dispatch_locked (self);
      else if (!self->flush_armed)
        arm_flush_locked (self);
    }
  g_mutex_unlock (&self->lock);
  if (copied)
    g_variant_unref (task);
}

/**
 * fm_map_push_array:
 * @self: an #FmMap
 * @tasks: an array (its type starts with `a`); a floating reference is sunk
 *
 * Adds each child of @tasks at the end of the input, in order, as if each
 * were given to fm_map_push(). It costs the caller one GVariant for all
 * the tasks, and when they are numbers (an array of a basic fixed-size
 * type, such as one made with g_variant_new_fixed_array() of `x`), the
 * parent sends slices of the array's bytes as they are: no GVariant is
 * made for a task unless it has to run again.
 *
 * The same rules as fm_map_push() apply: any thread, not after
 * fm_map_close(), not on a map that has a source. Each task has its own
 * index and its own result; fm_map_next_array() takes the results of
 * numbers in bulk too.
 */
void
fm_map_push_array (FmMap    *self,
                   GVariant *tasks)
{
  Segment *seg;

  g_return_if_fail (FM_IS_MAP (self));
  g_return_if_fail (tasks != NULL);
  g_return_if_fail (g_variant_is_of_type (tasks, G_VARIANT_TYPE_ARRAY));

  g_variant_ref_sink (tasks);
  if (g_variant_n_children (tasks) == 0)
    {
      g_variant_unref (tasks);
      return;
    }

  seg = g_new0 (Segment, 1);
  seg->array = tasks;
  seg->n = g_variant_n_children (tasks);
  seg->refs = 1;
  seg->elem_size = fm_wire_fixed_size (g_variant_get_type_string (tasks) + 1);
  if (seg->elem_size > 0 && g_variant_get_size (tasks) == seg->n * seg->elem_size)
    seg->data = g_variant_get_data (tasks);
  else
    seg->elem_size = 0;

  g_mutex_lock (&self->lock);
  if (self->input_closed || self->source_func != NULL)
    {
      g_mutex_unlock (&self->lock);
      segment_unref (seg);
      g_critical ("fm_map_push_array: the map's input is closed or a source");
      return;
    }
  pending_push_locked (self, GSIZE_TO_POINTER (GPOINTER_TO_SIZE (seg) | SEGMENT_TAG));
  self->n_pending += seg->n;
  self->next_index += seg->n;
  dispatch_locked (self);
  g_mutex_unlock (&self->lock);
}

/**
 * fm_map_close:
 * @self: an #FmMap
 *
 * Ends the input of a map fed with fm_map_push(): once the results of
 * the tasks pushed so far are taken, the map is finished and its worker
 * processes exit. It may be called from any thread.
 */
void
fm_map_close (FmMap *self)
{
  g_return_if_fail (FM_IS_MAP (self));

  g_mutex_lock (&self->lock);
  self->input_closed = TRUE;
  dispatch_locked (self);
  wake_locked (self);
  g_mutex_unlock (&self->lock);
}

/**
 * fm_map_set_source:
 * @self: an #FmMap
 * @func: (scope notified) (closure user_data) (destroy destroy): the source of tasks
 * @user_data: data for @func
 * @destroy: (nullable): frees @user_data when the map no longer needs it
 *
 * Feeds the map lazily: @func gives the next task each time it is
 * called, and %NULL at the end of the input. The map calls it only
 * while it has room (see #FmMapper:max-in-flight), so an endless source
 * runs in bounded memory, and only on the consumer's side: in the
 * thread that calls fm_map_next(), in the thread-default main context of
 * the caller of fm_map_next_async(), or in the main context of the map's
 * signals. @func is never called from two threads at once.
 *
 * Call it once, before taking results, on a map that no task was pushed
 * to.
 */
void
fm_map_set_source (FmMap          *self,
                   FmSourceFunc    func,
                   gpointer        user_data,
                   GDestroyNotify  destroy)
{
  g_return_if_fail (FM_IS_MAP (self));
  g_return_if_fail (func != NULL);

  g_mutex_lock (&self->lock);
  if (self->source_func != NULL || self->next_index > 0 || self->input_closed)
    {
      g_mutex_unlock (&self->lock);
      g_critical ("fm_map_set_source: the map already has its input");
      if (destroy != NULL)
        destroy (user_data);
      return;
    }
  self->source_func = func;
  self->source_data = user_data;
  self->source_destroy = destroy;
  if (!self->pull_mode)
    wake_locked (self);
  g_mutex_unlock (&self->lock);
}

/* With no result ready: gives the error that ended the map (once), or
 * the end. Returns FALSE when the caller must wait. */
static gboolean
ended_locked (FmMap   *self,
              GError **error)
{
  if (self->fatal != NULL)
    {
      if (!self->fatal_reported)
        *error = g_error_copy (self->fatal);
      self->fatal_reported = TRUE;
      return TRUE;
    }
  if (finished_locked (self))
    {
      stop_workers_locked (self, FALSE);
      return TRUE;
    }
  return FALSE;
}

/* Gives the next result, the error that ended the map, or the end.
 * Returns FALSE when the caller must wait. */
static gboolean
next_locked (FmMap     *self,
             guint64   *index,
             GVariant **value,
             GError   **error)
{
  gboolean taken;

  *value = NULL;
  *error = NULL;
  *index = self->base;

  /* Pull and dispatch once per result taken, after taking it; before,
   * only when nothing is ready (the first call, or the workers are
   * behind). */
  taken = take_ready_locked (self, index, value, error);
  if (!taken)
    {
      fill_locked (self);
      taken = take_ready_locked (self, index, value, error);
    }
  if (taken)
    {
      fill_locked (self);
      return TRUE;
    }
  return ended_locked (self, error);
}

/**
 * fm_map_next:
 * @self: an #FmMap
 * @index: (out) (optional): the index of the task the result belongs to
 * @error: return location for the task's error
 *
 * Takes the next result, blocking the calling thread until there is one.
 * Results come in input order, each as soon as it and all before it are
 * done, unless #FmMapper:ordered is %FALSE.
 *
 * At the end of the results this returns %NULL and sets no error. For a
 * task that failed, it returns %NULL with that task's error and its
 * index, and the next call goes on with the next result. If the whole
 * map failed (no worker could start, its source failed, it was
 * cancelled: %G_IO_ERROR_CANCELLED), it returns %NULL with that error
 * once, @index then being the first result not given, and the end after.
 *
 * If the map has a source, this pulls it, in this thread.
 *
 * Returns: (transfer full) (nullable): the next result, or %NULL
 */
GVariant *
fm_map_next (FmMap    *self,
             guint64  *index,
             GError  **error)
{
  GVariant *value;
  GError *task_error;
  guint64 i;

  g_return_val_if_fail (FM_IS_MAP (self), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  g_mutex_lock (&self->lock);
  self->pull_mode = TRUE;
  while (!next_locked (self, &i, &value, &task_error))
    {
      self->n_waiting++;
      g_cond_wait (&self->cond, &self->lock);
      self->n_waiting--;
    }
  g_mutex_unlock (&self->lock);

  if (index != NULL)
    *index = i;
  if (task_error != NULL)
    g_propagate_error (error, task_error);
  return value;
}

/* The type string of a done result: its value's, or its batch's children's. */
static const char *
slot_result_type (Slot *s)
{
  return s->seg != NULL ? g_variant_get_type_string (s->seg->array) + 1
                        : g_variant_get_type_string (s->value);
}

typedef struct
{
  guint64   first;
  guint64   n;
  char     *type;     /* owned: the results' type string */
  gsize     size;     /* numbers: the size of one, else 0 */
  guint8   *bytes;    /* numbers: the n of them, one after the other */
  GVariant **values;  /* other types: the n of them */
  GError   *error;    /* the next task's, when it failed, or the map's */
} Run;

/* Takes the results that are ready from the next one on, while their
 * indexes follow each other, none failed and all have the first one's
 * type; or the next one's error; or the map's error or end, like
 * next_locked(). Returns FALSE when the caller must wait. */
static gboolean
next_run_locked (FmMap *self,
                 Run   *run)
{
  const char *type;
  Segment *seg;
  guint64 i, j, n;
  Slot *s;

  memset (run, 0, sizeof *run);
  run->first = self->base;
  if (!peek_ready_locked (self, 0, &i))
    {
      fill_locked (self);
      if (!peek_ready_locked (self, 0, &i))
        return ended_locked (self, &run->error);
    }

  run->first = i;
  s = slot_at (self, i);
  if (s->error != NULL)
    {
      run->error = g_steal_pointer (&s->error);
      deliver_locked (self, i, 1);
      fill_locked (self);
      return TRUE;
    }

  type = slot_result_type (s);
  seg = s->seg;
  for (n = 1; peek_ready_locked (self, n, &j) && j == i + n; n++)
    {
      Slot *t = slot_at (self, j);
      const char *t_type;

      if (t->error != NULL)
        break;
      if (t->seg != NULL && t->seg == seg)
        continue;
      t_type = slot_result_type (t);
      if (t_type != type && strcmp (t_type, type) != 0)
        break;
      seg = t->seg;
    }

  run->n = n;
  run->type = g_strdup (type);
  run->size = fm_wire_number_size (type);
  if (run->size > 0)
    run->bytes = g_malloc (n * run->size);
  else
    run->values = g_new (GVariant *, n);
  for (guint64 k = 0, len; k < n; k += len)
    {
      Segment *from;

      s = slot_at (self, i + k);
      len = 1;
      if (run->size == 0)
        run->values[k] = g_steal_pointer (&s->value);
      else if ((from = s->seg) == NULL)
        {
          g_variant_store (s->value, run->bytes + k * run->size);
          g_clear_pointer (&s->value, g_variant_unref);
        }
      else
        {
          /* The slots that follow hold the frame's next results, most
           * often: one copy for all of them. */
          while (k + len < n && slot_at (self, i + k + len)->seg == from &&
                 slot_at (self, i + k + len)->seg_pos == s->seg_pos + len)
            len++;
          memcpy (run->bytes + k * run->size, from->data + s->seg_pos * run->size,
                  len * run->size);
          for (guint64 m = 0; m < len; m++)
            slot_at (self, i + k + m)->seg = NULL;
          from->refs -= len - 1;
          segment_unref (from);
        }
    }
  deliver_locked (self, i, n);
  if (run->size > 0)
    {
      self->numbers_taken = TRUE;
      widen_locked (self);
    }
  fill_locked (self);
  return TRUE;
}

/* Outside the lock: the array of a run (NULL for none), which it frees
 * but for its error. */
static GVariant *
run_take_array (Run *run)
{
  GVariant *array = NULL;

  if (run->n > 0)
    {
      g_autoptr(GVariantType) element = g_variant_type_new (run->type);
      g_autoptr(GVariantType) type = g_variant_type_new_array (element);

      if (run->bytes != NULL)
        {
          guint8 *bytes = g_steal_pointer (&run->bytes);

          array = g_variant_new_from_data (type, bytes, run->n * run->size, TRUE,
                                           g_free, bytes);
        }
      else
        {
          array = g_variant_new_array (element, run->values, run->n);
          for (guint64 k = 0; k < run->n; k++)
            g_variant_unref (run->values[k]);
          g_clear_pointer (&run->values, g_free);
        }
      g_variant_ref_sink (array);
    }
  g_clear_pointer (&run->type, g_free);
  return array;
}

/**
 * fm_map_next_array:
 * @self: an #FmMap
 * @first_index: (out) (optional): the index of the task the first result
 *   belongs to
 * @error: return location for a task's error
 *
 * Takes every result that is ready, from the next one on, as one array:
 * its child number i is the result of task @first_index + i. Like
 * fm_map_next(), it blocks the calling thread until there is at least one
 * result, and results come in input order unless #FmMapper:ordered is
 * %FALSE (then in the order they came, for as long as their indexes
 * follow each other). The array ends before the first result that failed
 * or that has another type than the first one; the next call goes on
 * from there.
 *
 * When the results are numbers (of one basic type other than a boolean,
 * as `x`, `u` or `d`), no GVariant is made for each of them: they are
 * copied from what the workers sent into the one array, which
 * g_variant_get_fixed_array() reads. This is the way to take the results
 * of many tiny tasks, such as those given with fm_map_push_array(), at a
 * small fraction of fm_map_next()'s cost per result. Results of other
 * types cost what they cost fm_map_next(), and one array more. When the
 * tasks too are numbers, given in arrays with fm_map_push_array(), and
 * the workers find them tiny, the first run of numbers this takes widens
 * the default window (#FmMapper:max-in-flight) from 8192 to 65536: while
 * the workers keep every core busy, the thread that takes the results
 * waits for one, and the tasks in flight must last the workers until it
 * runs.
 *
 * For a task that failed, this returns %NULL with its error and its index
 * in @first_index; at the end of the results, %NULL and no error; if the
 * whole map failed, %NULL with that error once, as fm_map_next() does.
 * fm_map_next() and this may be used on one map, one after the other or
 * from several threads; fm_map_next_array_async() is the form that does
 * not block. If the map has a source, this pulls it, in this thread.
 *
 * Returns: (transfer full) (nullable): an array of the next results (of
 *   type `a` and the results' type), or %NULL
 */
GVariant *
fm_map_next_array (FmMap    *self,
                   guint64  *first_index,
                   GError  **error)
{
  GVariant *array;
  Run run;

  g_return_val_if_fail (FM_IS_MAP (self), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  g_mutex_lock (&self->lock);
  self->pull_mode = TRUE;
  g_atomic_int_set (&self->bulk, TRUE);
  while (!next_run_locked (self, &run))
    {
      self->n_waiting++;
      g_cond_wait (&self->cond, &self->lock);
      self->n_waiting--;
    }
  g_mutex_unlock (&self->lock);

  if (first_index != NULL)
    *first_index = run.first;
  array = run_take_array (&run);
  if (run.error != NULL)
    g_propagate_error (error, run.error);
  return array;
}

typedef struct
{
  guint64   index;
  GVariant *value;
  GError   *error;
} NextResult;

static void
next_result_free (gpointer data)
{
  NextResult *r = data;

  g_clear_pointer (&r->value, g_variant_unref);
  g_clear_error (&r->error);
  g_free (r);
}

/* Runs in the task's context: tries again to give it a result, or the
 * next results in one array for fm_map_next_array_async(). */
static gboolean
retry_async (gpointer data)
{
  g_autoptr(GTask) task = data;
  FmMap *self = g_task_get_source_object (task);
  gboolean array = g_task_get_source_tag (task) == fm_map_next_array_async;
  gboolean ready;
  NextResult r;
  Run run;

  if (g_task_return_error_if_cancelled (task))
    return G_SOURCE_REMOVE;

  g_mutex_lock (&self->lock);
  ready = array ? next_run_locked (self, &run) : next_locked (self, &r.index, &r.value, &r.error);
  if (!ready)
    {
      g_queue_push_tail (&self->async_waiters, g_steal_pointer (&task));
      g_mutex_unlock (&self->lock);
      return G_SOURCE_REMOVE;
    }
  g_mutex_unlock (&self->lock);

  if (array)
    {
      r.index = run.first;
      r.value = run_take_array (&run);
      r.error = run.error;
    }
  g_task_return_pointer (task, g_memdup2 (&r, sizeof r), next_result_free);
  return G_SOURCE_REMOVE;
}

static void
on_next_cancelled (GCancellable *cancellable,
                   gpointer      data)
{
  FmMap *self = data;

  g_mutex_lock (&self->lock);
  wake_locked (self);
  g_mutex_unlock (&self->lock);
}

/* Wakes the waiters when the wait of one of them is cancelled; the task
 * (which holds the map) disconnects it when it goes. */
typedef struct
{
  GCancellable *cancellable;
  gulong        id;
} CancelHook;

static void
cancel_hook_free (gpointer data)
{
  CancelHook *hook = data;

  g_cancellable_disconnect (hook->cancellable, hook->id);
  g_object_unref (hook->cancellable);
  g_free (hook);
}

/* Starts a wait of fm_map_next_async() or fm_map_next_array_async(),
 * which @source_tag tells. */
static void
start_async (FmMap               *self,
             gpointer             source_tag,
             GCancellable        *cancellable,
             GAsyncReadyCallback  callback,
             gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, source_tag);
  g_task_set_check_cancellable (task, FALSE);

  g_mutex_lock (&self->lock);
  self->pull_mode = TRUE;
  if (source_tag == fm_map_next_array_async)
    g_atomic_int_set (&self->bulk, TRUE);
  g_mutex_unlock (&self->lock);

  if (cancellable != NULL)
    {
      CancelHook *hook = g_new0 (CancelHook, 1);

      hook->cancellable = g_object_ref (cancellable);
      hook->id = g_cancellable_connect (cancellable, G_CALLBACK (on_next_cancelled),
                                        self, NULL);
      g_task_set_task_data (task, hook, cancel_hook_free);
    }

  retry_async (g_steal_pointer (&task));
}

/* Finishes either wait. */
static GVariant *
finish_async (GAsyncResult  *result,
              guint64       *index,
              GError       **error)
{
  NextResult *r;
  GVariant *value;

  r = g_task_propagate_pointer (G_TASK (result), error);
  if (r == NULL)
    return NULL;
  if (index != NULL)
    *index = r->index;
  value = g_steal_pointer (&r->value);
  if (r->error != NULL)
    g_propagate_error (error, g_steal_pointer (&r->error));
  next_result_free (r);
  return value;
}

/**
 * fm_map_next_async:
 * @self: an #FmMap
 * @cancellable: (nullable): a #GCancellable to stop waiting, or %NULL
 * @callback: (scope async): called when the next result is there
 * @user_data: (closure): data for @callback
 *
 * Takes the next result without blocking. @callback runs in the
 * thread-default main context of the caller; it calls
 * fm_map_next_finish(), which gives what fm_map_next() would have. A
 * source, if the map has one, is pulled in that context.
 *
 * Call it again only after the previous call finished. Cancelling
 * @cancellable stops this wait only (the map goes on, and no result is
 * lost); to end the map, cancel the #GCancellable given to
 * fm_mapper_map().
 */
void
fm_map_next_async (FmMap               *self,
                   GCancellable        *cancellable,
                   GAsyncReadyCallback  callback,
                   gpointer             user_data)
{
  g_return_if_fail (FM_IS_MAP (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  start_async (self, fm_map_next_async, cancellable, callback, user_data);
}

/**
 * fm_map_next_finish:
 * @self: an #FmMap
 * @result: the #GAsyncResult given to the callback
 * @index: (out) (optional): the index of the task the result belongs to
 * @error: return location for the task's error
 *
 * Finishes fm_map_next_async(), with the same results as fm_map_next().
 *
 * Returns: (transfer full) (nullable): the next result, or %NULL
 */
GVariant *
fm_map_next_finish (FmMap         *self,
                    GAsyncResult  *result,
                    guint64       *index,
                    GError       **error)
{
  g_return_val_if_fail (FM_IS_MAP (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == fm_map_next_async, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return finish_async (result, index, error);
}

/**
 * fm_map_next_array_async:
 * @self: an #FmMap
 * @cancellable: (nullable): a #GCancellable to stop waiting, or %NULL
 * @callback: (scope async): called when the next results are there
 * @user_data: (closure): data for @callback
 *
 * Takes the next results, as many as are ready, without blocking: what
 * fm_map_next_async() is to fm_map_next(), this is to
 * fm_map_next_array(). @callback runs in the thread-default main context
 * of the caller; it calls fm_map_next_array_finish(). The same rules as
 * fm_map_next_async() apply.
 */
void
fm_map_next_array_async (FmMap               *self,
                         GCancellable        *cancellable,
                         GAsyncReadyCallback  callback,
                         gpointer             user_data)
{
  g_return_if_fail (FM_IS_MAP (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  start_async (self, fm_map_next_array_async, cancellable, callback, user_data);
}

/**
 * fm_map_next_array_finish:
 * @self: an #FmMap
 * @result: the #GAsyncResult given to the callback
 * @first_index: (out) (optional): the index of the task the first result
 *   belongs to
 * @error: return location for a task's error
 *
 * Finishes fm_map_next_array_async(), with the same results as
 * fm_map_next_array().
 *
 * Returns: (transfer full) (nullable): an array of the next results, or
 *   %NULL
 */
GVariant *
fm_map_next_array_finish (FmMap         *self,
                          GAsyncResult  *result,
                          guint64       *first_index,
                          GError       **error)
{
  g_return_val_if_fail (FM_IS_MAP (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == fm_map_next_array_async,
                        NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return finish_async (result, first_index, error);
}

/**
 * fm_map_get_n_workers:
 * @self: an #FmMap
 *
 * Gets how many worker processes the map runs: #FmMapper:n-processes,
 * resolved (one per core for 0), or the sum of the counts of
 * #FmMapper:hosts, capped by #FmMapper:threads-limit.
 *
 * Returns: the number of worker processes
 */
guint
fm_map_get_n_workers (FmMap *self)
{
  g_return_val_if_fail (FM_IS_MAP (self), 0);

  return self->config.n_processes;
}

/**
 * fm_map_get_worker_pid:
 * @self: an #FmMap
 * @worker: a worker number, below fm_map_get_n_workers()
 *
 * Gets the process id of a worker, which changes when a dead worker is
 * replaced: for a worker on another host (see #FmMapper:hosts), the id
 * of its launcher here. For monitoring and tests.
 *
 * Returns: the process id, or 0 if that worker is not running
 */
GPid
fm_map_get_worker_pid (FmMap *self,
                       guint  worker)
{
  GPid pid = 0;
  Proc *p;

  g_return_val_if_fail (FM_IS_MAP (self), 0);
  g_return_val_if_fail (worker < self->config.n_processes, 0);

  g_mutex_lock (&self->lock);
  p = g_ptr_array_index (self->procs, worker);
  if (p != NULL && !p->dead)
    pid = p->pid;
  g_mutex_unlock (&self->lock);
  return pid;
}
