/* fm-worker.c: serving an FmFunction on a worker's stdin/stdout
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#ifdef __linux__
#include <sys/syscall.h>
#endif

#include <gio/gio.h>

#include "fm-error.h"
#include "fm-private.h"
#include "fm-wire.h"
#include "fm-worker.h"

/* How the worker runs tasks.
 *
 * The reader (the thread that called fm_worker_serve()) queues each batch
 * as it arrives. Runners are GThreadPool jobs: a runner takes a chunk of
 * tasks from the queue, runs them, writes their results as one frame, and
 * goes on until the queue is empty. The chunk size follows the measured
 * cost of a task: one task at a time until eight tasks are measured or
 * when they are large, so that tasks that wait each get a thread, and
 * thousands at a time for tasks of a few hundred nanoseconds, so that
 * they cost one lock, one frame and one write per chunk.
 *
 * How many runners: as many as the queue needs at that chunk size, capped
 * by the worker's share of threads-limit (none when it is 0). Until eight
 * tasks are measured only a few start; a ticker adds runners whenever no
 * runner has started or finished anything for a millisecond while tasks
 * wait and the process hardly uses the CPU, which is what tasks that block
 * look like. When the system refuses a thread, the tasks stay queued for
 * the runners there are, and the ticker tries again: work waits for a
 * free thread. Runners hand their results to a writer thread.
 *
 * A chunk is sized from the tasks before it, and the next task may block
 * where they did not (the first tasks of Python's fast_map() are empty
 * pings). So a runner claims the tasks of its chunk one at a time, and a
 * chunk whose runner has been in one task for STUCK_US, asleep in the
 * kernel, gives the tasks it has not started back to the head of the
 * queue, for other runners: a task does not wait long behind another one
 * that blocks.
 */

#define PROBE_RUNNERS       8
#define CHUNK_TARGET_NS     (200 * 1000)
#define MAX_CHUNK           4096  /* < 65536: see Running.claim */
/* What "lately" is to tiny_out_locked(): the tasks before these weigh half. */
#define RECENT_TASKS        4096
#define STALL_US            1000
/* The process computes if it used half a core over this long, at least:
 * see computing_locked(). */
#define COMPUTE_WINDOW_US   (20 * 1000)
/* A chunk whose runner spends this long asleep in one task gives the rest
 * away: long enough that a short wait (a lock, a page fault) keeps it. */
#define STUCK_US            (20 * 1000)
/* A frame of results stays under this, and one result must fit in it
 * with room to spare: the parent refuses frames over FM_WIRE_MAX_FRAME. */
#define MAX_RESULTS_BYTES   (16 * 1024 * 1024)
#define MAX_RESULT_BYTES    (FM_WIRE_MAX_FRAME / 2)
/* A runner with nothing to do waits this long for more before its
 * thread goes back to the pool: batches that follow each other reuse
 * threads instead of making new ones. */
#define LINGER_US           (200 * 1000)

typedef struct
{
  gatomicrefcount refs; /* the queue's, and one per chunk being run */
  GVariant *values;     /* owned, an array */
  guint64  *indexes;    /* owned, host order */
  guint     n;
  GBytes   *numbers;    /* owned, values' bytes, when its children are numbers
                         * (fm_wire_number_size()), else NULL */
  const GVariantType *elem_type;
  gsize     elem_size;  /* the size of a number */
} Batch;

/* Tasks in the queue: [pos, end) of a batch, holding a reference. */
typedef struct
{
  Batch *b;
  guint  pos;
  guint  end;
} Slice;

/* A result or an error for the writer thread. A result that is a
 * number (a value of a basic type of fixed size) travels as its bytes:
 * its runner drops the value at once, in the thread that made it. Made
 * in a runner and dropped in the writer, tiny results cost GLib's slice
 * allocator a trip to its shared depot for each, which took a sixth of
 * a worker's time (B2). */
typedef struct
{
  guint64      index;
  GVariant    *value;   /* owned, for a result that is not a number */
  GError      *error;   /* owned, for an error */
  gsize        size;    /* of the value or the number */
  guint64      number;  /* a number's bytes, the first @size of these */
  char         type;    /* a number's type ('x'...), else 0 */
} Out;

/* What a runner is running: its chunk, and its task for the task-timeout
 * watchdog. */
typedef struct
{
  guint64  index;         /* these two only with a task-timeout */
  gint64   started;       /* monotonic µs, 0 when between tasks */
  Batch   *batch;         /* the chunk's batch, NULL between chunks */
  guint    start;         /* the chunk's first task in it */
  gint     claim;         /* atomic: next << 16 | end, from start */
  gboolean chunked;       /* counted in Worker.chunked */
  Batch   *seen_batch;    /* the ticker's view, unchanged since seen_at */
  guint    seen_start;
  gint     seen_claim;
  gint64   seen_at;
  gint     tid;           /* the runner's thread, 0 where unknown */
  /* The results of the chunk so far, so that the ticker can send those of
   * a chunk stuck in a task instead of holding them until it ends. */
  GMutex     out_lock;    /* guards results and sent */
  Out       *results;     /* storage while in a chunk, else NULL */
  Out       *storage;     /* the runner's, reused from chunk to chunk */
  guint      capacity;    /* of storage */
  gint       n_results;   /* written by the runner only, with release */
  guint      sent;        /* of those, queued for the writer */
} Running;

/* The process's CPU time at a time: see computing_locked(). */
typedef struct
{
  gint64 at;          /* monotonic µs */
  gint64 cpu_us;
  gint64 starting_us; /* Worker.starting_us then */
} CpuSample;

#define CLAIM(next, end)    ((gint) (((next) << 16) | (end)))
#define CLAIM_NEXT(claim)   (((guint) (claim)) >> 16)
#define CLAIM_END(claim)    (((guint) (claim)) & 0xffff)

typedef struct
{
  FmFunction   func;
  gpointer     user_data;
  int          in_fd;
  int          out_fd;
  gboolean     swap;
  guint        threads_limit;   /* 0: no limit */
  guint        n_cpus;
  GThreadPool *pool;

  GMutex       lock;            /* guards the fields below */
  GCond        tick_cond;
  GQueue       slices;          /* of Slice*, in the order to run */
  guint64      queued;
  guint        runners;         /* counted to start and not returned */
  guint        starting;        /* of which not yet running runner() */
  guint        to_push;         /* of which the ticker has yet to push */
  guint        busy;            /* runners inside a chunk */
  guint        waiting;         /* runners lingering for work */
  GCond        work_cond;       /* signalled when work is queued */
  gint64       cost_ns;         /* EMA of one task's wall time, 0 = unknown */
  guint64      measured;        /* tasks behind cost_ns */
  gint64       last_progress;   /* monotonic µs of the last finished chunk */
  gint64       moved_at;        /* ... and of the last task started, as the ticker saw */
  gint64       pushed_at;       /* ... and of the last runners the ticker pushed */
  gint64       starting_us;     /* how long the ticker took to start runners, in all */
  gboolean     computing;       /* the process computed since cpu_base */
  gint64       cpu_read_at;     /* monotonic µs of the last look */
  CpuSample    cpu_base;        /* COMPUTE_WINDOW_US to twice that ago */
  CpuSample    cpu_mid;         /* the next base */
  guint        chunked;         /* runners inside a chunk of several tasks */
  gboolean     stopping;
  gint64       timeout_us;      /* task-timeout, 0: none; immutable once serving */
  GPtrArray   *running;         /* Running*, one per runner */

  GMutex       write_lock;      /* one frame at a time on out_fd */
  GMutex       out_lock;        /* guards the five below */
  GCond        out_cond;
  GArray      *out;             /* of Out, for the writer, in order */
  gboolean     out_waiting;     /* the writer waits for out_cond */
  gint64       recent_ns;       /* the time the tasks run lately took... */
  guint64      recent_tasks;    /* ... and how many, both halved past RECENT_TASKS */
} Worker;

