/* SPDX-License-Identifier: MIT */
/*
 * core/inline.c - the in-process host: one instance inside the managed
 * process, serving faults in the faulting thread (see core/inline.h).
 */
#include "core/access.h"
#include "core/inline.h"
#include "core/instance.h"
#include "mech/rawsys.h"
#include "mech/uffd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Enough for the largest fault: a 2 MiB window and USM_AHEAD_MAX more. */
#define LEASE_LOW     (USM_MAX_BATCH * (1 + USM_AHEAD_MAX))
#define LEASE_CHUNK   (2 * LEASE_LOW) /* frames asked for at a time (36 MiB) */
#define LEASE_HIGH    (4 * LEASE_CHUNK)
/* A process that asks again within LEASE_BURST_NS gets twice as much,
 * up to LEASE_MAX: a round trip to the instance every 36 MiB held two
 * threads faulting in 2 MiB pages back by about 10 %. */
#define LEASE_BURST_NS 20000000ull
#define LEASE_MAX     (8 * LEASE_CHUNK)
#define NSLOTS        64     /* threads resolving faults at the same time */
#define OOM_WAIT_NS   10000000
#define RETRY_FIRST_NS 20000
/* With eviction on, an instance that refused frames is not asked again
 * for this long: the reclaimer evicts instead, and a fault never waits
 * for a round trip that is known to bring nothing. */
#define REFUSED_NS    50000000ull
/* ... unless it is getting frames back from another process for us: then
 * ask again this often, and do not call it out of memory for this long. */
#define RECALL_RETRY_NS 2000000ull
#define RECALL_WAIT_NS  500000000ull

void usm_log_set_tag(const char *t);

static struct usm_process *self;
static struct usm_worker *slots;          /* per-thread resolve plans */
static _Atomic int busy[NSLOTS];
static atomic_flag lease_lock = ATOMIC_FLAG_INIT;
static _Atomic uint64_t refused_at;       /* the instance had no frame to lend */
static _Atomic uint64_t recalling_at;     /* ... and was getting some back for us */
static _Atomic uint64_t short_since;      /* first fault that found no frame */
static _Atomic uint32_t frames_seq;       /* futex: bumped when frames came free */
static _Atomic bool detaching;            /* the instance is gone: hands off */

static bool evicting(void)
{
	return usm_evict_enabled(usm_inst);
}

/* Pages one faulting thread evicts at a time (direct reclaim). */
#define DIRECT_BATCH 32

static uint64_t frames_free_locked(void);

static bool direct_reclaim(void)
{
	return usm_inst->direct_reclaim && frames_free_locked() < usm_inst->wm_low;
}

static struct usm_worker *grab_slot(void)
{
	for (;;)
		for (int i = 0; i < NSLOTS; i++) {
			int free_ = 0;
			if (atomic_compare_exchange_weak(&busy[i], &free_, 1))
				return &slots[i];
		}
}

static void drop_slot(struct usm_worker *w)
{
	atomic_store(&busy[w - slots], 0);
}

bool usm_inline_mapping(const struct usm_worker *self_slot, uint64_t va)
{
	uint64_t region = usm_region_of(va);

	for (int i = 0; i < NSLOTS; i++)
		if (&slots[i] != self_slot && atomic_load(&slots[i].mapping_region) == region)
			return true;
	return false;
}

/* Frames more this host may lease: a process's `limit` caps its lease
 * (it then evicts its own pages, like any process at its limit). */
static uint64_t lease_room(void)
{
	uint64_t cap, limit = self ? self->limit_frames : 0;

	if (!limit)
		return UINT64_MAX;
	pthread_mutex_lock(&usm_inst->lock);
	cap = usm_inst->cap;
	pthread_mutex_unlock(&usm_inst->lock);
	return cap < limit ? limit - cap : 0;
}

/* Change how many frames this host may hold, through the instance;
 * returns the change.  One caller at a time (lease_lock, or a single
 * thread at start and in a fork child). */
