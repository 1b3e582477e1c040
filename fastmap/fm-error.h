/* fm-error.h: the fastmap error domain
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#if !defined(FASTMAP_INSIDE) && !defined(FASTMAP_COMPILATION)
# error "Only <fastmap.h> can be included directly."
#endif

#include <glib.h>

#include "fm-version-macros.h"

G_BEGIN_DECLS

/**
 * FM_ERROR:
 *
 * The error domain of fastmap's own failures. Errors raised by the
 * mapped function keep their own domain and code.
 */
#define FM_ERROR (fm_error_quark ())

/**
 * FmError:
 * @FM_ERROR_FAILED: a failure that fits no other code.
 * @FM_ERROR_INVALID_ARGUMENT: the caller passed something fastmap cannot use,
 *   for example a task with no value or a function that returned %NULL
 *   without setting an error.
 * @FM_ERROR_WORKER_FAILED: a worker process could not be started, or
 *   exited before it said hello.
 * @FM_ERROR_WORKER_DIED: a worker died while it held the task, too many times.
 * @FM_ERROR_PROTOCOL: a peer sent a frame that breaks the wire protocol.
 * @FM_ERROR_TIMED_OUT: a task ran longer than allowed.
 *
 * Error codes in the %FM_ERROR domain.
 */
typedef enum
{
  FM_ERROR_FAILED,
  FM_ERROR_INVALID_ARGUMENT,
  FM_ERROR_WORKER_FAILED,
  FM_ERROR_WORKER_DIED,
  FM_ERROR_PROTOCOL,
  FM_ERROR_TIMED_OUT,
} FmError;

FM_AVAILABLE_IN_ALL
GQuark fm_error_quark (void);

G_END_DECLS