static void
batch_unref (Batch *b)
{
  if (!g_atomic_ref_count_dec (&b->refs))
    return;
  g_variant_unref (b->values);
  g_clear_pointer (&b->numbers, g_bytes_unref);
  g_free (b->indexes);
  g_free (b);
}

static guint
chunk_size_locked (Worker *w)
{
  /* A few tasks are no measure: Python's fast_map() starts with an empty
   * ping per worker, and chunks sized from it put items that wait behind
   * each other until the ticker takes them back. */
  if (w->cost_ns <= 0 || w->measured < PROBE_RUNNERS)
    return 1;
  return CLAMP (CHUNK_TARGET_NS / w->cost_ns, 1, MAX_CHUNK);
}

/* How many tasks this worker wants to hold: enough to keep its runners
 * busy for a round trip, and no more, so that the parent can give the
 * rest to another worker. */
static guint32
credit_locked (Worker *w)
{
  if (w->threads_limit == 0)
    return G_MAXUINT32;
  return MIN ((guint64) w->threads_limit * chunk_size_locked (w) * 2, G_MAXUINT32);
}

/* Counts @n more runners, for the ticker to start. Nobody starts a
 * thread with w->lock held: a GThreadPool that is not exclusive makes
 * each new thread in a helper thread of GLib's and waits for it, which on
 * a loaded machine took 1.7 ms a thread, and 400 of them held the lock,
 * and every runner with it, for 0.7 s (a task waited behind one that
 * blocked, in CI, for all of its 3 s). */
static void
add_runners_locked (Worker *w,
                    guint   n)
{
  if (n == 0)
    return;
  w->runners += n;
  w->starting += n;
  w->to_push += n;
  g_cond_signal (&w->tick_cond);
}

/* Starts runners so that @chunks chunks of the queue each have one, as
 * long as there are no more than @max_total runners: runners that are
 * not inside a chunk now (or not started yet) take one soon, so only the
 * shortfall starts. */
static void
spawn_runners_locked (Worker  *w,
                      guint64  chunks,
                      guint64  max_total)
{
  guint idle = w->runners - w->busy;
  guint64 more = chunks > idle ? chunks - idle : 0;

  if (w->threads_limit > 0)
    max_total = MIN (max_total, w->threads_limit);
  more = MIN (more, max_total > w->runners ? max_total - w->runners : 0);
  add_runners_locked (w, more);
}

/* Pushes up to @max of the runners counted to start, without w->lock,
 * which the caller holds and gets back: the ticker, between its looks. */
static void
push_runners_locked (Worker *w,
                     guint   max)
{
  guint n = MIN (w->to_push, max), pushed = 0;
  gint64 t0 = g_get_monotonic_time ();

  w->to_push -= n;
  g_mutex_unlock (&w->lock);
  while (pushed < n)
    {
      g_autoptr(GError) error = NULL;

      pushed++;
      if (!g_thread_pool_push (w->pool, w, &error))
        {
          /* The system refused a thread. The job stays in the pool's
           * queue and runs when a thread is free; the tasks wait in ours.
           * The ticker tries again if no thread runs at all. */
          break;
        }
    }
  g_mutex_lock (&w->lock);
  w->starting_us += g_get_monotonic_time () - t0;
  /* What was not pushed does not start. */
  w->runners -= n - pushed;
  w->starting -= n - pushed;
}

static guint64
chunks_locked (Worker *w)
{
  return (w->queued + chunk_size_locked (w) - 1) / chunk_size_locked (w);
}

/* Results and errors go to the writer thread through w->out, in the
 * order they are queued: a runner never waits for the parent to read. */
static void
queue_out_locked (Worker *w)
{
  if (w->out_waiting)
    g_cond_signal (&w->out_cond);
}

/* Queues @n results, taking the references they hold, and counts @done
 * tasks run, which took @elapsed_ns in all, into the measure that the
 * writer gives the parent with them (tiny_out_locked()). */
static void
write_results (Worker    *w,
               const Out *results,
               guint      n,
               guint      done,
               gint64     elapsed_ns)
{
  g_mutex_lock (&w->out_lock);
  g_array_append_vals (w->out, results, n);
  w->recent_ns += elapsed_ns;
  w->recent_tasks += done;
  if (w->recent_tasks > RECENT_TASKS)
    {
      w->recent_ns /= 2;
      w->recent_tasks /= 2;
    }
  if (n > 0)
    queue_out_locked (w);
  g_mutex_unlock (&w->out_lock);
}

/* Whether the tasks are tiny: those run lately took under half a chunk's
 * time on average, so that chunks hold several. What the parent needs to
 * know before it lets workers hold more of them (FM_WIRE_BATCH_TINY):
 * tasks that wait run one at a time, each in a thread of its own with
 * threads-limit 0. Not cost_ns, which sizes chunks: it weighs a chunk of
 * one task that took 2 ms (the first after the probe, under
 * AddressSanitizer) as much as the next chunk of 4096 tasks of 2 µs, and
 * a chunk taken back from a task stuck in it makes it large for a while.
 * A task counts once it ends, and its chunk's last results go to the
 * writer with its measure: the last frame of a worker that holds one task
 * up, having run the others, says what they took. */
static gboolean
tiny_out_locked (Worker *w)
{
  return w->recent_tasks >= PROBE_RUNNERS &&
    w->recent_ns <= (gint64) w->recent_tasks * (CHUNK_TARGET_NS / 2);
}

static void
write_error (Worker       *w,
             guint64       index,
             const GError *error)
{
  Out o = { index, NULL, g_error_copy (error), 0, 0, 0 };

  g_mutex_lock (&w->out_lock);
  g_array_append_val (w->out, o);
  queue_out_locked (w);
  g_mutex_unlock (&w->out_lock);
}

/* Type strings of values of one basic type are one string of GLib's. */
static inline gboolean
same_type (const char *a,
           const char *b)
{
  return a == b || g_str_equal (a, b);
}

/* Writes @n entries of @out, frames of results of one type each (and
 * well under the parent's limit, with @credit and @flags) and error
 * frames, in order. The caller holds w->write_lock. */
static void
write_out_locked (Worker  *w,
                  Out     *out,
                  guint    n,
                  guint32  credit,
                  guint32  flags)
{
  guint64 stack_indexes[256];
  GVariant *stack_values[256];
  gsize stack_sizes[256];
  guint64 stack_numbers[256];
  g_autofree guint64 *heap_indexes = NULL;
  g_autofree GVariant **heap_values = NULL;
  g_autofree gsize *heap_sizes = NULL;
  g_autofree guint64 *heap_numbers = NULL;
  guint64 *indexes = stack_indexes;
  GVariant **values = stack_values;
  gsize *sizes = stack_sizes;
  guint8 *numbers = (guint8 *) stack_numbers;
  guint start = 0;

  if (n > G_N_ELEMENTS (stack_values))
    {
      indexes = heap_indexes = g_new (guint64, n);
      values = heap_values = g_new (GVariant *, n);
      sizes = heap_sizes = g_new (gsize, n);
      numbers = (guint8 *) (heap_numbers = g_new (guint64, n));
    }
  while (start < n)
    {
      char number_type[2] = { out[start].type, '\0' };
      const char *type;
      gsize bytes;
      guint end = start + 1;
      gboolean ok;

      if (out[start].error != NULL)
        {
          if (!fm_wire_write_error (w->out_fd, out[start].index, out[start].error, NULL, NULL))
            _exit (0);  /* the parent is gone: nobody wants the rest */
          start++;
          continue;
        }
      type = out[start].type ? number_type : g_variant_get_type_string (out[start].value);
      bytes = out[start].size;
      while (end < n && out[end].error == NULL && out[end].type == out[start].type &&
             (out[end].type || same_type (type, g_variant_get_type_string (out[end].value))) &&
             bytes + out[end].size <= MAX_RESULTS_BYTES)
        bytes += out[end++].size;
      for (guint i = start; i < end; i++)
        {
          indexes[i - start] = out[i].index;
          if (out[i].type)
            memcpy (numbers + (i - start) * out[i].size, &out[i].number, out[i].size);
          else
            {
              values[i - start] = out[i].value;
              sizes[i - start] = out[i].size;
            }
        }
      if (out[start].type)
        ok = fm_wire_write_raw_batch (w->out_fd, FM_FRAME_RESULTS, indexes, end - start, type,
                                      numbers, bytes, credit, flags, NULL);
      else
        ok = fm_wire_write_batch (w->out_fd, FM_FRAME_RESULTS, indexes, values, sizes,
                                  end - start, credit, flags, NULL);
      if (!ok)
        _exit (0);
      start = end;
    }
}

