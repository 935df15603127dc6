/* SPDX-License-Identifier: MIT */
/*
 * swap/swap.c - the instance's set of swap devices: slot ids, reference
 * counts, device choice, stats.
 *
 * Slot ids come from a stack of freed ids, then from the never-used ones
 * above a high-water mark: O(1) per id, and a fresh device hands out
 * consecutive ids, so a batch lands in neighbouring slots.  The per-slot
 * tables are sized for the device's maximum up front, in lazily backed
 * anonymous memory (raw_map), so they never move and cost memory only
 * where slots were used; raw_map also keeps them out of userfaultfd's
 * reach when the framework runs inside a managed process.
 *
 * One lock guards the tables and the stats.  It is never held across I/O
 * or compression: store reserves ids under it, lets the device write, and
 * takes it again to publish the result.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <usm/usm.h>
#include "mech/rawsys.h"
#include "swap/swap_int.h"

static struct {
	pthread_mutex_t lock;
	bool enabled;
	size_t page_size;
	unsigned ndevs;
	struct swap_dev devs[USM_SWAP_MAX_DEVS];
	unsigned by_prio[USM_SWAP_MAX_DEVS];   /* device indexes, priority high first */
	unsigned rotation;                     /* round robin among equal priorities */
} set = { .lock = PTHREAD_MUTEX_INITIALIZER };

int usm_swap_fail(char *err, size_t errlen, int e, const char *fmt, ...)
{
	va_list ap;
	int n = 0;

	if (err && errlen) {
		va_start(ap, fmt);
		n = vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < errlen)
			snprintf(err + n, errlen - (size_t)n, ": %s", strerror(-e));
	}
	return e;
}

/* ---- slot tables ------------------------------------------------------ */

static size_t table_bytes(size_t elem, uint32_t n)
{
	size_t page = 4096;

	return ((size_t)n * elem + page - 1) / page * page;
}

static int tables_alloc(struct swap_dev *d)
{
	d->refs = raw_map(table_bytes(sizeof(*d->refs), d->nslots), PROT_READ | PROT_WRITE);
	d->recs = raw_map(table_bytes(sizeof(*d->recs), d->nslots), PROT_READ | PROT_WRITE);
	d->free_ids = raw_map(table_bytes(sizeof(*d->free_ids), d->nslots),
			      PROT_READ | PROT_WRITE);
	return d->refs && d->recs && d->free_ids ? 0 : -ENOMEM;
}

static void tables_free(struct swap_dev *d)
{
	if (d->refs)
		raw_unmap(d->refs, table_bytes(sizeof(*d->refs), d->nslots));
	if (d->recs)
		raw_unmap(d->recs, table_bytes(sizeof(*d->recs), d->nslots));
	if (d->free_ids)
		raw_unmap(d->free_ids, table_bytes(sizeof(*d->free_ids), d->nslots));
	d->refs = NULL;
	d->recs = NULL;
	d->free_ids = NULL;
}

/* Up to want free ids of d into ids, each with one reference. */
static unsigned slots_reserve(struct swap_dev *d, uint32_t *ids, unsigned want)
{
	unsigned got = 0;

	while (got < want) {
		uint32_t id;

		if (d->nfree)
			id = d->free_ids[--d->nfree];
		else if (d->next_unused < d->nslots)
			id = d->next_unused++;
		else
			break;
		d->refs[id] = 1;
		ids[got++] = id;
	}
	d->st.slots_used += got;
	return got;
}

static void slot_put_back(struct swap_dev *d, uint32_t id)
{
	d->refs[id] = 0;
	memset(&d->recs[id], 0, sizeof(d->recs[id]));
	d->free_ids[d->nfree++] = id;
	d->st.slots_used--;
}

static uint64_t space_of(const struct swap_dev *d, uint16_t len)
{
	return ((uint64_t)len + d->space_unit - 1) / d->space_unit * d->space_unit;
}

