/*
 * span.h - what span.c, intern.c and the session code share inside the
 * library: the process file of this process and the interning mirror.
 */
#ifndef STALL_SPAN_H
#define STALL_SPAN_H

#include "layout.h"

/* The shared name table of this process's file, or NULL when the process
 * records into no session yet. */
name_slot_t *stall__shared_names(void);

/* Mirrors every interned name into a freshly made shared table. */
void stall__intern_mirror_all(name_slot_t *names);

/* In a forked child: frees name slots that another thread of the parent was
 * writing at the fork. */
void stall__intern_after_fork(void);

/* The name of id in this process's private table, or NULL. */
const char *stall__intern_lookup(stall_name_t id);

/* Removes a flat directory and the files in it. Returns 0 or -1. */
int stall__remove_dir(const char *path);

#endif