/* The writer thread: writes what the runners queued, as it comes, in
 * frames as large as what has piled up while it waited for the parent. */
static gpointer
writer (gpointer data)
{
  Worker *w = data;
  GArray *taken = g_array_new (FALSE, FALSE, sizeof (Out));

  g_mutex_lock (&w->out_lock);
  for (;;)
    {
      GArray *tmp;
      guint32 credit, flags;

      while (w->out->len == 0)
        {
          w->out_waiting = TRUE;
          g_cond_wait (&w->out_cond, &w->out_lock);
          w->out_waiting = FALSE;
        }
      tmp = taken;
      taken = w->out;
      w->out = tmp;
      flags = tiny_out_locked (w) ? FM_WIRE_BATCH_TINY : 0;
      g_mutex_unlock (&w->out_lock);

      g_mutex_lock (&w->lock);
      credit = credit_locked (w);
      g_mutex_unlock (&w->lock);
      g_mutex_lock (&w->write_lock);
      write_out_locked (w, &g_array_index (taken, Out, 0), taken->len, credit, flags);
      g_mutex_unlock (&w->write_lock);
      for (guint i = 0; i < taken->len; i++)
        {
          Out *o = &g_array_index (taken, Out, i);

          if (o->value != NULL)
            g_variant_unref (o->value);
          else if (o->error != NULL)
            g_error_free (o->error);
        }
      g_array_set_size (taken, 0);
      g_mutex_lock (&w->out_lock);
    }
  return NULL;
}

/* Calls the function; returns its result, and its size in @size. */
static GVariant *
call_function (Worker    *w,
               GVariant  *task,
               gsize     *size,
               GError   **error)
{
  GVariant *result = w->func (task, w->user_data, error);

  if (result != NULL && (*size = g_variant_get_size (result)) > MAX_RESULT_BYTES)
    {
      g_set_error (error, FM_ERROR, FM_ERROR_INVALID_ARGUMENT,
                   "The result is %" G_GSIZE_FORMAT " bytes, more than the limit of %u",
                   *size, MAX_RESULT_BYTES);
      g_variant_unref (g_variant_take_ref (result));
      return NULL;
    }
  if (result != NULL)
    return g_variant_take_ref (result);
  if (error != NULL && *error == NULL)
    g_set_error_literal (error, FM_ERROR, FM_ERROR_INVALID_ARGUMENT,
                         "The function returned NULL without setting an error");
  return NULL;
}

/* Tells the task-timeout watchdog that @r starts task @index, or with
 * @start FALSE that it ended. Nothing, not even the clock, without one. */
static void
watch_task (Worker   *w,
            Running  *r,
            guint64   index,
            gboolean  start)
{
  if (w->timeout_us == 0)
    return;
  g_mutex_lock (&w->lock);
  r->index = index;
  r->started = start ? g_get_monotonic_time () : 0;
  g_mutex_unlock (&w->lock);
}

/* Claims the next task of the runner's chunk, unless the ticker gave the
 * rest away. */
static gboolean
claim_task (Running *r,
            guint   *i)
{
  for (;;)
    {
      gint claim = g_atomic_int_get (&r->claim);
      guint next = CLAIM_NEXT (claim), end = CLAIM_END (claim);

      if (next >= end)
        return FALSE;
      if (g_atomic_int_compare_and_exchange (&r->claim, claim, CLAIM (next + 1, end)))
        {
          *i = r->start + next;
          return TRUE;
        }
    }
}

/* The calling thread's CPU time in µs (-1 where unknown), and how many
 * times it gave the CPU up to wait. */
