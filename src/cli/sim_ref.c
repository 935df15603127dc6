/* SPDX-License-Identifier: MIT */
/*
 * cli/sim_ref.c - the reference algorithms `usm sim` prints next to the
 * policy under test: FIFO, LRU, CLOCK and Belady's MIN (OPT).
 *
 * All four do demand paging (no prefetch) over the same operations: a
 * reference to a resident page is a hit, any other a miss that brings the
 * page in, evicting one page when all frames are in use; a FREE drops the
 * page.  CLOCK follows the framework's access bit: a page is referenced
 * when it is mapped and on every hit, and the hand gives referenced pages
 * a second chance (the same rules policies/clock.c sees, so the two must
 * agree exactly).
 */
#include "cli/sim.h"

#include <stdlib.h>

#define NEVER UINT32_MAX

/* ---- FIFO, LRU, CLOCK: one queue of resident pages -------------------- */

struct queue {
	uint32_t *prev, *next;   /* by page id; index npages is the head */
	uint32_t head;
};

static void q_unlink(struct queue *q, uint32_t id)
{
	q->next[q->prev[id]] = q->next[id];
	q->prev[q->next[id]] = q->prev[id];
}

static void q_push(struct queue *q, uint32_t id)
{
	uint32_t last = q->prev[q->head];

	q->prev[id] = last;
	q->next[id] = q->head;
	q->next[last] = id;
	q->prev[q->head] = id;
}

/* The page to evict: the queue's head, after CLOCK's second chances. */
static uint32_t q_victim(struct queue *q, uint8_t *ref, enum sim_ref_kind kind)
{
	uint32_t id = q->next[q->head];

	while (kind == SIM_CLOCK && ref[id]) {
		ref[id] = 0;
		q_unlink(q, id);
		q_push(q, id);
		id = q->next[q->head];
	}
	return id;
}

int64_t sim_ref_queue(const struct sim_trace *t, uint64_t frames, enum sim_ref_kind kind)
{
	struct queue q = {
		.prev = malloc((t->npages + 1ull) * sizeof(uint32_t)),
		.next = malloc((t->npages + 1ull) * sizeof(uint32_t)),
		.head = t->npages,
	};
	uint8_t *in = calloc(t->npages + 1ull, 1), *ref = calloc(t->npages + 1ull, 1);
	uint64_t resident = 0;
	int64_t misses = -1;

	if (!q.prev || !q.next || !in || !ref)
		goto out;
	q.prev[q.head] = q.next[q.head] = q.head;
	misses = 0;
	for (size_t i = 0; i < t->nops; i++) {
		uint32_t id = t->ops[i].page;

		if (t->ops[i].kind == SIM_FREE) {
			if (in[id]) {
				q_unlink(&q, id);
				in[id] = 0;
				resident--;
			}
			continue;
		}
		if (in[id]) {
			ref[id] = 1;
			if (kind == SIM_LRU) {
				q_unlink(&q, id);
				q_push(&q, id);
			}
			continue;
		}
		misses++;
		if (resident == frames) {
			uint32_t v = q_victim(&q, ref, kind);

			q_unlink(&q, v);
			in[v] = 0;
			resident--;
		}
		q_push(&q, id);
		in[id] = ref[id] = 1;
		resident++;
	}
out:
	free(q.prev);
	free(q.next);
	free(in);
	free(ref);
	return misses;
}

/* ---- OPT: evict the page whose next use is furthest away -------------- */

/* A max-heap of (next use << 32 | page id); entries go stale when their
 * page is hit again, freed or evicted, and are skipped when popped. */
struct heap {
	uint64_t *v;
	size_t len, cap;
};

static int heap_push(struct heap *h, uint64_t x)
{
	size_t i;

	if (h->len == h->cap) {
		size_t cap = h->cap ? 2 * h->cap : 1024;
		uint64_t *v = realloc(h->v, cap * sizeof(*v));

		if (!v)
			return -1;
		h->v = v;
		h->cap = cap;
	}
	for (i = h->len++; i && h->v[(i - 1) / 2] < x; i = (i - 1) / 2)
		h->v[i] = h->v[(i - 1) / 2];
	h->v[i] = x;
	return 0;
}

static uint64_t heap_pop(struct heap *h)
{
	uint64_t top = h->v[0], x = h->v[--h->len];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= h->len)
			break;
		if (c + 1 < h->len && h->v[c + 1] > h->v[c])
			c++;
		if (h->v[c] <= x)
			break;
		h->v[i] = h->v[c];
		i = c;
	}
	if (h->len)
		h->v[i] = x;
	return top;
}

/* next[i]: the index of the next reference to ops[i]'s page, NEVER if
 * none comes before the page is freed (a freed page's content is dead). */
static uint32_t *next_uses(const struct sim_trace *t)
{
	uint32_t *next = malloc(t->nops * sizeof(*next) + 1);
	uint32_t *last = malloc((t->npages + 1ull) * sizeof(*last));

	if (next && last) {
		for (uint32_t id = 0; id < t->npages; id++)
			last[id] = NEVER;
		for (size_t i = t->nops; i-- > 0;) {
			uint32_t id = t->ops[i].page;

			if (t->ops[i].kind == SIM_FREE) {
				last[id] = NEVER;
				continue;
			}
			next[i] = last[id];
			last[id] = (uint32_t)i;
		}
	} else {
		free(next);
		next = NULL;
	}
	free(last);
	return next;
}

int64_t sim_ref_opt(const struct sim_trace *t, uint64_t frames)
{
	uint32_t *next = next_uses(t);
	uint32_t *cur = malloc((t->npages + 1ull) * sizeof(*cur));
	uint8_t *in = calloc(t->npages + 1ull, 1);
	struct heap h = { 0 };
	uint64_t resident = 0;
	int64_t misses = -1;

	if (!next || !cur || !in)
		goto out;
	misses = 0;
	for (size_t i = 0; i < t->nops; i++) {
		uint32_t id = t->ops[i].page;

		if (t->ops[i].kind == SIM_FREE) {
			resident -= in[id];
			in[id] = 0;
			continue;
		}
		if (!in[id]) {
			misses++;
			while (resident == frames) {
				uint64_t e = heap_pop(&h);
				uint32_t v = (uint32_t)e;

				if (in[v] && cur[v] == (uint32_t)(e >> 32)) {
					in[v] = 0;
					resident--;
				}
			}
			in[id] = 1;
			resident++;
		}
		cur[id] = next[i];
		if (heap_push(&h, (uint64_t)next[i] << 32 | id)) {
			misses = -1;
			goto out;
		}
	}
out:
	free(next);
	free(cur);
	free(in);
	free(h.v);
	return misses;
}
