/* SPDX-License-Identifier: MIT */
/*
 * core/inline.c - the in-process host: one instance inside the managed
 * process, serving faults in the faulting thread (see core/inline.h).
 */
#include "core/inline.h"
#include "core/instance.h"
#include "mech/rawsys.h"

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

void usm_log_set_tag(const char *t);

static struct usm_process *self;
static struct usm_worker *slots;          /* per-thread resolve plans */
static _Atomic int busy[NSLOTS];
static atomic_flag lease_lock = ATOMIC_FLAG_INIT;

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

/* Change how many frames this host may hold, through the instance. */
static void lease(int64_t delta)
{
	int64_t granted = 0;

	if (usm_inst->host->lease(delta, &granted) < 0)
		return;
	pthread_mutex_lock(&usm_inst->lock);
	usm_inst->cap = (uint64_t)((int64_t)usm_inst->cap + granted);
	pthread_mutex_unlock(&usm_inst->lock);
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

	if (n >= LEASE_LOW)
		return;
	while (atomic_flag_test_and_set(&lease_lock)) {
		if (n >= USM_MAX_BATCH)
			return;
		sched_yield();
		n = frames_free_locked();
	}
	if (frames_free_locked() < LEASE_LOW)
		lease(next_chunk());
	atomic_flag_clear(&lease_lock);
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

static void pause_ns(long ns)
{
	struct timespec ts = { 0, ns };

	nanosleep(&ts, NULL);
}

static int inline_fault(uint64_t addr, unsigned write)
{
	struct usm_worker *w = grab_slot();
	uint64_t t0 = usm_now_ns();
	enum usm_fault_result r;

	usm_count(&self->c.faults, 1);
	for (long wait = RETRY_FIRST_NS;; wait = wait * 2 > OOM_WAIT_NS ? OOM_WAIT_NS : wait * 2) {
		top_up();
		r = usm_fault_resolve(w, self, addr, write ? USM_FAULT_WRITE : 0, 0);
		if (r != USM_FAULT_RETRY)
			break;
		/* Another thread is moving a 2 MiB page here (short), or no
		 * frame: the instance is deciding (oom wait/kill). */
		pause_ns(wait);
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
	self->inline_host = true;
	self->attached_ns = usm_now_ns();
	self->cfgline = usm_config_process_for(&usm_inst->cfg, comm);
	self->priority = usm_config_priority_for(&usm_inst->cfg, comm);
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
	pol = usm_instance_policy_of(self);
	if (pol->ops->usm_new_process)
		pol->ops->usm_new_process(self);
	lease(LEASE_CHUNK);
	return 0;
}

/*
 * In a fork child: the pages it inherited came from fork, not from us, and
 * the lease was the parent's.  Start over with the child's userfaultfd.
 */
static void inline_forked(pid_t pid, int uffd)
{
	pthread_mutex_init(&usm_inst->lock, NULL);
	for (int i = 0; i < NSLOTS; i++)
		atomic_store(&busy[i], 0);
	atomic_flag_clear(&lease_lock);
	usm_pagemap_destroy(&self->pm);
	usm_frames_fini(usm_inst);
	usm_frames_init(usm_inst);
	usm_inst->cap = 0;
	memset(&self->c, 0, sizeof(self->c));
	memset(&self->lat, 0, sizeof(self->lat));
	self->pid = pid;
	self->uffd = uffd;
	self->vma_lo = self->vma_hi = 0;
	if (self->pidfd >= 0)
		close(self->pidfd);
	self->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (self->maps_fd >= 0)
		close(self->maps_fd);
	self->maps_fd = open_self_maps();
	self->attached_ns = usm_now_ns();
	self->pool = NULL;              /* the agent builds the child's own */
	lease(LEASE_CHUNK);
}

static int inline_wants_pool(void)
{
	return self && self->want_pool;
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
	.pool_ready = inline_pool_ready,
};