/* The device of a live loc that matches its slot's record, or NULL. */
static struct swap_dev *lookup(const struct usm_swap_loc *loc)
{
	struct swap_dev *d;

	if (!set.enabled || loc->dev >= set.ndevs)
		return NULL;
	d = &set.devs[loc->dev];
	if (loc->slot >= d->nslots || !d->refs[loc->slot] ||
	    memcmp(&d->recs[loc->slot], loc, sizeof(*loc)))
		return NULL;
	return d;
}

/* ---- set up ----------------------------------------------------------- */

static const struct swap_dev_ops *ops_of(const char *kind)
{
	if (!strcmp(kind, "file"))
		return &usm_swap_file_ops;
	if (!strcmp(kind, "zmem"))
		return &usm_swap_zmem_ops;
	return NULL;
}

/* Stable order by priority, highest first; config order among equals. */
static void sort_by_priority(void)
{
	for (unsigned i = 0; i < set.ndevs; i++) {
		unsigned j = i;

		set.by_prio[i] = i;
		while (j > 0 && set.devs[set.by_prio[j - 1]].cfg.priority <
				set.devs[set.by_prio[j]].cfg.priority) {
			unsigned t = set.by_prio[j - 1];

			set.by_prio[j - 1] = set.by_prio[j];
			set.by_prio[j] = t;
			j--;
		}
	}
}

void usm_swap_dev_opened(struct swap_dev *d, void *priv, int fd, uint64_t slots,
			 uint64_t bytes_per_slot, uint32_t space_unit)
{
	d->priv = priv;
	d->fd = fd;
	d->nslots = slots > UINT32_MAX ? UINT32_MAX : (uint32_t)slots;
	d->bytes_total = d->nslots * bytes_per_slot;
	d->space_unit = space_unit;
}

static void dev_close(struct swap_dev *d)
{
	if (d->priv)
		d->ops->close(d->priv);
	d->priv = NULL;
	d->fd = -1;
	tables_free(d);
}

static void close_devs(void)
{
	for (unsigned i = 0; i < set.ndevs; i++)
		dev_close(&set.devs[i]);
	memset(set.devs, 0, sizeof(set.devs));
	set.ndevs = 0;
}

static int open_dev(struct swap_dev *d, char *err, size_t errlen)
{
	char why[200] = "";
	int ret;

	ret = d->ops->open(d, why, sizeof(why));
	if (!ret && d->nslots == 0)
		ret = usm_swap_fail(why, sizeof(why), -EINVAL, "smaller than one page");
	if (!ret && tables_alloc(d))
		ret = usm_swap_fail(why, sizeof(why), -ENOMEM, "slot tables of %u slots",
				    d->nslots);
	if (ret) {
		dev_close(d);
		snprintf(err, errlen, "swapdev %s %s (line %d): %s", d->cfg.kind,
			 d->cfg.path[0] ? d->cfg.path : "-", d->cfg.line, why);
		return ret;
	}
	d->st.slots_total = d->nslots;
	d->st.bytes_total = d->bytes_total;
	return 0;
}

int usm_swap_init(const struct usm_swapdev_cfg *devs, unsigned ndevs, size_t page_size,
		  char *err, size_t errlen)
{
	return usm_swap_init_mode(devs, ndevs, page_size, USM_SWAP_SHARED, err, errlen);
}

int usm_swap_init_mode(const struct usm_swapdev_cfg *devs, unsigned ndevs, size_t page_size,
		       enum usm_swap_mode mode, char *err, size_t errlen)
{
	int ret = 0;

