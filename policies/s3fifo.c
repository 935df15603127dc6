/* SPDX-License-Identifier: MIT */
/*
 * policies/s3fifo.c - S3-FIFO eviction (Yang et al., SOSP 2023): three
 * FIFO queues, scan-resistant.
 *
 *  - small (S): new pages enter here; it is kept near 10% of the tracked
 *    pages.  A page leaving S that was accessed since it was mapped moves
 *    to M (its access information cleared); one that was not is evicted,
 *    and its key (pid, page number) goes to the ghost queue G.
 *  - main (M): a FIFO with a 2-bit frequency per page, in
 *    usm_page.policy_flags.  At the head, a page accessed since the last
 *    visit gains one (up to 3); a page with frequency > 0 goes back to the
 *    tail one lower, else it is evicted.
 *  - ghost (G): keys of pages recently evicted from S, about 90% of the
 *    tracked pages' worth.  A page mapped again while its key is in G was
 *    evicted too early: it enters M directly.
 *
 * Access information comes from usm_page_referenced: one bit per page
 * between two looks, so a page in S (looked at once, when it leaves) moves
 * to M if it was accessed at all since mapping.  The bit the framework
 * sets when a page is mapped is consumed at insertion: being mapped is not
 * a reuse.  One-time pages (a scan) pass through S without disturbing M.
 *
 * G is a hash table of key -> insertion number: a key is in G while at
 * most "ghost size" insertions (counting its own) are as recent as it, so
 * old keys leave without any queue walking.  Rehashing drops only keys
 * that can never count again (further back than the whole budget), which
 * keeps membership independent of when the table happens to be rebuilt.
 *
 * Swap-in prefetch: `set s3fifo.prefetch N` (a power of two) or `auto`
 * (the default: readahead that follows sequential streams).
 */
#include <usm/usm.h>

#include <stdlib.h>

#define FREQ_MASK   3u
#define IN_MAIN     (1u << 2)
#define FREQ_MAX    3u
#define GHOST_DEAD  UINT64_MAX       /* a slot whose key left G */

static USM_LIST_HEAD(small);
static USM_LIST_HEAD(main_q);
static uint64_t nsmall, nmain;
static struct usm_prefetch prefetch;

struct ghost_slot {
	uint64_t key;     /* 0: empty */
	uint64_t seq;     /* insertion number, or GHOST_DEAD */
};

static struct ghost_slot *ghost;
static uint64_t ghost_size;          /* slots, a power of two */
static uint64_t ghost_used;          /* slots with a key (live or stale) */
static uint64_t ghost_seq;           /* insertions so far */

/* ---- ghost queue ---------------------------------------------------- */

static uint64_t ghost_capacity(void)
{
	uint64_t cap = (nsmall + nmain) * 9 / 10;

	return cap ? cap : 1;
}

static bool ghost_live(const struct ghost_slot *s)
{
	return s->seq != GHOST_DEAD && ghost_seq - s->seq <= ghost_capacity();
}

static uint64_t mix(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdull;
	k ^= k >> 33;
	return k;
}

/* The slot holding key, or the empty slot where it would go. */
static struct ghost_slot *ghost_slot_for(struct ghost_slot *tab, uint64_t size, uint64_t key)
{
	uint64_t i = mix(key) & (size - 1);

	while (tab[i].key && tab[i].key != key)
		i = (i + 1) & (size - 1);
	return &tab[i];
}

/* Could s be in G again?  The ghost size never exceeds the budget. */
static bool ghost_keep(const struct ghost_slot *s)
{
	return s->key && s->seq != GHOST_DEAD && ghost_seq - s->seq <= usm_frames_total();
}

/* Rebuild with the keys worth keeping, at most half full after one more. */
static bool ghost_rehash(void)
{
	uint64_t live = 0, size = 64;
	struct ghost_slot *tab;

	for (uint64_t i = 0; i < ghost_size; i++)
		live += ghost_keep(&ghost[i]);
	while (size < 4 * (live + 1))
		size *= 2;
	tab = calloc(size, sizeof(*tab));
	if (!tab)
		return false;
	for (uint64_t i = 0; i < ghost_size; i++)
		if (ghost_keep(&ghost[i]))
			*ghost_slot_for(tab, size, ghost[i].key) = ghost[i];
	free(ghost);
	ghost = tab;
	ghost_size = size;
	ghost_used = live;
	return true;
}

static void ghost_add(uint64_t key)
{
	struct ghost_slot *s;

	/* Without memory for the table the page just is not remembered:
	 * G only speeds up re-admission. */
	if (2 * (ghost_used + 1) > ghost_size && !ghost_rehash())
		return;
	s = ghost_slot_for(ghost, ghost_size, key);
	if (!s->key) {
		s->key = key;
		ghost_used++;
	}
	s->seq = ghost_seq++;
}

