/* fm-reexec.c: a program that re-executes itself as its own worker
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fm-error.h"
#include "fm-private.h"
#include "fm-worker.h"

/* How the re-executed copy finds the function.
 *
 * Addresses differ between the two processes (ASLR), so the parent sends
 * the function's offset from the load bias of the object that holds it,
 * the object's path and its GNU build-id. The copy finds the same object
 * among its own, checks the build-id, and adds its own load bias.
 *
 * The load bias is dl_iterate_phdr()'s dlpi_addr on both sides, never
 * dladdr()'s dli_fbase: for a non-PIE executable the base of the mapping
 * is not the bias (which is 0), and an offset taken against it sends the
 * copy to the wrong address. The function must also fall inside an
 * executable PT_LOAD segment of that object, which the copy checks before
 * it calls anything. */

typedef struct
{
  guintptr   address;    /* in (parent): the function */
  const char *path;      /* in (copy): the object, "" for the executable */
  guint      seen;       /* objects visited so far */
  gboolean   found;
  guintptr   bias;       /* out: dlpi_addr */
  guintptr   offset;     /* out (parent): address - bias */
  gboolean   executable; /* in (copy): does offset fall in a PF_X segment */
  guintptr   check_offset;
  char      *name;       /* out: the object's path, "" for the executable */
  char      *build_id;   /* out: hex, "" when it has none */
} Lookup;

static char *
read_build_id (struct dl_phdr_info *info)
{
  for (int i = 0; i < info->dlpi_phnum; i++)
    {
      const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
      const guint8 *p, *end;

      if (ph->p_type != PT_NOTE)
        continue;
      p = (const guint8 *) (info->dlpi_addr + ph->p_vaddr);
      end = p + ph->p_memsz;
      while (p + sizeof (ElfW(Nhdr)) <= end)
        {
          const ElfW(Nhdr) *note = (const ElfW(Nhdr) *) p;
          const guint8 *name = p + sizeof *note;
          const guint8 *desc = name + ((note->n_namesz + 3) & ~3u);

          if (note->n_type == NT_GNU_BUILD_ID && note->n_namesz == 4 &&
              memcmp (name, "GNU", 4) == 0 && desc + note->n_descsz <= end)
            {
              GString *hex = g_string_new (NULL);

              for (guint j = 0; j < note->n_descsz; j++)
                g_string_append_printf (hex, "%02x", desc[j]);
              return g_string_free (hex, FALSE);
            }
          p = desc + ((note->n_descsz + 3) & ~3u);
        }
    }
  return g_strdup ("");
}

static gboolean
in_executable_segment (struct dl_phdr_info *info,
                       guintptr             offset)
{
  for (int i = 0; i < info->dlpi_phnum; i++)
    {
      const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

      if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X) &&
          offset >= ph->p_vaddr && offset - ph->p_vaddr < ph->p_memsz)
        return TRUE;
    }
  return FALSE;
}

static int
lookup_cb (struct dl_phdr_info *info,
           size_t               size,
           void                *data)
{
  Lookup *l = data;
  /* dl_iterate_phdr() visits the executable first, whatever its name. */
  const char *name = l->seen++ == 0 ? "" : (info->dlpi_name ? info->dlpi_name : "");

  if (l->path == NULL)
    {
      if (l->address < info->dlpi_addr ||
          !in_executable_segment (info, l->address - info->dlpi_addr))
        return 0;
      l->offset = l->address - info->dlpi_addr;
    }
  else
    {
      if (strcmp (name, l->path) != 0)
        return 0;
      l->executable = in_executable_segment (info, l->check_offset);
    }

  l->found = TRUE;
  l->bias = info->dlpi_addr;
  l->name = g_strdup (name);
  l->build_id = read_build_id (info);
  return 1;
}

static void
lookup_clear (Lookup *l)
{
  g_clear_pointer (&l->name, g_free);
  g_clear_pointer (&l->build_id, g_free);
}

gboolean
_fm_function_locate (FmFunction   func,
                     char       **exe_path,
                     char       **env_value,
                     GError     **error)
{
  Lookup l = { .address = (guintptr) func };
  g_autoptr(GError) local_error = NULL;
  char *exe;

  dl_iterate_phdr (lookup_cb, &l);
  if (!l.found)
    {
      g_set_error (error, FM_ERROR, FM_ERROR_INVALID_ARGUMENT,
                   "The function at %p is in no loaded object", func);
      return FALSE;
    }

  exe = g_file_read_link ("/proc/self/exe", &local_error);
  if (exe == NULL)
    {
      lookup_clear (&l);
      g_set_error (error, FM_ERROR, FM_ERROR_WORKER_FAILED,
                   "Could not find this program to re-execute it: %s",
                   local_error->message);
      return FALSE;
    }

  *exe_path = exe;
  *env_value = g_strdup_printf ("%" G_GINTPTR_MODIFIER "x:%s:%s",
                                l.offset, l.build_id, l.name);
  lookup_clear (&l);
  return TRUE;
}