static int64_t lease(int64_t delta)
{
	int64_t granted = 0;
	uint64_t cap;
	uint64_t room = delta > 0 ? lease_room() : 0;
	bool recalling = false;

	if (delta > 0 && (uint64_t)delta > room)
		delta = (int64_t)room;
	if (!delta || usm_inst->host->lease(delta, &granted, &recalling) < 0)
		return 0;
	if (delta > 0 && granted < delta)
		atomic_store(&refused_at, usm_now_ns());
	if (granted > 0)
		atomic_store(&short_since, 0);
	if (recalling)
		atomic_store(&recalling_at, usm_now_ns());
	pthread_mutex_lock(&usm_inst->lock);
	usm_inst->cap = (uint64_t)((int64_t)usm_inst->cap + granted);
	cap = usm_inst->cap;
	pthread_mutex_unlock(&usm_inst->lock);
	if (granted > 0)
		usm_frames_prefault(usm_inst, cap);
	return granted;
}

/* Is the instance getting frames back from another process for us? */
static bool being_recalled(void)
{
	uint64_t at = atomic_load(&recalling_at);

	return at && usm_now_ns() - at < RECALL_WAIT_NS;
}

/*
 * The in-process host calls it out of memory only after having found no
 * frame for OOM_GRACE_NS: frames may be on their way from another process
 * (the instance recalls them), and the lease replies that say so race
 * with the faults that need them.
 */
#define OOM_GRACE_NS 1000000000ull

/* The instance has frames again: ask for them at the next fault. */
void usm_inline_lease_now(void)
{
	atomic_store(&refused_at, 0);
	atomic_store(&short_since, 0);
}

bool usm_inline_oom_grace(void)
{
	uint64_t now = usm_now_ns(), since = atomic_load(&short_since);

	if (being_recalled())
		return true;
	if (!since) {
		atomic_compare_exchange_strong(&short_since, &since, now);
		return true;
	}
	return now - since < OOM_GRACE_NS;
}

/* With eviction on: was the instance out of frames a moment ago? */
static bool refused_lately(void)
{
	uint64_t at = atomic_load(&refused_at);

	if (!evicting() || !at)
		return false;
	return usm_now_ns() - at < (being_recalled() ? RECALL_RETRY_NS : REFUSED_NS);
}

static uint64_t frames_free_locked(void)
{
	uint64_t n;

	pthread_mutex_lock(&usm_inst->lock);
	n = usm_frames_free();
	pthread_mutex_unlock(&usm_inst->lock);
	return n;
}

/* How much to lease now (lease lock held). */
static uint64_t next_chunk(void)
{
	static uint64_t chunk = LEASE_CHUNK, last_ns;
	uint64_t now = usm_now_ns();

	if (last_ns && now - last_ns < LEASE_BURST_NS)
		chunk = chunk * 2 > LEASE_MAX ? LEASE_MAX : chunk * 2;
	else
		chunk = LEASE_CHUNK;
	last_ns = now;
	return chunk;
}

/*
 * Enough frames for the largest resolve before calling the policy.  While
 * another thread is asking the instance for more (a round trip), a thread
 * that has enough for one 2 MiB window goes on instead of waiting; only
 * one that has not waits, and it sleeps rather than spin on a CPU the
 * others need.
 */
static void top_up(void)
{
	uint64_t n = frames_free_locked();

	if (n >= LEASE_LOW || refused_lately())
		return;
	while (atomic_flag_test_and_set(&lease_lock)) {
		if (n >= USM_MAX_BATCH)
			return;
		sched_yield();
		n = frames_free_locked();
	}
	if (frames_free_locked() < LEASE_LOW)
		lease((int64_t)next_chunk());
	atomic_flag_clear(&lease_lock);
}

uint64_t usm_inline_lease_more(uint64_t need)
{
	int64_t got = 0;

	if (refused_lately())
		return 0;
	while (atomic_flag_test_and_set(&lease_lock))
		sched_yield();
	got = lease((int64_t)(need > LEASE_CHUNK ? need : LEASE_CHUNK));
	atomic_flag_clear(&lease_lock);
	return got > 0 ? (uint64_t)got : 0;
}