static void
thread_usage (gint64 *cpu_us,
              glong  *waits)
{
#ifdef RUSAGE_THREAD
  struct rusage ru;

  if (getrusage (RUSAGE_THREAD, &ru) == 0)
    {
      *cpu_us = (gint64) (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * G_USEC_PER_SEC +
                ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
      *waits = ru.ru_nvcsw;
      return;
    }
#endif
  *cpu_us = -1;
  *waits = 0;
}

/* Queues for the writer the results of @r's chunk not queued yet: the
 * runner's, after a task or at the end of its chunk, or the ticker's, for
 * a chunk stuck in a task (the tasks finished before it would otherwise
 * wait for it: the parent counted them as held, gave the worker nothing
 * new, and a task in CI started 3 s late). At the end of a chunk, with
 * the @done tasks it ran and the @elapsed_ns they took; else 0 and 0.
 * The caller holds r->out_lock. */
static void
send_results_locked (Worker  *w,
                     Running *r,
                     guint    done,
                     gint64   elapsed_ns)
{
  guint n;

  if (r->results == NULL)
    return;
  n = (guint) __atomic_load_n (&r->n_results, __ATOMIC_ACQUIRE);
  if (n > r->sent || done > 0)
    write_results (w, r->results + r->sent, n - r->sent, done, elapsed_ns);
  r->sent = n;
}

/* Task @i of @b, a batch of numbers: a GVariant on a slice of its bytes,
 * as g_variant_get_child_value() makes, without the checks that makes of
 * each child (GLib 2.74 counts an untrusted array's children again for
 * each one). Trusted: any bytes of a number's size are a number in normal
 * form. The workers' CPU per task of bench-tiny bulk: 265-335 → 250-310
 * ns (medians of 12 paired rounds). */
static GVariant *
number_task (Batch *b,
             guint  i)
{
  g_autoptr(GBytes) bytes = g_bytes_new_from_bytes (b->numbers, i * b->elem_size, b->elem_size);

  return g_variant_ref_sink (g_variant_new_from_bytes (b->elem_type, bytes, TRUE));
}

/* Runs the tasks of @r's chunk it claims; returns how many, and in
 * @elapsed_ns the time they took: their CPU time if they never waited
 * (the time the system ran other threads is no cost of the tasks), else
 * their wall time. Their results go to the writer thread: a parent slow
 * to read is no cost of the tasks either. */
static guint
run_chunk (Worker  *w,
           Running *r,
           guint    n,
           gint64  *elapsed_ns)
{
  gint64 t0 = g_get_monotonic_time ();
  gint64 cpu0, cpu1;
  glong waits0, waits1;
  Batch *b = r->batch;
  guint n_ok = 0, done = 0, i;
  Out *results;

  if (n > r->capacity)
    {
      /* Between chunks: the ticker looks at r->results only, NULL now. */
      g_free (r->storage);
      r->storage = g_new (Out, n);
      r->capacity = n;
    }
  results = r->storage;

  /* Before the first claim, whose compare-and-swap publishes them. */
  r->results = results;
  r->n_results = 0;
  r->sent = 0;
  thread_usage (&cpu0, &waits0);
  while (claim_task (r, &i))
    {
      g_autoptr(GVariant) task = b->numbers != NULL
        ? number_task (b, i)
        : g_variant_get_child_value (b->values, i);
      g_autoptr(GError) error = NULL;
      GVariant *result;
      const char *type;
      gsize fixed;

      done++;
      watch_task (w, r, b->indexes[i], TRUE);
      result = call_function (w, task, &results[n_ok].size, &error);
      watch_task (w, r, 0, FALSE);

      if (result == NULL)
        {
          gint64 t1 = g_get_monotonic_time ();

          /* Keep order within the chunk: results before the error first. */
          g_mutex_lock (&r->out_lock);
          send_results_locked (w, r, 0, 0);
          write_error (w, b->indexes[i], error);
          g_mutex_unlock (&r->out_lock);
          t0 += g_get_monotonic_time () - t1;
          continue;
        }
      type = g_variant_get_type_string (result);
      fixed = fm_wire_fixed_size (type);
      results[n_ok].index = b->indexes[i];
      results[n_ok].error = NULL;
      if (fixed > 0 && results[n_ok].size == fixed)
        {
          /* (A value from untrusted bytes may not have its type's size.) */
          fm_wire_copy_number (&results[n_ok].number, result, results[n_ok].size);
          results[n_ok].type = type[0];
          results[n_ok].value = NULL;
          g_variant_unref (result);
        }
      else
        {
          results[n_ok].type = 0;
          results[n_ok].value = result;
        }
      n_ok++;
      /* A plain store on x86: what the ticker reads, under r->out_lock,
       * are the results stored before it. */
      __atomic_store_n (&r->n_results, (gint) n_ok, __ATOMIC_RELEASE);
    }
  *elapsed_ns = (g_get_monotonic_time () - t0) * 1000;
  thread_usage (&cpu1, &waits1);
  if (cpu0 >= 0 && cpu1 >= 0 && waits1 == waits0)
    *elapsed_ns = (cpu1 - cpu0) * 1000;

  g_mutex_lock (&r->out_lock);
  send_results_locked (w, r, done, *elapsed_ns);
  r->results = NULL;
  g_mutex_unlock (&r->out_lock);
  return done;
}

/* Takes up to @max tasks from the head of the queue for @r's chunk, with
 * a reference to their batch; returns how many. */
static guint
take_chunk_locked (Worker  *w,
                   Running *r,
                   guint    max)
{
  Slice *s = g_queue_peek_head (&w->slices);
  guint n = MIN (max, s->end - s->pos);

  r->batch = s->b;
  r->start = s->pos;
  g_atomic_int_set (&r->claim, CLAIM (0, n));
  s->pos += n;
  w->queued -= n;
  if (s->pos < s->end)
    g_atomic_ref_count_inc (&s->b->refs);
  else
    {
      /* The queue's reference goes to the runner. */
      g_queue_pop_head (&w->slices);
      g_free (s);
    }
  return n;
}

static void
queue_slice_locked (Worker   *w,
                    Batch    *b,
                    guint     pos,
                    guint     end,
                    gboolean  head)
{
  Slice *s = g_new (Slice, 1);

  s->b = b;
  s->pos = pos;
  s->end = end;
  if (head)
    g_queue_push_head (&w->slices, s);
  else
    g_queue_push_tail (&w->slices, s);
  w->queued += end - pos;
}

static void
runner (gpointer data,
        gpointer pool_data)
{
  Worker *w = data;
  Running running = { 0, };
  Running *r = &running;
  gint64 elapsed = 0;
  guint done = 0;

  g_mutex_init (&r->out_lock);

#ifdef SYS_gettid
  r->tid = (gint) syscall (SYS_gettid);
#endif
  g_mutex_lock (&w->lock);
  w->starting--;
  g_ptr_array_add (w->running, r);
  for (;;)
    {
      Batch *b;
      guint n;

      if (r->batch != NULL)
        {
          /* Back from a chunk. */
          w->busy--;
          if (r->chunked)
            w->chunked--;
          r->chunked = FALSE;
          r->batch = NULL;
        }
      if (done > 0)
        {
          gint64 per_task = MAX (elapsed / done, 1);

          w->cost_ns = w->cost_ns <= 0 ? per_task : (3 * w->cost_ns + per_task) / 4;
          w->measured += done;
          w->last_progress = g_get_monotonic_time ();
        }
      if (w->queued == 0 && !w->stopping)
        {
          gint64 until = g_get_monotonic_time () + LINGER_US;

          w->waiting++;
          while (w->queued == 0 && !w->stopping &&
                 g_cond_wait_until (&w->work_cond, &w->lock, until))
            ;
          w->waiting--;
        }
      if (w->queued == 0 || w->stopping)
        break;

      n = take_chunk_locked (w, r, chunk_size_locked (w));
      b = r->batch;
      w->busy++;
      /* The ticker may take some of a chunk back: it must tick. */
      r->chunked = n > 1;
      if (r->chunked && w->chunked++ == 0)
        g_cond_signal (&w->tick_cond);
      g_mutex_unlock (&w->lock);

      done = run_chunk (w, r, n, &elapsed);
      batch_unref (b);

      g_mutex_lock (&w->lock);
    }
  g_ptr_array_remove_fast (w->running, r);
  w->runners--;
  g_mutex_unlock (&w->lock);
  g_mutex_clear (&r->out_lock);
  g_free (r->storage);
}

/* A thread cannot be stopped: a task past its time fails, and the
 * worker exits so that the parent replaces it. The error frame goes out
 * before the end of the stream, so the parent knows why this worker died
 * and does not hold the death against the other tasks it had. */
static void
check_timeouts_locked (Worker *w,
                       gint64  now)
{
  gboolean expired = FALSE;

  for (guint i = 0; i < w->running->len; i++)
    {
      Running *r = g_ptr_array_index (w->running, i);
      g_autoptr(GError) error = NULL;

      if (r->started == 0 || now - r->started < w->timeout_us)
        continue;
      error = g_error_new (FM_ERROR, FM_ERROR_TIMED_OUT,
                           "Task %" G_GUINT64_FORMAT " ran longer than %" G_GINT64_FORMAT " ms",
                           r->index, w->timeout_us / 1000);
      g_mutex_lock (&w->write_lock);
      if (!expired)
        {
          /* What is done goes out first: the parent need not run it
           * again. (What the writer holds is lost: it runs again.) The
           * worker exits below, references and all; its tasks are not
           * tiny. */
          g_mutex_lock (&w->out_lock);
          write_out_locked (w, &g_array_index (w->out, Out, 0), w->out->len, credit_locked (w), 0);
          g_array_set_size (w->out, 0);
          g_mutex_unlock (&w->out_lock);
        }
      fm_wire_write_error (w->out_fd, r->index, error, NULL, NULL);
      g_mutex_unlock (&w->write_lock);
      expired = TRUE;
    }
  if (expired)
    _exit (3);
}

static gint64
tick_interval (Worker *w)
{
  if (w->timeout_us == 0)
    return STALL_US;
  return CLAMP (w->timeout_us / 8, STALL_US, 50 * 1000);
}

static CpuSample
sample_cpu (Worker *w,
            gint64  now)
{
  CpuSample sample = { now, 0, w->starting_us };
  struct rusage ru;

  if (getrusage (RUSAGE_SELF, &ru) == 0)
    {
      sample.cpu_us = (gint64) (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * G_USEC_PER_SEC +
                      ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
    }
  return sample;
}

/* What a runner that makes no progress is doing, as far as more runners
 * are concerned. */
typedef enum
{
  RUNNER_RUNS,      /* on a CPU or waiting for one: more would add load */
  RUNNER_ON_FUTEX,  /* asleep on a futex word: a lock, or an event */
  RUNNER_BLOCKS,    /* asleep in any other wait (sleep, poll, I/O) */
} RunnerState;

static gssize
read_task_file (gint        tid,
                const char *name,
                char       *buf,
                gsize       size)
{
  char path[64];
  ssize_t len;
  int fd;

  g_snprintf (path, sizeof path, "/proc/self/task/%d/%s", tid, name);
  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  len = read (fd, buf, size - 1);
  close (fd);
  if (len < 0)
    return -1;
  buf[len] = '\0';
  return len;
}

static gboolean
is_futex_syscall (gint64 nr)
{
  /* Those this system has, then -1, which no system call is. */
  static const long futex_calls[] = {
#ifdef SYS_futex
    SYS_futex,
#endif
#ifdef SYS_futex_time64
    SYS_futex_time64,
#endif
#ifdef SYS_futex_waitv
    SYS_futex_waitv,
#endif
#ifdef SYS_futex_wait
    SYS_futex_wait,
#endif
    -1,
  };

  for (guint i = 0; futex_calls[i] != -1; i++)
    if (nr == futex_calls[i])
      return TRUE;
  return FALSE;
}

/* Whether @r's thread runs or sleeps, and on which futex word (in
 * @word) if it sleeps on one. A runner that makes no progress is either
 * blocked, and other threads can help, or running a long task or
 * descheduled on a busy machine, and more threads only add to the load.
 * /proc/self/task/TID/syscall names the system call a sleeping thread is
 * in and its arguments ("running" when it is not asleep); without it, the
 * state in .../stat tells asleep from running. Unknown counts as
 * blocked. Reading costs a few microseconds: the ticker asks only about
 * runners that made no progress, eight at most. */
static RunnerState
runner_state (const Running *r,
              guint64       *word)
{
  char buf[512];
  const char *state;

  if (r->tid == 0)
    return RUNNER_BLOCKS;
  if (read_task_file (r->tid, "syscall", buf, sizeof buf) > 0)
    {
      char *end;
      gint64 nr;

      if (g_str_has_prefix (buf, "running"))
        return RUNNER_RUNS;
      /* "nr arg0 ... sp pc"; "-1 sp pc" is asleep outside a system
       * call (a page fault). */
      nr = g_ascii_strtoll (buf, &end, 10);
      if (!is_futex_syscall (nr))
        return RUNNER_BLOCKS;
      *word = g_ascii_strtoull (end, NULL, 16);
      return RUNNER_ON_FUTEX;
    }
  if (read_task_file (r->tid, "stat", buf, sizeof buf) <= 0)
    return RUNNER_BLOCKS;
  /* "tid (comm) state ...": comm may hold spaces and parentheses. */
  state = strrchr (buf, ')');
  if (state == NULL || state[1] != ' ')
    return RUNNER_BLOCKS;
  return state[2] == 'S' || state[2] == 'D' ? RUNNER_BLOCKS : RUNNER_RUNS;
}

/* Whether @word, a futex word runner @r sleeps on, is one of the locks a
 * runner takes: w->lock (between chunks), w->out_lock (results for the
 * writer) or its own out_lock (which the ticker takes to send a stuck
 * chunk's results). The caller of runners_block_locked() holds w->lock,
 * which a runner between two tasks may be waiting for, and on a loaded
 * machine a lone runner caught there looked blocked, and the runners of
 * tasks of 50 µs doubled at pauses of the consumer (to tens or hundreds
 * of threads, in tests run beside the whole suite). GLib's mutex on
 * Linux sleeps on the word at its own address. */
static gboolean
waits_for_the_worker (Worker        *w,
                      const Running *r,
                      guint64        word)
{
  return word == (guint64) (guintptr) &w->lock ||
         word == (guint64) (guintptr) &w->out_lock ||
         word == (guint64) (guintptr) &r->out_lock;
}

/* Whether the runners inside a chunk all block in waits that more runners
 * would overlap, judging by the first few; TRUE when none is inside a
 * chunk (nothing says otherwise).
 *
 * Two runners asleep on the same futex word wait for each other: for a
 * lock they share, such as Python's GIL (its waiters sleep on two or
 * three words), and more runners would only wait with them. CI once saw a
 * Python worker whose items computed double to 488 threads: on a loaded
 * machine it hardly used the CPU and all its runners slept. A runner
 * asleep on a word of its own waits for an event of its own (a
 * GThreadedResolver lookup, a Python queue or future: each waiter has its
 * lock), as a runner in a sleep, a poll or a read waits for the world:
 * more runners overlap those waits. A runner asleep on one of the
 * worker's own locks waits for the worker's threads, as one that runs
 * does (waits_for_the_worker()). */
static gboolean
runners_block_locked (Worker *w)
{
  guint64 words[PROBE_RUNNERS];
  guint looked = 0, n_words = 0;

  for (guint i = 0; i < w->running->len && looked < PROBE_RUNNERS; i++)
    {
      Running *r = g_ptr_array_index (w->running, i);
      RunnerState state;
      guint64 word = 0;

      if (r->batch == NULL)
        continue;
      looked++;
      state = runner_state (r, &word);
      if (state == RUNNER_RUNS)
        return FALSE;
      if (state != RUNNER_ON_FUTEX)
        continue;
      if (waits_for_the_worker (w, r, word))
        return FALSE;
      for (guint j = 0; j < n_words; j++)
        if (words[j] == word)
          return FALSE;
      words[n_words++] = word;
    }
  return TRUE;
}

/* Notes which runners started a task or a chunk since the last look, at
 * @now; returns whether any did. Reading their claims costs no system
 * call, and a runner running tiny tasks moves between any two looks. */
static gboolean
look_at_runners_locked (Worker *w,
                        gint64  now)
{
  gboolean moved = FALSE;

  for (guint i = 0; i < w->running->len; i++)
    {
      Running *r = g_ptr_array_index (w->running, i);
      gint claim = g_atomic_int_get (&r->claim);

      if (r->batch != r->seen_batch || r->start != r->seen_start || claim != r->seen_claim)
        {
          moved = moved || r->batch != NULL;
          r->seen_batch = r->batch;
          r->seen_start = r->start;
          r->seen_claim = claim;
          r->seen_at = now;
        }
    }
  return moved;
}

/* Gives the tasks not yet started of chunks whose runner has been inside
 * one task for STUCK_US, sleeping in the kernel, back to the head of the
 * queue; returns how many tasks, and in @n_stuck from how many runners.
 * look_at_runners_locked() keeps the time each runner last moved. */
static guint
steal_stuck_locked (Worker *w,
                    gint64  now,
                    guint  *n_stuck)
{
  guint stolen = 0;

  *n_stuck = 0;
  for (guint i = 0; i < w->running->len; i++)
    {
      Running *r = g_ptr_array_index (w->running, i);
      gint claim = g_atomic_int_get (&r->claim);
      guint next = CLAIM_NEXT (claim), end = CLAIM_END (claim);
      guint64 word;

      /* A runner changes its batch and start only under w->lock, which
       * the ticker has held since it looked; its claim, at any time. */
      if (!r->chunked || claim != r->seen_claim || r->batch == NULL || next == 0 ||
          now - r->seen_at < STUCK_US || runner_state (r, &word) == RUNNER_RUNS)
        continue;
      /* Stuck in the chunk's last task, there is nothing to take back,
       * but the results before it must not wait for it either (a tiny
       * task's result in CI came 3 s late, under valgrind). */
      if (next < end)
        {
          if (!g_atomic_int_compare_and_exchange (&r->claim, claim, CLAIM (next, next)))
            continue;
          g_atomic_ref_count_inc (&r->batch->refs);
          queue_slice_locked (w, r->batch, r->start + next, r->start + end, TRUE);
          stolen += end - next;
          (*n_stuck)++;
        }
      g_mutex_lock (&r->out_lock);
      send_results_locked (w, r, 0, 0);
      g_mutex_unlock (&r->out_lock);
      r->seen_claim = CLAIM (next, next);
      /* Nothing left to take back: the ticker may sleep. */
      r->chunked = FALSE;
      w->chunked--;
    }
  return stolen;
}

/* Whether the process used half a core or more over the last
 * COMPUTE_WINDOW_US to twice that (FALSE for the first window). Runners
 * that compute use the CPU; runners that block do not. This guards what
 * the runners the ticker samples cannot tell: that others compute. (The
 * ticker once judged over 1 ms, then also by how often the system took
 * the CPU from the process; both were to keep Python workers, whose
 * runners wait for the GIL, from looking blocked. runners_block_locked()
 * now tells that by the futex they wait on, and the rules only made a
 * worker that started runners look like it computed.) The process's CPU
 * time sums all its threads: the kernel takes longer the more there are,
 * so it is read at most once per STALL_US. */
static gboolean
computing_locked (Worker *w,
                  gint64  now)
{
  if (now - w->cpu_read_at >= STALL_US)
    {
      CpuSample cpu = sample_cpu (w, now);

      if (now - w->cpu_mid.at >= COMPUTE_WINDOW_US)
        {
          w->cpu_base = w->cpu_mid;
          w->cpu_mid = cpu;
        }
      if (now - w->cpu_base.at >= COMPUTE_WINDOW_US)
        {
          gint64 window = now - w->cpu_base.at;
          /* Starting threads is no computing: GLib makes them in a thread
           * of its own while the ticker waits. Counted, it made a doubling
           * of 128 runners that sleep look like computing, and the next
           * one wait 20 ms for the window to pass (2048 sleeps started
           * over 150 ms). */
          gint64 used = MAX (0, (cpu.cpu_us - w->cpu_base.cpu_us) -
                                (cpu.starting_us - w->cpu_base.starting_us));

          w->computing = 2 * used >= window;
        }
      w->cpu_read_at = now;
    }
  return w->computing;
}

static gpointer
ticker (gpointer data)
{
  Worker *w = data;

  g_mutex_lock (&w->lock);
  while (!w->stopping)
    {
      gint64 now = g_get_monotonic_time ();
      gboolean can_grow = w->threads_limit == 0 || w->runners < w->threads_limit;
      guint stolen, stuck = 0;

      if (w->timeout_us > 0)
        check_timeouts_locked (w, now);
      if (w->to_push > 0)
        {
          /* A few at a time, so that the looks below go on meanwhile. */
          push_runners_locked (w, 64);
          w->pushed_at = now = g_get_monotonic_time ();
          /* It let the lock go: the worker may be ending, and the signal
           * that says so is gone. */
          if (w->stopping)
            break;
        }
      /* Nothing to start, to grow, to time out, or to take back from a
       * chunk. */
      if (w->to_push == 0 && (w->queued == 0 || !can_grow) &&
          (w->timeout_us == 0 || w->busy == 0) && w->chunked == 0)
        {
          if (!w->stopping)
            g_cond_wait (&w->tick_cond, &w->lock);
          continue;
        }
      if ((w->chunked > 0 || (w->queued > 0 && can_grow)) && look_at_runners_locked (w, now))
        w->moved_at = now;
      stolen = w->chunked > 0 ? steal_stuck_locked (w, now, &stuck) : 0;
      if (stolen > 0)
        {
          /* The chunks were too large for these tasks: from now on, one
           * at a time until they measure faster. A new runner takes the
           * place of each stuck one; if the tasks it takes back block
           * too, the runners sleep and the ticker doubles them below. A
           * runner per task taken back started thousands of threads for
           * the tiny tasks behind one that blocked, when a loaded machine
           * gave the process less than half a core. */
          g_debug ("Worker %d: %u tasks taken back from %u chunks stuck in a task",
                   (int) getpid (), stolen, stuck);
          w->cost_ns = MAX (w->cost_ns, CHUNK_TARGET_NS);
          for (guint i = 0; i < MIN (stolen, w->waiting); i++)
            g_cond_signal (&w->work_cond);
          spawn_runners_locked (w, chunks_locked (w), (guint64) w->runners + stuck);
        }
      if (w->queued > 0 && can_grow && now - MAX (w->last_progress, w->moved_at) >= STALL_US &&
          !computing_locked (w, now))
        {
          if (w->starting > 0)
            {
              /* Runners are on their way: growing now would count them
               * as runners that block. If none came for a while, the
               * system refused their threads (the jobs wait in the pool
               * for a free one) or is slow to start them: ask for one
               * more. */
              if (w->to_push == 0 && now - w->pushed_at >= STUCK_US)
                {
                  w->pushed_at = now;
                  add_runners_locked (w, 1);
                }
            }
          else if (w->waiting == 0 && runners_block_locked (w))
            {
              /* No runner started or finished a task for a while, tasks
               * wait, the process hardly used the CPU, no runner is idle
               * (an idle one was told of the tasks and takes them once
               * the system runs it: on a loaded machine that took more
               * than a millisecond, and a worker of tiny tasks whose
               * runners all lingered doubled them at each pause of its
               * consumer, to tens or hundreds of threads), and the
               * runners sleep in the kernel rather than wait for a CPU
               * or for each other: they block (runners never wait for
               * the parent to read: the writer thread does, alone). Double
               * them, up to a runner per chunk: waits overlap within a
               * few ticks, and a wrong guess costs a few threads, not one
               * per task. */
              g_debug ("Worker %d: %u runners, none moved for %" G_GINT64_FORMAT " ms, %"
                       G_GUINT64_FORMAT " tasks queued, the runners asleep in the kernel: "
                       "up to %u", (int) getpid (), w->runners,
                       (now - MAX (w->last_progress, w->moved_at)) / 1000,
                       (guint64) w->queued, 2 * MAX (w->runners, 1));
              w->last_progress = now;
              spawn_runners_locked (w, chunks_locked (w), 2 * MAX (w->runners, 1));
            }
        }
      if (w->to_push == 0 && !w->stopping)
        g_cond_wait_until (&w->tick_cond, &w->lock, now + tick_interval (w));
    }
  g_mutex_unlock (&w->lock);
  return NULL;
}

static void
queue_batch (Worker      *w,
             FmWireBatch *wb)
{
  Batch *b = g_new (Batch, 1);
  guint64 chunks, max_total;

  g_atomic_ref_count_init (&b->refs);
  b->values = g_steal_pointer (&wb->values);
  b->elem_type = g_variant_type_element (g_variant_get_type (b->values));
  b->elem_size = fm_wire_number_size (g_variant_type_peek_string (b->elem_type));
  /* The batch's count is its number of children (fm_wire_parse_batch()). */
  b->numbers = b->elem_size > 0 && g_variant_get_size (b->values) == wb->count * b->elem_size
    ? g_variant_get_data_as_bytes (b->values) : NULL;
  b->n = wb->count;
  b->indexes = g_new (guint64, wb->count);
  for (guint i = 0; i < wb->count; i++)
    b->indexes[i] = fm_wire_batch_index (wb, i);

  g_mutex_lock (&w->lock);
  /* Runners that had nothing to do made no progress, and were not stuck:
   * the time without progress counts from now. (It once counted the time
   * the runners lingered, idle, while the parent had nothing to send: the
   * next batch found them "stalled" for 20 ms and doubled them, and under
   * AddressSanitizer a worker of tiny tasks grew to 259 threads.) */
  if (w->queued == 0 && w->busy == 0)
    w->last_progress = g_get_monotonic_time ();
  queue_slice_locked (w, b, 0, b->n, FALSE);
  chunks = chunks_locked (w);
  if (w->measured < PROBE_RUNNERS)
    chunks = MIN (chunks, PROBE_RUNNERS);
  for (guint64 i = 0; i < MIN (chunks, w->waiting); i++)
    g_cond_signal (&w->work_cond);
  /* Until a few tasks are measured, PROBE_RUNNERS runners in all. Then
   * tasks that take more than a chunk's time get a runner each, up to
   * twice the runners there are, unless the process computes, or no
   * runner is at work (idle runners are not blocked ones: they take the
   * tasks, and the ticker sees whether they then block), or the runners
   * at work do not all block (they run, or wait for a lock such as
   * Python's GIL): they may wait, and the sooner they all wait the
   * better. Tiny ones, in chunks,
   * gain nothing from more runners than cores. Either way, if the runners
   * block, the ticker adds more. */
  if (w->measured < PROBE_RUNNERS)
    max_total = PROBE_RUNNERS;
  else if (chunk_size_locked (w) > 1 || w->busy == 0 ||
           computing_locked (w, g_get_monotonic_time ()) || !runners_block_locked (w))
    max_total = w->n_cpus;
  else
    max_total = 2 * (guint64) MAX (w->runners, PROBE_RUNNERS);
  spawn_runners_locked (w, chunks, max_total);
  g_cond_signal (&w->tick_cond);
  g_mutex_unlock (&w->lock);
}

/* Moves the protocol off fds 0 and 1: stdin reads /dev/null and stdout
 * goes to stderr, so a function that prints cannot corrupt the stream. */
static gboolean
take_stdio (Worker  *w,
            GError **error)
{
  int null_fd;

  w->in_fd = fcntl (0, F_DUPFD_CLOEXEC, 3);
  w->out_fd = fcntl (1, F_DUPFD_CLOEXEC, 3);
  null_fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
  if (w->in_fd < 0 || w->out_fd < 0 || null_fd < 0)
    {
      int errsv = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errsv),
                   "Could not take over the worker's stdin and stdout: %s",
                   g_strerror (errsv));
      return FALSE;
    }
  fflush (stdout);
  dup2 (null_fd, 0);
  dup2 (2, 1);
  close (null_fd);
  return TRUE;
}