/* Finds the function the parent described, in this copy of the program. */
static FmFunction
find_function (const char  *spec,
               GError     **error)
{
  g_auto(GStrv) parts = g_strsplit (spec, ":", 3);
  Lookup l = { 0 };
  FmFunction func = NULL;
  char *end = NULL;

  if (g_strv_length (parts) != 3)
    {
      g_set_error (error, FM_ERROR, FM_ERROR_INVALID_ARGUMENT,
                   "Malformed %s: %s", FM_REEXEC_ENV, spec);
      return NULL;
    }
  l.check_offset = g_ascii_strtoull (parts[0], &end, 16);
  l.path = parts[2];
  if (end == parts[0] || *end != '\0')
    {
      g_set_error (error, FM_ERROR, FM_ERROR_INVALID_ARGUMENT,
                   "Malformed function offset in %s: %s", FM_REEXEC_ENV, spec);
      return NULL;
    }

  dl_iterate_phdr (lookup_cb, &l);
  if (!l.found)
    g_set_error (error, FM_ERROR, FM_ERROR_WORKER_FAILED,
                 "The re-executed program has no object “%s”", parts[2]);
  else if (strcmp (l.build_id, parts[1]) != 0)
    g_set_error (error, FM_ERROR, FM_ERROR_WORKER_FAILED,
                 "The re-executed program is another build (build-id %s, not %s)",
                 *l.build_id ? l.build_id : "none", *parts[1] ? parts[1] : "none");
  else if (!l.executable)
    g_set_error (error, FM_ERROR, FM_ERROR_WORKER_FAILED,
                 "Offset 0x%s is not code in “%s”", parts[0], parts[2]);
  else
    func = (FmFunction) (l.bias + l.check_offset);

  lookup_clear (&l);
  return func;
}

/**
 * fm_init:
 * @argc: (inout) (optional): the address of main()'s argc
 * @argv: (inout) (array length=argc) (optional): the address of main()'s argv
 *
 * Makes a program its own worker. Call it first in main(), before
 * anything else runs: in the program itself it returns at once and does
 * nothing; in a copy of the program that fm_mapper_new_for_function()
 * started, it serves that function with fm_worker_serve() and exits the
 * process, so that main() never goes on.
 *
 * The copy runs the same binary: fastmap checks its build-id (when the
 * linker gave it one) before it calls anything, and refuses to run a
 * function in another build of the program.
 *
 * @argc and @argv are left as they are; they are taken so that later
 * versions may take options of their own from them.
 *
 * This is a C API: bindings use fm_mapper_new() with a worker program
 * that calls fm_worker_serve().
 */
void
fm_init (int    *argc,
         char ***argv)
{
  g_autoptr(GError) error = NULL;
  const char *spec = g_getenv (FM_REEXEC_ENV);
  g_autofree char *copy = NULL;
  FmFunction func;

  if (spec == NULL)
    return;

  /* A worker's own children are not workers. */
  copy = g_strdup (spec);
  g_unsetenv (FM_REEXEC_ENV);

  func = find_function (copy, &error);
  if (func != NULL && fm_worker_serve (func, NULL, &error))
    exit (EXIT_SUCCESS);

  g_printerr ("fastmap worker %d: %s\n", (int) getpid (), error->message);
  exit (EXIT_FAILURE);
}

/* Where fm_mapper_new_for_module() finds fastmap-worker: the variable
 * FASTMAP_WORKER_HELPER if set; else beside this library when that file
 * exists (an uninstalled build keeps both in one folder); else the
 * libexecdir it was installed to. */
char *
_fm_helper_path (void)
{
  const char *env = g_getenv (FM_HELPER_ENV);
  Dl_info info;

  if (env != NULL && *env != '\0')
    return g_strdup (env);

  if (dladdr ((void *) _fm_helper_path, &info) && info.dli_fname != NULL)
    {
      g_autofree char *dir = g_path_get_dirname (info.dli_fname);
      char *beside = g_build_filename (dir, "fastmap-worker", NULL);

      if (g_file_test (beside, G_FILE_TEST_IS_EXECUTABLE))
        return beside;
      g_free (beside);
    }

  return g_build_filename (FM_LIBEXECDIR, "fastmap-worker", NULL);
}