void usm_inline_wake_faults(bool freed)
{
	if (freed)
		atomic_store(&short_since, 0);
	atomic_fetch_add(&frames_seq, 1);
	raw_syscall6(SYS_futex, (long)&frames_seq, FUTEX_WAKE, INT_MAX, 0, 0, 0);
}

/* Wait up to ns for frames to come free (or for another thread's window,
 * which the retry then finds mapped). */
static void wait_frames(uint32_t seen, long ns)
{
	struct timespec ts = { ns / 1000000000, ns % 1000000000 };

	raw_syscall6(SYS_futex, (long)&frames_seq, FUTEX_WAIT, (long)seen, (long)&ts, 0, 0);
}

/*
 * The instance asked for frames back (another process is short of them):
 * free ones first, then, with eviction on, pages of ours evicted for the
 * rest.  The faulting threads look at each fault, the reclaimer thread at
 * each tick (an idle process answers too).
 */
static void honor_recall(void)
{
	int64_t want = usm_inst->host->recalled();
	uint64_t free_;

	if (want <= 0)
		return;
	free_ = frames_free_locked();
	if (evicting() && free_ < (uint64_t)want)
		usm_reclaim_pages(usm_inst, (uint64_t)want - free_);
	free_ = frames_free_locked();
	while (atomic_flag_test_and_set(&lease_lock))
		sched_yield();
	int64_t back = -lease(-(int64_t)(free_ < (uint64_t)want ? free_ : (uint64_t)want));
	atomic_flag_clear(&lease_lock);
	if (back < want)
		usm_inst->host->recall_short();
	usm_log(USM_LOG_DEBUG, "the instance asked for %lld frames back: %lld given",
		(long long)want, (long long)back);
}

void usm_inline_tick(void)
{
	honor_recall();
}

/* After frees: keep a chunk or two, give the rest back to the instance. */
static void trim(void)
{
	uint64_t free_ = frames_free_locked();

	if (free_ <= LEASE_HIGH || atomic_flag_test_and_set(&lease_lock))
		return;
	lease(-(int64_t)(free_ - LEASE_CHUNK));
	atomic_flag_clear(&lease_lock);
}

/*
 * With eviction on, mapping pages holds the layout lock for reading (see
 * core/inline_evict.c): a swap-in must not copy a page's old content into
 * an address the program has just unmapped and mapped again.
 */
static enum usm_fault_result resolve(struct usm_worker *w, uint64_t addr, unsigned write)
{
	enum usm_fault_result r;

	if (!evicting())
		return usm_fault_resolve(w, self, addr, write ? USM_FAULT_WRITE : 0, 0);
	usm_inline_layout_read();
	r = usm_fault_resolve(w, self, addr, write ? USM_FAULT_WRITE : 0, 0);
	usm_inline_layout_unlock();
	return r;
}

static int inline_fault(uint64_t addr, unsigned write)
{
	struct usm_worker *w = grab_slot();
	uint64_t t0 = usm_now_ns();
	enum usm_fault_result r;

	usm_count(&self->c.faults, 1);
	for (long wait = RETRY_FIRST_NS;; wait = wait * 2 > OOM_WAIT_NS ? OOM_WAIT_NS : wait * 2) {
		uint32_t seen = atomic_load(&frames_seq);

		if (atomic_load(&detaching)) {
			/* The agent is putting every page back and handing the
			 * memory to the kernel: retry the access until it has. */
			drop_slot(w);
			sched_yield();
			return 0;
		}
		honor_recall();
		top_up();
		if (direct_reclaim())
			usm_reclaim_direct(usm_inst, DIRECT_BATCH);
		r = resolve(w, addr, write);
		if (r != USM_FAULT_RETRY)
			break;
		/* Another thread is mapping pages here (short), or no frame:
		 * the reclaimer is evicting, or the instance deciding (oom
		 * wait/kill).  Frames coming free wake us. */
		if (evicting() && !usm_inst->direct_reclaim)
			usm_reclaim_kick(usm_inst);
		wait_frames(seen, wait);
	}
	drop_slot(w);
	if (r == USM_FAULT_FAILED)
		return -1;
	usm_fault_record_latency(self, t0);
	return 0;
}