/* Returns 1 when configured, 0 if the parent went away first (it
 * needed no worker after all), -1 with @error. */
static int
handshake (Worker  *w,
           GError **error)
{
  g_autoptr(GBytes) payload = NULL;
  g_autoptr(GError) local_error = NULL;
  FmWireConfig config;
  guint8 kind;
  int r;

  r = fm_wire_read_frame (w->in_fd, &kind, &payload, error);
  if (r <= 0)
    return r;
  if (kind != FM_FRAME_CONFIG)
    {
      g_set_error_literal (error, FM_ERROR, FM_ERROR_PROTOCOL,
                           "The first frame from the parent is not a configuration");
      return -1;
    }
  if (!fm_wire_parse_config (payload, &config, error))
    return -1;

  w->threads_limit = config.threads;
  w->timeout_us = (gint64) config.timeout_ms * 1000;
  w->swap = config.byte_order != G_BYTE_ORDER;
  if (fm_wire_write_hello (w->out_fd, &local_error))
    return 1;
  if (g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_BROKEN_PIPE) ||
      g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED))
    return 0;
  g_propagate_error (error, g_steal_pointer (&local_error));
  return -1;
}

static gboolean
serve_frames (Worker  *w,
              GError **error)
{
  for (;;)
    {
      g_autoptr(GBytes) payload = NULL;
      FmWireBatch batch = { 0 };
      guint8 kind;
      int r = fm_wire_read_frame (w->in_fd, &kind, &payload, error);

      if (r <= 0)
        return r == 0;
      if (kind != FM_FRAME_TASKS)
        {
          g_set_error (error, FM_ERROR, FM_ERROR_PROTOCOL,
                       "Unexpected frame of kind %u from the parent", kind);
          return FALSE;
        }
      if (!fm_wire_parse_batch (payload, w->swap, &batch, error))
        return FALSE;
      queue_batch (w, &batch);
      fm_wire_batch_clear (&batch);
    }
}

