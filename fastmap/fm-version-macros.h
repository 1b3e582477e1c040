/* fm-version-macros.h: export and availability macros
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#if !defined(FASTMAP_INSIDE) && !defined(FASTMAP_COMPILATION)
# error "Only <fastmap.h> can be included directly."
#endif

#include <glib.h>

#ifndef _FM_EXTERN
# define _FM_EXTERN __attribute__((visibility ("default"))) extern
#endif

/**
 * FM_AVAILABLE_IN_ALL:
 *
 * Marks a symbol that has been part of libfastmap-1.0 since its first
 * release. It exports the symbol from the shared library.
 */
#define FM_AVAILABLE_IN_ALL _FM_EXTERN