static void inline_unmap(uint64_t start, uint64_t len)
{
	usm_fault_free(&slots[0], self, start, start + len, true);
	trim();
}

static void inline_remove(uint64_t start, uint64_t len)
{
	usm_fault_free(&slots[0], self, start, start + len, false);
	trim();
}

static void inline_remap(uint64_t from, uint64_t len, uint64_t to)
{
	usm_fault_remap(&slots[0], self, from, to, len);
}

static void inline_push_stats(void)
{
	struct usm_msg_stats_push m;

	uint64_t bloat;

	if (!self)
		return;
	if (self->track_bloat && !usm_bloat_sample(self->pid, &bloat))
		atomic_store_explicit(&self->bloat_pages, bloat, memory_order_relaxed);
	usm_msg_init(&m.h, USM_MSG_STATS_PUSH, sizeof(m));
	usm_counters_snapshot(&self->c, &self->lat, &m.c);
	m.c.bloat_pages = usm_read(&self->bloat_pages);
	for (unsigned i = 0; i < USM_HIST_BUCKETS; i++)
		m.hist[i] = usm_read(&self->lat.bucket[i]);
	memset(&m.swap, 0, sizeof(m.swap));
	m.access_scans = m.access_marked = m.access_scan_ns = 0;
	if (evicting()) {
		struct usm_access_stats as;
		usm_swap_stats(-1, &m.swap);
		usm_access_get_stats(&as);
		m.access_scans = as.scans;
		m.access_marked = as.pages_marked;
		m.access_scan_ns = as.scan_ns;
	}
	usm_inst->host->push(&m);
}

static int open_self_maps(void)
{
	return open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
}

static int make_self(pid_t pid, const char *comm, int uffd)
{
	self = calloc(1, sizeof(*self));
	slots = raw_map(NSLOTS * sizeof(*slots), PROT_READ | PROT_WRITE);
	if (!self || !slots)
		return -ENOMEM;
	self->pid = pid;
	snprintf(self->comm, sizeof(self->comm), "%s", comm);
	self->uffd = uffd;
	self->sock = self->rpc_sock = -1;
	self->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);    /* for MADV_COLD */
	self->maps_fd = open_self_maps();
	self->pagemap_fd = -1;
	self->inline_host = true;
	self->attached_ns = usm_now_ns();
	self->cfgline = usm_config_process_for(&usm_inst->cfg, comm);
	self->priority = usm_config_priority_for(&usm_inst->cfg, comm);
	self->limit_frames = usm_config_limit_for(&usm_inst->cfg, comm);
	self->chan_fd = -1;
	self->refs = 1;                 /* the host's own: never freed under it */
	pthread_mutex_init(&self->evict_mu, NULL);
	usm_pagemap_init(&self->pm);
	usm_list_init(&self->link);
	usm_list_add_tail(&self->link, &usm_inst->procs);
	for (int i = 0; i < NSLOTS; i++)
		slots[i].inst = usm_inst;
	return 0;
}

static int inline_start(const struct usm_inline_host *host, const char *config_text,
			pid_t pid, const char *comm, int uffd, char *err, size_t errlen)
{
	struct usm_config cfg;
	struct usm_instance *inst;
	struct usm_policy *pol;

	usm_log_set_tag("usm-inline");
	usm_config_defaults(&cfg);
	if (usm_config_parse(&cfg, config_text, "instance config", err, errlen) ||
	    usm_instance_create_host(&inst, "inline", &cfg, host, err, errlen)) {
		usm_config_free(&cfg);
		return -1;
	}
	if (make_self(pid, comm, uffd)) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (evicting() && usm_inline_evict_attach(self, err, errlen))
		return -1;
	usm_inst->direct_reclaim = evicting() && !usm_inst->cfg.reclaim_background;
	if (evicting())
		usm_access_track(self);
	pol = usm_instance_policy_of(self);
	if (pol->ops->usm_new_process)
		pol->ops->usm_new_process(self);
	lease(LEASE_CHUNK);
	return 0;
}