/* The worker of fm_worker_serve(), left to the exit of the process:
 * reachable from here, so that a leak checker at exit (LeakSanitizer in
 * the workers of the AddressSanitizer pass) does not report it and abort
 * the worker. volatile: a static only written to is optimised away. */
static Worker *volatile serving;

/**
 * fm_worker_serve:
 * @func: (scope call): the function to serve
 * @user_data: (closure func): data passed to @func
 * @error: return location for a #GError
 *
 * Serves @func as a fastmap worker: reads tasks from the process's
 * standard input, runs @func on them in a #GThreadPool, and writes the
 * results to the process's standard output, until the parent closes the
 * stream. This is what a worker program started with fm_mapper_new()
 * calls; the worker programs that fm_mapper_new_for_module() and
 * fm_mapper_new_for_function() start call it for you.
 *
 * At its start, fm_worker_serve() moves the protocol off file
 * descriptors 0 and 1: standard input then reads `/dev/null` and
 * standard output goes to standard error, so whatever @func prints
 * cannot corrupt the stream. It also ignores `SIGPIPE`.
 *
 * @func is called on the threads of the pool, several at once, never in
 * the thread that called fm_worker_serve(). How many threads run at once
 * is set by the parent's #FmMapper:threads-limit.
 *
 * When the parent closes the stream, fm_worker_serve() returns %TRUE at
 * once, without waiting for tasks still running (nobody wants their
 * results any more): the program should then exit.
 *
 * Returns: %TRUE when the parent closed the stream, %FALSE with @error
 *   set if the stream could not be used or broke the protocol
 */