	if (page_size < 4096 || page_size > USM_SWAP_MAX_PAGE || (page_size & (page_size - 1))) {
		snprintf(err, errlen, "swap: page size %zu not supported (a power of two "
			 "from 4096 to %u)", page_size, USM_SWAP_MAX_PAGE);
		return -EINVAL;
	}
	if (ndevs > USM_SWAP_MAX_DEVS) {
		snprintf(err, errlen, "swap: %u devices, at most %d", ndevs, USM_SWAP_MAX_DEVS);
		return -EINVAL;
	}
	pthread_mutex_lock(&set.lock);
	if (set.enabled) {
		snprintf(err, errlen, "swap: devices already open");
		ret = -EBUSY;
		goto out;
	}
	set.page_size = page_size;
	for (unsigned i = 0; i < ndevs; i++) {
		struct swap_dev *d = &set.devs[i];

		memset(d, 0, sizeof(*d));
		d->cfg = devs[i];
		d->index = i;
		d->page_size = page_size;
		d->private_mem = mode == USM_SWAP_PRIVATE;
		d->fd = -1;
		d->ops = ops_of(devs[i].kind);
		if (!d->ops) {
			snprintf(err, errlen, "swapdev (line %d): unknown kind '%s'", devs[i].line,
				 devs[i].kind);
			ret = -EINVAL;
		} else {
			ret = open_dev(d, err, errlen);
		}
		if (ret) {
			set.ndevs = i;     /* close the ones opened so far */
			close_devs();
			goto out;
		}
		set.ndevs = i + 1;
	}
	sort_by_priority();
	set.rotation = 0;
	set.enabled = ndevs > 0;
out:
	pthread_mutex_unlock(&set.lock);
	return ret;
}

void usm_swap_fini(void)
{
	pthread_mutex_lock(&set.lock);
	close_devs();
	set.enabled = false;
	pthread_mutex_unlock(&set.lock);
}

bool usm_swap_enabled(void)
{
	pthread_mutex_lock(&set.lock);
	bool on = set.enabled;
	pthread_mutex_unlock(&set.lock);
	return on;
}

unsigned usm_swap_ndevs(void)
{
	pthread_mutex_lock(&set.lock);
	unsigned n = set.ndevs;
	pthread_mutex_unlock(&set.lock);
	return n;
}

int usm_swap_dev_fd(unsigned dev)
{
	pthread_mutex_lock(&set.lock);
	int fd = dev < set.ndevs ? set.devs[dev].fd : -1;
	pthread_mutex_unlock(&set.lock);
	return fd;
}

/*
 * fork in the in-process host (USM_SWAP_PRIVATE): the parent holds the
 * lock across fork, so no call is half done in the child's copy; the
 * child, single-threaded, starts with fresh locks.
 */
void usm_swap_fork_lock(void)
{
	pthread_mutex_lock(&set.lock);
}

void usm_swap_fork_unlock(void)
{
	pthread_mutex_unlock(&set.lock);
}

void usm_swap_fork_child(void)
{
	pthread_mutex_init(&set.lock, NULL);
	for (unsigned i = 0; i < set.ndevs; i++)
		if (set.devs[i].ops->forked)
			set.devs[i].ops->forked(&set.devs[i]);
}

/* ---- store ------------------------------------------------------------ */

/*
 * The order this batch tries the devices in: by priority, and within each
 * group of equal priority rotated by one more for every batch.
 */
static void batch_order(unsigned *order)
{
	unsigned rot = set.rotation++;

	for (unsigned i = 0; i < set.ndevs;) {
		unsigned g = i;

		while (g < set.ndevs && set.devs[set.by_prio[g]].cfg.priority ==
					set.devs[set.by_prio[i]].cfg.priority)
			g++;
		for (unsigned k = 0; k < g - i; k++)
			order[i + k] = set.by_prio[i + (k + rot) % (g - i)];
		i = g;
	}
}

/*
 * Offer the pages todo[0..*ntodo) to device d.  Stored ones get their out
 * entries; *ntodo becomes the number still to place, compacted to the
 * front of todo.
 */
