/* fm-error.c: the fastmap error domain
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include "fm-error.h"

/**
 * fm_error_quark:
 *
 * The quark of the %FM_ERROR domain.
 *
 * Returns: the error domain of fastmap's own failures
 */
G_DEFINE_QUARK (fm-error-quark, fm_error)
