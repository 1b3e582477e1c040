/* fastmap.h: the single header of libfastmap-1.0
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#define FASTMAP_INSIDE

#include "fm-version-macros.h"
#include "fm-error.h"
#include "fm-enum-types.h"
#include "fm-function.h"
#include "fm-map.h"
#include "fm-mapper.h"
#include "fm-worker.h"

#undef FASTMAP_INSIDE