/*
 * In a fork child: the pages it inherited came from fork, not from us, and
 * the lease was the parent's.  Start over with the child's userfaultfd;
 * pages the parent had swapped out stay swapped out, in the child's own
 * copy of the devices (see core/inline_evict.c).
 */
static void inline_forked(pid_t pid, int uffd)
{
	uint64_t swapped = usm_read(&self->c.swapped_now);
	char err[256];

	pthread_mutex_init(&usm_inst->lock, NULL);
	pthread_mutex_init(&usm_inst->procs_lock, NULL);
	for (int i = 0; i < NSLOTS; i++) {
		atomic_store(&busy[i], 0);
		atomic_store(&slots[i].mapping_region, 0);
	}
	atomic_flag_clear(&lease_lock);
	atomic_store(&refused_at, 0);
	atomic_store(&recalling_at, 0);
	atomic_store(&short_since, 0);
	if (evicting()) {
		if (usm_inline_evict_fork_child(self, err, sizeof(err)))
			usm_log(USM_LOG_ERROR, "fork child %d: %s; its pages are not evicted", pid,
				err);
		usm_inst->reclaimer_running = false;     /* the thread stayed behind */
		usm_reclaim_sync_init(usm_inst);
	} else {
		usm_pagemap_destroy(&self->pm);
		usm_frames_fini(usm_inst);
		usm_frames_init(usm_inst);
	}
	usm_inst->cap = 0;
	usm_inst->reserve = 0;
	memset(&self->c, 0, sizeof(self->c));
	memset(&self->lat, 0, sizeof(self->lat));
	atomic_store(&self->c.swapped_now, swapped);
	self->pid = pid;
	self->uffd = uffd;
	self->vma_lo = self->vma_hi = 0;
	if (self->pidfd >= 0)
		close(self->pidfd);
	self->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (self->maps_fd >= 0)
		close(self->maps_fd);
	self->maps_fd = open_self_maps();
	usm_sentinel_close(self);       /* the parent's, opened as /proc/self */
	self->attached_ns = usm_now_ns();
	self->pool = NULL;              /* the agent builds the child's own */
	lease(LEASE_CHUNK);
}

/* After the agent's seccomp filter (see usm_evict_start_reclaimer). */
static void inline_start_threads(void)
{
	char err[256];

	if (evicting() && usm_evict_start_reclaimer(usm_inst, err, sizeof(err)))
		usm_log(USM_LOG_ERROR, "%s: pages are not evicted; the lease is all there is", err);
}

static int inline_evicting(void)
{
	return self && evicting();
}

static void inline_layout_begin(void)
{
	if (evicting())
		usm_inline_layout_write();
}

static void inline_layout_end(void)
{
	if (evicting())
		usm_inline_layout_unlock();
}

static void inline_fork_pause(void)
{
	if (evicting())
		usm_inline_round_begin();
}

static void inline_fork_resume(void)
{
	if (evicting())
		usm_inline_round_end();
}

/* After inline_fork_pause. */
static void inline_fork_prepare(void)
{
	if (evicting())
		usm_inline_evict_fork_prepare(self);
}

static void inline_fork_parent(void)
{
	if (evicting())
		usm_inline_evict_fork_parent(self);
}

/* Join the reclaimer thread, reading events meanwhile (see
 * usm_inline_layout_read_draining). */
static void stop_reclaimer(void)
{
	struct timespec ts;

	if (!usm_inst->reclaimer_running)
		return;
	for (;;) {
		usm_reclaim_kick(usm_inst);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		if (!pthread_timedjoin_np(usm_inst->reclaimer, NULL, &ts))
			break;
		usm_inst->host->drain_events();
	}
	usm_inst->reclaimer_running = false;
}

/*
 * The instance is gone, or stopped: put every swapped-out page back in
 * place (outside the budget, there is none any more) before the agent
 * hands the memory to the kernel.  Faulting threads keep retrying their
 * access meanwhile.
 */