gboolean
fm_worker_serve (FmFunction   func,
                 gpointer     user_data,
                 GError     **error)
{
  Worker *w;
  GThread *tick;
  gboolean ok;

  g_return_val_if_fail (func != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  signal (SIGPIPE, SIG_IGN);

  w = serving = g_new0 (Worker, 1);
  w->func = func;
  w->user_data = user_data;
  g_mutex_init (&w->lock);
  g_mutex_init (&w->write_lock);
  g_mutex_init (&w->out_lock);
  g_cond_init (&w->out_cond);
  w->out = g_array_new (FALSE, FALSE, sizeof (Out));
  g_cond_init (&w->tick_cond);
  g_cond_init (&w->work_cond);
  g_queue_init (&w->slices);
  w->running = g_ptr_array_new ();
  w->n_cpus = MAX (g_get_num_processors (), 1);

  /* Nothing runs yet if these fail; the few bytes of w are left to exit. */
  if (!take_stdio (w, error))
    return FALSE;
  switch (handshake (w, error))
    {
    case 0:
      return TRUE;
    case -1:
      return FALSE;
    default:
      break;
    }

  w->cpu_base = w->cpu_mid = sample_cpu (w, g_get_monotonic_time ());
  w->pool = g_thread_pool_new (runner, NULL, -1, FALSE, NULL);
  /* Left to the exit of the process, as the runners are. */
  g_thread_unref (g_thread_new ("fm-writer", writer, w));
  tick = g_thread_new ("fm-ticker", ticker, w);
  ok = serve_frames (w, error);

  /* Runners may still be inside @func: leave them, and w, to the exit
   * of the process; stop the ticker and tell runners to stop. */
  g_mutex_lock (&w->lock);
  w->stopping = TRUE;
  g_cond_signal (&w->tick_cond);
  g_cond_broadcast (&w->work_cond);
  g_mutex_unlock (&w->lock);
  g_thread_join (tick);
  close (w->in_fd);
  return ok;
}

/* ---- serving bytes ---------------------------------------------------- */

typedef struct
{
  FmBytesFunction func;
  gpointer        user_data;
} BytesServer;

/* The FmFunction of fm_worker_serve_bytes(): `ay` in, `ay` out, and the
 * result's bytes taken as they are (g_byte_array_free_to_bytes()). */
static GVariant *
bytes_call (GVariant  *task,
            gpointer   data,
            GError   **error)
{
  BytesServer *server = data;
  g_autoptr(GBytes) out = NULL;
  const guint8 *bytes;
  gsize n;
  GByteArray *result;

  if (!g_variant_is_of_type (task, G_VARIANT_TYPE_BYTESTRING))
    {
      g_set_error (error, FM_ERROR, FM_ERROR_INVALID_ARGUMENT,
                   "A task for a function of bytes is of type “%s”, not “ay”",
                   g_variant_get_type_string (task));
      return NULL;
    }
  bytes = g_variant_get_fixed_array (task, &n, 1);
  result = server->func (bytes, n, server->user_data, error);
  if (result == NULL)
    return NULL;
  out = g_byte_array_free_to_bytes (result);
  return g_variant_new_from_bytes (G_VARIANT_TYPE_BYTESTRING, out, TRUE);
}

/**
 * fm_worker_serve_bytes:
 * @func: (scope call): the function to serve
 * @user_data: (closure func): data passed to @func
 * @error: return location for a #GError
 *
 * Serves @func as fm_worker_serve() serves an #FmFunction, for tasks of
 * type `ay`: @func gets the bytes of each task and returns those of its
 * result, of type `ay` too. A task of another type fails with
 * %FM_ERROR_INVALID_ARGUMENT, and the run goes on.
 *
 * This is for language bindings that send their own values as bytes:
 * Python's `FastMap.fast_map()` serves its pickled chunks of items so,
 * with no call into GLib in the function to read a task or make a result
 * (see #FmBytesFunction for why that matters).
 *
 * As with fm_worker_serve(): @func runs on the threads of the pool,
 * several at once, never in the thread that called this; standard input
 * and output are moved off the protocol at the start; and when the parent
 * closes the stream this returns at once, while threads may still be in
 * the function: so @func and @user_data must stay valid until the process
 * exits, which it should do then.
 *
 * Returns: %TRUE when the parent closed the stream, %FALSE with @error
 *   set if the stream could not be used or broke the protocol
 */
gboolean
fm_worker_serve_bytes (FmBytesFunction   func,
                       gpointer          user_data,
                       GError          **error)
{
  BytesServer *server;

  g_return_val_if_fail (func != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  /* Left to the exit of the process, as the Worker is: a runner may
   * still call @func once the stream has closed. */
  server = g_new (BytesServer, 1);
  server->func = func;
  server->user_data = user_data;
  return fm_worker_serve (bytes_call, server, error);
}

/* ---- serving in a main context ---------------------------------------
 *
 * Some languages can only run their functions in their main thread: gjs
 * refuses a call from any other thread. fm_worker_serve_async() serves
 * from a thread of its own, as fm_worker_serve() does, and each runner
 * hands its call to the caller's main context and waits for it there.
 *
 * Like the Worker of fm_worker_serve(), the MainServer is left to the
 * exit of the process: a runner may still reach main_call_marshal() after
 * the stream closed. user_data is freed, in the main context, once the
 * stream closed and no call is in flight. */

typedef struct
{
  FmFunction      func;
  gpointer        user_data;
  GDestroyNotify  destroy;
  GMainContext   *context;    /* owned: where func and destroy run */
  GMutex          lock;       /* guards the fields below */
  GCond           cond;       /* signalled when a call is done */
  guint           in_flight;  /* calls handed to the context */
  gboolean        closed;     /* the stream ended: no new call starts */
} MainServer;

typedef struct
{
  MainServer *server;
  GVariant   *task;           /* borrowed from the runner */
  GVariant   *result;         /* owned once done */
  GError     *error;
  gboolean    done;           /* guarded by server->lock */
} MainCall;

static gboolean
main_server_destroy_user_data (gpointer data)
{
  MainServer *server = data;

  if (server->destroy != NULL)
    server->destroy (server->user_data);
  server->destroy = NULL;
  return G_SOURCE_REMOVE;
}

static void
main_server_release_locked (MainServer *server)
{
  if (server->closed && server->in_flight == 0 && server->destroy != NULL)
    _fm_post (server->context, main_server_destroy_user_data, server);
}

static gboolean
main_call_run (gpointer data)
{
  MainCall *call = data;
  MainServer *server = call->server;
  GVariant *result = server->func (call->task, server->user_data, &call->error);

  g_mutex_lock (&server->lock);
  call->result = result != NULL ? g_variant_take_ref (result) : NULL;
  call->done = TRUE;
  g_cond_broadcast (&server->cond);
  g_mutex_unlock (&server->lock);
  return G_SOURCE_REMOVE;
}

/* The FmFunction the pool runs: waits for the call in the main context. */
static GVariant *
main_call_marshal (GVariant  *task,
                   gpointer   data,
                   GError   **error)
{
  MainServer *server = data;
  MainCall call = { server, task, NULL, NULL, FALSE };

  g_mutex_lock (&server->lock);
  if (server->closed)
    {
      g_mutex_unlock (&server->lock);
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_CLOSED, "The worker stopped serving");
      return NULL;
    }
  server->in_flight++;
  g_mutex_unlock (&server->lock);

  _fm_post (server->context, main_call_run, &call);

  g_mutex_lock (&server->lock);
  while (!call.done)
    g_cond_wait (&server->cond, &server->lock);
  server->in_flight--;
  main_server_release_locked (server);
  g_mutex_unlock (&server->lock);

  if (call.error != NULL)
    g_propagate_error (error, call.error);
  return call.result;
}

static void
serve_in_thread (GTask        *task,
                 gpointer      source_object,
                 gpointer      task_data,
                 GCancellable *cancellable)
{
  MainServer *server = task_data;
  GError *error = NULL;
  gboolean ok = fm_worker_serve (main_call_marshal, server, &error);

  g_mutex_lock (&server->lock);
  server->closed = TRUE;
  main_server_release_locked (server);
  g_mutex_unlock (&server->lock);

  if (ok)
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, error);
}