static unsigned store_on(struct swap_dev *d, const void *const *pages, unsigned *todo,
			 unsigned *ntodo, struct usm_swap_loc *out)
{
	const void *batch[USM_SWAP_BATCH];
	uint32_t ids[USM_SWAP_BATCH];
	struct usm_swap_loc locs[USM_SWAP_BATCH];
	uint64_t errors = 0;
	unsigned n, left = 0, stored = 0;

	pthread_mutex_lock(&set.lock);
	n = slots_reserve(d, ids, *ntodo);
	pthread_mutex_unlock(&set.lock);
	if (n == 0)
		return 0;

	memset(locs, 0, sizeof(locs));
	for (unsigned j = 0; j < n; j++)
		batch[j] = pages[todo[j]];
	d->ops->store(d, batch, ids, n, locs, &errors);

	pthread_mutex_lock(&set.lock);
	d->st.store_errors += errors;
	for (unsigned j = 0; j < n; j++) {
		struct usm_swap_loc *loc = &locs[j];

		if (loc->len == 0) {
			slot_put_back(d, ids[j]);
			todo[left++] = todo[j];
			continue;
		}
		loc->slot = ids[j];
		loc->dev = (uint8_t)d->index;
		d->recs[ids[j]] = *loc;
		out[todo[j]] = *loc;
		d->st.stored++;
		d->st.raw_bytes += d->page_size;
		d->st.stored_bytes += loc->len;
		d->st.bytes_used += space_of(d, loc->len);
		stored++;
	}
	pthread_mutex_unlock(&set.lock);
	for (unsigned j = n; j < *ntodo; j++)
		todo[left++] = todo[j];
	*ntodo = left;
	return stored;
}

/* At most USM_SWAP_BATCH pages. */
static unsigned store_batch(const void *const *pages, unsigned n, struct usm_swap_loc *out)
{
	unsigned order[USM_SWAP_MAX_DEVS], todo[USM_SWAP_BATCH];
	unsigned ndevs, ntodo = n, stored = 0;

	pthread_mutex_lock(&set.lock);
	ndevs = set.enabled ? set.ndevs : 0;
	batch_order(order);
	pthread_mutex_unlock(&set.lock);

	for (unsigned i = 0; i < n; i++)
		todo[i] = i;
	for (unsigned k = 0; k < ndevs && ntodo; k++)
		stored += store_on(&set.devs[order[k]], pages, todo, &ntodo, out);
	return stored;
}

unsigned usm_swap_store(const void *const *pages, unsigned n, struct usm_swap_loc *out)
{
	unsigned stored = 0;

	memset(out, 0, sizeof(*out) * n);
	for (unsigned i = 0; i < n; i += USM_SWAP_BATCH) {
		unsigned m = n - i < USM_SWAP_BATCH ? n - i : USM_SWAP_BATCH;

		stored += store_batch(pages + i, m, out + i);
	}
	return stored;
}

/* ---- load ------------------------------------------------------------- */

/* Check every loc of the batch; -EINVAL names the first bad one. */
static int load_check(const struct usm_swap_loc *locs, unsigned n)
{
	int ret = 0;

	pthread_mutex_lock(&set.lock);
	for (unsigned i = 0; i < n && !ret; i++) {
		if (!lookup(&locs[i])) {
			usm_log(USM_LOG_ERROR, "swap: load of a loc not stored (dev %u slot %u "
				"off %llu len %u)", locs[i].dev, locs[i].slot,
				(unsigned long long)locs[i].off, locs[i].len);
			ret = -EINVAL;
		}
	}
	pthread_mutex_unlock(&set.lock);
	return ret;
}

/* The locs of batch on device dev, in one call to the device. */
static int load_dev(unsigned dev, const struct usm_swap_loc *locs, unsigned n,
		    void *const *bufs)
{
	struct usm_swap_loc mine[USM_SWAP_BATCH];
	void *dst[USM_SWAP_BATCH];
	struct swap_dev *d = &set.devs[dev];
	unsigned m = 0;
	int ret;

	for (unsigned i = 0; i < n; i++) {
		if (locs[i].dev != dev)
			continue;
		mine[m] = locs[i];
		dst[m++] = bufs[i];
	}
	if (m == 0)
		return 0;
	ret = d->ops->load(d, mine, dst, m);
	pthread_mutex_lock(&set.lock);
	if (ret)
		d->st.load_errors += m;
	else
		d->st.loaded += m;
	pthread_mutex_unlock(&set.lock);
	return ret;
}