/* Is key in G?  If so it leaves G. */
static bool ghost_take(uint64_t key)
{
	struct ghost_slot *s;

	if (!ghost)
		return false;
	s = ghost_slot_for(ghost, ghost_size, key);
	if (!s->key || !ghost_live(s))
		return false;
	s->seq = GHOST_DEAD;
	return true;
}

static uint64_t page_key(const struct usm_page *pg)
{
	uint64_t pid = pg->proc ? (uint64_t)usm_process_pid(pg->proc) : 0;

	/* pids < 2^22, page numbers < 2^40; bit 63 keeps a key non-zero */
	return 1ull << 63 | pid << 40 | (pg->vaddr / usm_page_size());
}

/* ---- queues ---------------------------------------------------------- */

static unsigned freq(const struct usm_page *pg)
{
	return pg->policy_flags & FREQ_MASK;
}

static void set_freq(struct usm_page *pg, unsigned f)
{
	pg->policy_flags = (pg->policy_flags & ~FREQ_MASK) | f;
}

static void s3_mapped(struct usm_page *pg)
{
	(void)usm_page_referenced(pg);
	if (ghost_take(page_key(pg))) {
		pg->policy_flags = IN_MAIN;
		usm_list_add_tail(&pg->list2, &main_q);
		nmain++;
	} else {
		pg->policy_flags = 0;
		usm_list_add_tail(&pg->list2, &small);
		nsmall++;
	}
}

static void s3_unmapped(struct usm_page *pg)
{
	usm_list_del(&pg->list2);
	if (pg->policy_flags & IN_MAIN)
		nmain--;
	else
		nsmall--;
}

/* Look at S's head: promote it to M (NULL), or evict it. */
static struct usm_page *small_head(void)
{
	struct usm_page *pg = usm_list_first_entry(&small, struct usm_page, list2);

	if (usm_page_pinned(pg)) {
		usm_list_move_tail(&pg->list2, &small);
		return NULL;
	}
	s3_unmapped(pg);
	if (usm_page_referenced(pg)) {
		pg->policy_flags = IN_MAIN;
		usm_list_add_tail(&pg->list2, &main_q);
		nmain++;
		return NULL;
	}
	ghost_add(page_key(pg));
	return pg;
}

/* Look at M's head: reinsert it one frequency lower (NULL), or evict it. */
static struct usm_page *main_head(void)
{
	struct usm_page *pg = usm_list_first_entry(&main_q, struct usm_page, list2);
	unsigned f = freq(pg);

	if (usm_page_pinned(pg)) {
		usm_list_move_tail(&pg->list2, &main_q);
		return NULL;
	}
	if (usm_page_referenced(pg) && f < FREQ_MAX)
		f++;
	if (f) {
		set_freq(pg, f - 1);
		usm_list_move_tail(&pg->list2, &main_q);
		return NULL;
	}
	s3_unmapped(pg);
	return pg;
}

static unsigned s3_evict(struct usm_page **out, unsigned want)
{
	/* A page is looked at most FREQ_MAX + 2 times before it goes (or,
	 * pinned, once per pass): this bounds the walk. */
	uint64_t steps = (FREQ_MAX + 2) * (nsmall + nmain) + want;
	unsigned n = 0;

	while (n < want && nsmall + nmain && steps--) {
		bool from_small = nsmall && (10 * nsmall >= nsmall + nmain || !nmain);
		struct usm_page *pg = from_small ? small_head() : main_head();

		if (pg)
			out[n++] = pg;
	}
	return n;
}

/* ---- the rest of the ops ---------------------------------------------- */

static int s3_init(void)
{
	return usm_prefetch_init(&prefetch, "s3fifo");
}

static void s3_exit(void)
{
	usm_list_init(&small);
	usm_list_init(&main_q);
	nsmall = nmain = 0;
	free(ghost);
	ghost = NULL;
	ghost_size = ghost_used = ghost_seq = 0;
}

static unsigned s3_swap_in(struct usm_event *ev)
{
	return usm_prefetch_pages(&prefetch, ev);
}

static const struct usm_swap_policy_ops s3fifo_ops = {
	.usm_init = s3_init,
	.usm_exit = s3_exit,
	.usm_page_mapped = s3_mapped,
	.usm_page_unmapped = s3_unmapped,
	.usm_evict_fallback = s3_evict,
	.usm_swap = s3_swap_in,
};

__attribute__((constructor)) static void s3fifo_register(void)
{
	usm_register_swap_policy(&s3fifo_ops, "s3fifo", false);
}