/**
 * fm_worker_serve_async:
 * @func: (scope notified) (closure user_data) (destroy destroy): the function to serve
 * @user_data: data passed to @func
 * @destroy: (nullable): frees @user_data, in the same main context as
 *   @func, once serving ended and no call of @func is running
 * @cancellable: (nullable): a #GCancellable to stop waiting, or %NULL
 * @callback: (scope async): called when serving ends
 * @callback_data: (closure callback): data for @callback
 *
 * Serves @func as a fastmap worker, as fm_worker_serve() does, without
 * blocking, for languages whose functions can only run in their main
 * thread, such as JavaScript in gjs. The protocol is served from a thread
 * of its own; @func is called in the thread-default main context of the
 * caller of this function, one task at a time, while that context runs.
 *
 * @callback is called in that same main context when the parent closes
 * the stream (the program should then exit), or when @cancellable is
 * cancelled; it calls fm_worker_serve_finish().
 */
void
fm_worker_serve_async (FmFunction           func,
                       gpointer             user_data,
                       GDestroyNotify       destroy,
                       GCancellable        *cancellable,
                       GAsyncReadyCallback  callback,
                       gpointer             callback_data)
{
  g_autoptr(GTask) task = NULL;
  MainServer *server;

  g_return_if_fail (func != NULL);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  server = g_new0 (MainServer, 1);
  server->func = func;
  server->user_data = user_data;
  server->destroy = destroy;
  server->context = g_main_context_ref_thread_default ();
  g_mutex_init (&server->lock);
  g_cond_init (&server->cond);

  task = g_task_new (NULL, cancellable, callback, callback_data);
  g_task_set_source_tag (task, fm_worker_serve_async);
  g_task_set_task_data (task, server, NULL);
  g_task_set_return_on_cancel (task, TRUE);
  g_task_run_in_thread (task, serve_in_thread);
}

/**
 * fm_worker_serve_finish:
 * @result: the #GAsyncResult given to the callback
 * @error: return location for a #GError
 *
 * Finishes fm_worker_serve_async().
 *
 * Returns: %TRUE when the parent closed the stream, %FALSE with @error
 *   set if the stream could not be used, broke the protocol, or the
 *   wait was cancelled (%G_IO_ERROR_CANCELLED)
 */
gboolean
fm_worker_serve_finish (GAsyncResult  *result,
                        GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == fm_worker_serve_async, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}