int usm_swap_load(const struct usm_swap_loc *locs, unsigned n, void *const *bufs)
{
	int ret = 0;

	if (!usm_swap_enabled())
		return n ? -ENODEV : 0;
	for (unsigned i = 0; i < n && !ret; i += USM_SWAP_BATCH) {
		unsigned m = n - i < USM_SWAP_BATCH ? n - i : USM_SWAP_BATCH;

		ret = load_check(locs + i, m);
		for (unsigned dev = 0; dev < set.ndevs && !ret; dev++)
			ret = load_dev(dev, locs + i, m, bufs + i);
	}
	return ret;
}

/* ---- references ------------------------------------------------------- */

static struct swap_dev *lookup_or_warn(const struct usm_swap_loc *loc, const char *what)
{
	struct swap_dev *d = lookup(loc);

	if (!d)
		usm_log(USM_LOG_WARN, "swap: %s of a loc not stored (dev %u slot %u off %llu "
			"len %u): ignored", what, loc->dev, loc->slot,
			(unsigned long long)loc->off, loc->len);
	return d;
}

static void slot_ref(struct swap_dev *d, const struct usm_swap_loc *loc)
{
	if (d->refs[loc->slot] == UINT32_MAX)
		usm_log(USM_LOG_ERROR, "swap: slot %u of device %u has 2^32-1 references; "
			"not counting more", loc->slot, loc->dev);
	else
		d->refs[loc->slot]++;
}

static void slot_unref(struct swap_dev *d, const struct usm_swap_loc *loc)
{
	if (--d->refs[loc->slot])
		return;
	if (d->ops->release)
		d->ops->release(d, loc);
	d->st.freed++;
	d->st.raw_bytes -= d->page_size;
	d->st.stored_bytes -= loc->len;
	d->st.bytes_used -= space_of(d, loc->len);
	slot_put_back(d, loc->slot);
}

/* One reference more (up) or less; a loc with len 0 has none. */
static void ref_change(const struct usm_swap_loc *loc, bool up)
{
	struct swap_dev *d;

	if (loc->len == 0)
		return;
	pthread_mutex_lock(&set.lock);
	d = lookup_or_warn(loc, up ? "ref" : "unref");
	if (d && up)
		slot_ref(d, loc);
	else if (d)
		slot_unref(d, loc);
	pthread_mutex_unlock(&set.lock);
}

void usm_swap_ref(const struct usm_swap_loc *loc)
{
	ref_change(loc, true);
}

void usm_swap_unref(const struct usm_swap_loc *loc)
{
	ref_change(loc, false);
}

/* ---- stats ------------------------------------------------------------ */

uint64_t usm_swap_slots_used(void)
{
	uint64_t used = 0;

	pthread_mutex_lock(&set.lock);
	for (unsigned i = 0; i < set.ndevs; i++)
		used += set.devs[i].st.slots_used;
	pthread_mutex_unlock(&set.lock);
	return used;
}

_Static_assert(sizeof(struct usm_swap_stats) % sizeof(uint64_t) == 0,
	       "usm_swap_stats holds only uint64_t counters");

static void stats_add(struct usm_swap_stats *sum, const struct usm_swap_stats *s)
{
	uint64_t *a = (uint64_t *)sum;
	const uint64_t *b = (const uint64_t *)s;

	for (size_t i = 0; i < sizeof(*s) / sizeof(uint64_t); i++)
		a[i] += b[i];
}

void usm_swap_stats(int dev, struct usm_swap_stats *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&set.lock);
	for (unsigned i = 0; i < set.ndevs; i++)
		if (dev < 0 || (unsigned)dev == i)
			stats_add(out, &set.devs[i].st);
	pthread_mutex_unlock(&set.lock);
}