static void inline_restore(void)
{
	struct usm_worker *w;
	uint64_t back, lost = 0;

	atomic_store(&detaching, true);
	if (!evicting())
		return;
	/* No round may move pages out behind the restore: stop the
	 * reclaimer thread, wait for a faulting thread's round in progress,
	 * hold off the others. */
	usm_inst->stopping = true;
	stop_reclaimer();
	usm_inline_round_begin_draining();
	w = grab_slot();
	back = usm_swapin_restore_all(w, self, &lost);
	drop_slot(w);
	usm_inline_round_end();
	/* Said whatever the log level, as the agent does (agent/evict.c). */
	if (back || lost)
		usm_log(lost ? USM_LOG_ERROR : USM_LOG_WARN, "restored %llu swapped-out page(s)%s",
			(unsigned long long)back,
			lost ? "; some could not be put back and read as zero" : "");
}

/* Every page of [start, end) present (mincore)? */
static bool all_resident(uint64_t start, uint64_t end)
{
	unsigned char vec[64];

	for (uint64_t va = start; va < end; va += sizeof(vec) * 4096) {
		uint64_t n = (end - va) / 4096 < sizeof(vec) ? (end - va) / 4096 : sizeof(vec);
		if (raw_is_error(raw_syscall6(SYS_mincore, (long)va, (long)(n * 4096), (long)vec,
					      0, 0, 0)))
			return false;
		for (uint64_t i = 0; i < n; i++)
			if (!(vec[i] & 1))
				return false;
	}
	return true;
}

static void forget_frame(uint64_t va, struct usm_page *v, void *arg)
{
	(void)arg;
	if (usm_pm_is_swap(v) || v->state != USM_PAGE_MAPPED)
		return;
	usm_pagemap_take(&self->pm, va);
	usm_frame_release(v);
	usm_count(&self->c.kernel_pages, 1);
}

/*
 * Hand [start, start + len) to the kernel with every byte in place: the
 * pages are touched (faulted or swapped in as usual), and once they are
 * all present with nothing moving (the layout lock), their frames are
 * forgotten and the range unregistered.  The memory is outside the budget
 * from then on, as a thread stack is.
 */
static int inline_release(uint64_t start, uint64_t len)
{
	uint64_t end = start + len;

	for (int tries = 0; tries < 100; tries++) {
		for (uint64_t va = start; va < end; va += 4096)
			(void)*(volatile const char *)(uintptr_t)va;
		inline_layout_begin();
		if (all_resident(start, end)) {
			pthread_mutex_lock(&usm_inst->lock);
			usm_pagemap_walk(&self->pm, start, end, forget_frame, NULL);
			pthread_mutex_unlock(&usm_inst->lock);
			int rc = usm_uffd_unregister(self->uffd, start, len);
			inline_layout_end();
			return rc;
		}
		inline_layout_end();
	}
	usm_log(USM_LOG_WARN, "alternate signal stack at 0x%llx: its pages keep going away; "
		"left to USM", (unsigned long long)start);
	return -EAGAIN;
}

static int inline_wants_pool(void)
{
	return self && self->want_pool;
}

static int inline_wants_sentinels(void)
{
	return self && self->want_sentinels;
}

static void inline_pool_ready(struct usm_thp_pool *pool)
{
	self->pool = pool;
}

/* The table the agent finds with dlsym(USM_INLINE_API_SYMBOL). */
const struct usm_inline_api usm_inline_api = {
	.start = inline_start,
	.fault = inline_fault,
	.unmap = inline_unmap,
	.remove = inline_remove,
	.remap = inline_remap,
	.push_stats = inline_push_stats,
	.forked = inline_forked,
	.wants_pool = inline_wants_pool,
	.wants_sentinels = inline_wants_sentinels,
	.pool_ready = inline_pool_ready,
	.start_threads = inline_start_threads,
	.evicting = inline_evicting,
	.layout_begin = inline_layout_begin,
	.layout_end = inline_layout_end,
	.fork_pause = inline_fork_pause,
	.fork_resume = inline_fork_resume,
	.fork_prepare = inline_fork_prepare,
	.fork_parent = inline_fork_parent,
	.restore = inline_restore,
	.release = inline_release,
	.pin = usm_inline_pin,
	.unpin = usm_inline_unpin,
};
