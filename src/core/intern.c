/*
 * intern.c - operation names to small integer ids, per process.
 *
 * The table of record is private memory (so names can be interned before any
 * session exists, and a forked child inherits it with its ids intact); each
 * name is mirrored into the shared process file, where readers resolve ids.
 * Open addressing with linear probing; insertion claims a slot with one CAS,
 * so interning is lock free from any number of threads.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#include "internal.h"
#include "layout.h"
#include "span.h"

static name_slot_t g_names[STALL_NAME_SLOTS];

static int slot_matches(name_slot_t *s, uint32_t h, const char *name, size_t len) {
    return s->hash == h && strncmp(s->str, name, len) == 0 && s->str[len] == '\0';
}

/* Copies private slot i into the shared table of `names`, once. */
static void mirror_one(name_slot_t *names, uint32_t i) {
    name_slot_t *src = &g_names[i], *dst = &names[i];
    uint32_t expect = NAME_FREE;
    if (!atomic_compare_exchange_strong(&dst->state, &expect, NAME_WRITING)) return;
    dst->hash = src->hash;
    memcpy(dst->str, src->str, sizeof dst->str);
    atomic_store_explicit(&dst->state, NAME_READY, memory_order_release);
}

void stall__intern_mirror_all(name_slot_t *names) {
    for (uint32_t i = 0; i < STALL_NAME_SLOTS; i++)
        if (atomic_load(&g_names[i].state) == NAME_READY) mirror_one(names, i);
}

void stall__intern_after_fork(void) {
    /* the only thread left; a slot another thread was writing at the fork
     * would never be finished here: free it (that name gets a new id) */
    for (uint32_t i = 0; i < STALL_NAME_SLOTS; i++)
        if (atomic_load(&g_names[i].state) == NAME_WRITING) atomic_store(&g_names[i].state, NAME_FREE);
}

const char *stall__intern_lookup(stall_name_t id) {
    if (id == 0 || id > STALL_NAME_SLOTS) return NULL;
    name_slot_t *s = &g_names[id - 1];
    if (atomic_load_explicit(&s->state, memory_order_acquire) != NAME_READY) return NULL;
    return s->str;
}

stall_name_t stall_intern(const char *name) {
    if (!name || !*name) return 0;
    size_t len;
    uint32_t h = stall__hash(name, sizeof g_names[0].str - 1, &len);
    uint32_t mask = STALL_NAME_SLOTS - 1;
    for (uint32_t probe = 0; probe < STALL_NAME_SLOTS; probe++) {
        uint32_t i = (h + probe) & mask;
        name_slot_t *s = &g_names[i];
        uint32_t st = atomic_load_explicit(&s->state, memory_order_acquire);
        if (st == NAME_FREE) {
            uint32_t expect = NAME_FREE;
            if (atomic_compare_exchange_strong(&s->state, &expect, NAME_WRITING)) {
                s->hash = h;
                memcpy(s->str, name, len);
                s->str[len] = '\0';
                atomic_store(&s->state, NAME_READY); /* seq_cst: pairs with attach */
                name_slot_t *shared = stall__shared_names();
                if (shared) mirror_one(shared, i);
                return i + 1;
            }
            st = expect;
        }
        /* another thread is writing this slot: wait until it is done (the
         * writer holds no lock and finishes in a few stores; yield in case it
         * was preempted). Moving on instead would give one name two ids. */
        for (unsigned spin = 0; st == NAME_WRITING; spin++) {
            if (spin >= 1024) sched_yield();
            st = atomic_load_explicit(&s->state, memory_order_acquire);
        }
        if (st == NAME_READY && slot_matches(s, h, name, len)) return i + 1;
    }
    return 0; /* table full */
}
