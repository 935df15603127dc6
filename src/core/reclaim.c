/* SPDX-License-Identifier: MIT */
/*
 * core/reclaim.c - the reclaimer thread: keeps free frames between the
 * watermarks so that faults rarely wait for an eviction.
 *
 * Once free frames drop below the low watermark it asks the swap policy
 * for victims until the high watermark is reached (plus what the policy
 * evicts on its own through cond_swap_out), queues them on their
 * processes' channels, and collects the agents' answers.  A fault that
 * finds no frame waits (pending on its worker) and kicks the reclaimer.
 * When nothing can be evicted — the policy has no victim left, or the
 * devices are full — the instance is "stuck" and waiting faults go to the
 * OOM policy.
 */
#include "core/access.h"
#include "core/instance.h"
#include "swap/swapdev.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TICK_NS          (100 * 1000000ull)   /* idle period */
#define POLL_NS          (300 * 1000ull)      /* while agents work */
#define VICTIMS_PER_ROUND 512
#define SCAN_NS          (200 * 1000000ull)   /* access tracking period */
#define UNPIN_NS         (5000 * 1000000ull)  /* pinned pages tried again */
#define SCAN_ABOVE_PCT   50                   /* ... once the budget is this full */

void usm_reclaim_kick(struct usm_instance *inst)
{
	/* With direct reclaim, frames short are the faulting thread's job. */
	if (!inst->reclaimer_running || inst->direct_reclaim)
		return;
	pthread_mutex_lock(&inst->reclaim_mu);
	inst->reclaim_kicked = true;
	pthread_cond_signal(&inst->reclaim_cv);
	pthread_mutex_unlock(&inst->reclaim_mu);
}

static void wait_tick(struct usm_instance *inst, uint64_t ns)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_nsec += (long)ns;
	ts.tv_sec += ts.tv_nsec / 1000000000;
	ts.tv_nsec %= 1000000000;
	pthread_mutex_lock(&inst->reclaim_mu);
	while (!inst->reclaim_kicked && !inst->stopping)
		if (pthread_cond_timedwait(&inst->reclaim_cv, &inst->reclaim_mu, &ts) == ETIMEDOUT)
			break;
	inst->reclaim_kicked = false;
	pthread_mutex_unlock(&inst->reclaim_mu);
}

/* The attached processes with a channel, each with a reference. */
static size_t grab_processes(struct usm_instance *inst, struct usm_process ***out)
{
	struct usm_list_head *pos;
	size_t n = 0, cap = 0;
	struct usm_process **v = NULL;

	pthread_mutex_lock(&inst->procs_lock);
	usm_list_for_each(pos, &inst->procs) {
		struct usm_process *p = usm_list_entry(pos, struct usm_process, link);
		if (p->dead || !p->chan)
			continue;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 16;
			void *nv = realloc(v, nc * sizeof(*v));
			if (!nv)
				break;
			v = nv;
			cap = nc;
		}
		atomic_fetch_add(&p->refs, 1);
		v[n++] = p;
	}
	pthread_mutex_unlock(&inst->procs_lock);
	*out = v;
	return n;
}

static void put_processes(struct usm_process **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		usm_process_put(v[i]);
	free(v);
}

/* Settle every agent's answers; returns requests still outstanding. */
static uint64_t collect_all(struct usm_process **procs, size_t n)
{
	uint64_t left = 0;

	for (size_t i = 0; i < n; i++) {
		struct usm_process *p = procs[i];
		pthread_mutex_lock(&p->evict_mu);
		left += usm_evict_collect(p);
		pthread_mutex_unlock(&p->evict_mu);
	}
	return left;
}

/* inst->lock held: a victim the policy handed over, checked.  The daemon
 * evicts from processes of its own host; an in-process host from itself
 * (its frames are leased: the daemon's policy never sees them). */
static bool victim_ok(const struct usm_page *pg)
{
	return pg->state == USM_PAGE_MAPPED && pg->proc && !pg->proc->exiting &&
	       (!pg->proc->inline_host || usm_inst->host) && pg->proc->chan;
}

/* inst->lock held: queue the victims; the others go back to the policy. */
static unsigned queue_victims(struct usm_page **v, unsigned n)
{
	unsigned queued = 0;

	for (unsigned i = 0; i < n; i++) {
		struct usm_page *pg = v[i];
		pg->fw_flags &= ~USM_PG_TRACKED;   /* the policy let it go */
		if (victim_ok(pg) && usm_evict_queue(pg))
			queued++;
		else if (pg->state == USM_PAGE_MAPPED)
			usm_evict_track(pg);
	}
	return queued;
}

static unsigned choose_victims(struct usm_instance *inst, uint64_t need)
{
	const struct usm_swap_policy_ops *ops = inst->swap_policy->ops;
	static struct usm_page *v[VICTIMS_PER_ROUND];
	unsigned n = 0, queued;

	pthread_mutex_lock(&inst->lock);
	if (need)
		n = ops->usm_evict_fallback(v, need < VICTIMS_PER_ROUND ? (unsigned)need
								 : VICTIMS_PER_ROUND);
	else if (ops->cond_swap_out)
		n = ops->cond_swap_out(v, VICTIMS_PER_ROUND);
	if (n > VICTIMS_PER_ROUND)
		n = VICTIMS_PER_ROUND;
	queued = queue_victims(v, n);
	pthread_mutex_unlock(&inst->lock);
	return queued;
}

/* The queued victims leave their processes: each agent moves its own
 * out (daemon host), or the in-process host does it here and now. */
static void kick_agents(struct usm_instance *inst, struct usm_process **procs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (inst->host)
			usm_inline_move_queued(procs[i]);
		else
			usm_evict_kick_agent(procs[i]);
}

/* Frames came free (or the instance is stuck: the OOM policy decides):
 * faults waiting for one try again. */
static void kick_workers(struct usm_instance *inst, bool freed)
{
	for (unsigned i = 0; i < inst->nworkers; i++)
		usm_worker_kick(&inst->workers[i]);
	if (inst->host)
		usm_inline_wake_faults(freed);
}

/* Headroom kept under a process's `limit`, so that it does not stop at
 * every fault once it reached the limit. */
#define LIMIT_SLACK 64

struct limit_walk {
	uint64_t want, queued, last;
};

static void limit_pick(uint64_t va, struct usm_page *pg, void *arg)
{
	struct limit_walk *lw = arg;

	if (lw->queued >= lw->want || usm_pm_is_swap(pg) || pg->state != USM_PAGE_MAPPED ||
	    !(pg->fw_flags & USM_PG_TRACKED))
		return;
	usm_evict_untrack(pg);
	if (!usm_evict_queue(pg)) {
		usm_evict_track(pg);
		lw->want = lw->queued;          /* channel full: next round */
		return;
	}
	lw->queued++;
	lw->last = va + 1;
}

/*
 * inst->lock held.  Victims of one process over its `limit`: the policy
 * orders every process's pages together, so the framework picks these
 * itself, in address order from where its last round stopped.
 */
static uint64_t queue_own_pages(struct usm_process *p, uint64_t want)
{
	struct limit_walk lw = { want, 0, p->limit_cursor };

	usm_pagemap_walk(&p->pm, p->limit_cursor, UINT64_MAX, limit_pick, &lw);
	if (lw.queued < lw.want)
		usm_pagemap_walk(&p->pm, 0, p->limit_cursor, limit_pick, &lw);
	p->limit_cursor = lw.last;
	return lw.queued;
}

/*
 * Processes over (or at) their `limit` give back pages of their own.  One
 * that cannot (devices full, nothing of its own evictable) is marked
 * limit_stuck: its faults then take frames beyond its limit rather than
 * wait for ever.
 */
static uint64_t enforce_limits(struct usm_instance *inst, struct usm_process **procs, size_t n,
			       bool full)
{
	uint64_t queued = 0;

	pthread_mutex_lock(&inst->lock);
	for (size_t i = 0; i < n; i++) {
		struct usm_process *p = procs[i];
		uint64_t held = usm_read(&p->c.frames_in_use), got = 0;
		uint64_t floor = p->limit_frames > LIMIT_SLACK ? p->limit_frames - LIMIT_SLACK : 0;

		if (!p->limit_frames || p->exiting || held + p->ninflight <= floor) {
			p->limit_stuck = false;
			continue;
		}
		if (!full)
			got = queue_own_pages(p, held - floor > p->ninflight
						 ? held - floor - p->ninflight : 0);
		queued += got;
		p->limit_stuck = !got && !p->ninflight && held >= p->limit_frames;
		if (p->limit_stuck && !p->warned_limit) {
			p->warned_limit = true;
			usm_log(USM_LOG_WARN, "pid %d (%s) is at its limit of %llu frames and "
				"nothing of it can be evicted%s: it goes over its limit", p->pid,
				p->comm, (unsigned long long)p->limit_frames,
				full ? " (swap devices full)" : "");
		}
	}
	pthread_mutex_unlock(&inst->lock);
	return queued;
}

/* The frame counts belong to the policy lock; the reclaimer reads them
 * between its rounds. */
static uint64_t frames_free_now(struct usm_instance *inst)
{
	uint64_t n;

	pthread_mutex_lock(&inst->lock);
	n = usm_frames_free();
	pthread_mutex_unlock(&inst->lock);
	return n;
}

static unsigned budget_used_now(struct usm_instance *inst)
{
	unsigned pct;

	pthread_mutex_lock(&inst->lock);
	pct = usm_budget_used_pct();
	pthread_mutex_unlock(&inst->lock);
	return pct;
}

/* Frames to free now: up to the high watermark once below the low one. */
static uint64_t frames_needed(struct usm_instance *inst, uint64_t inflight, bool *reclaiming)
{
	uint64_t free_now = frames_free_now(inst) + inflight;

	if (free_now < inst->wm_low)
		*reclaiming = true;
	if (free_now >= inst->wm_high)
		*reclaiming = false;
	return *reclaiming ? inst->wm_high - free_now : 0;
}

/* The devices were full at the last store: are they still? */
static bool devices_full(struct usm_instance *inst)
{
	uint64_t at = atomic_load(&inst->swap_full_at);

	if (at && usm_swap_slots_used() + 1 < at)
		atomic_store(&inst->swap_full_at, 0);     /* slots were freed */
	return atomic_load(&inst->swap_full_at) != 0;
}

/*
 * In the process itself, growing the lease beats evicting: the instance
 * may have frames to spare.  Returns what is still needed after that.
 */
static uint64_t after_lease(struct usm_instance *inst, uint64_t need)
{
	uint64_t got;

	if (!inst->host || !need)
		return need;
	got = usm_inline_lease_more(need);
	return got >= need ? 0 : need - got;
}

/* At most max victims this round. */
static void reclaim_round(struct usm_instance *inst, bool *reclaiming, uint64_t *outstanding,
			  uint64_t max)
{
	struct usm_process **procs;
	size_t n = grab_processes(inst, &procs);
	uint64_t before = frames_free_now(inst), need, queued = 0, after;

	*outstanding = collect_all(procs, n);
	need = frames_needed(inst, *outstanding, reclaiming);
	need = after_lease(inst, need > max ? max : need);
	bool full = devices_full(inst);

	/* In the process, a limit caps the lease instead (core/inline.c). */
	if (!inst->host)
		queued = enforce_limits(inst, procs, n, full);
	if (!full && (need || !*outstanding))
		queued += choose_victims(inst, need);
	if (queued) {
		kick_agents(inst, procs, n);
		*outstanding += queued;
	}
	/* The in-process host moved them out just now: store them now. */
	if (inst->host && queued)
		*outstanding = collect_all(procs, n);
	/* Nothing in flight, nothing chosen, and still short: stuck. */
	after = frames_free_now(inst);
	atomic_store(&inst->reclaim_stuck, need && !queued && !*outstanding &&
		     after < inst->wm_low);
	if (after > before || atomic_load(&inst->reclaim_stuck))
		kick_workers(inst, after > before);
	put_processes(procs, n);
}

/*
 * In the process itself, a faulting thread that finds free frames below
 * the low watermark evicts a batch on its own (like the kernel's direct
 * reclaim).  On a virtual machine a page moved out from another CPU than
 * the program's costs a TLB-shootdown IPI, about 14 us here, far more
 * than the move itself; moved out from the program's own thread, the
 * flush is local whenever no other thread of the program runs meanwhile.
 */
void usm_reclaim_direct(struct usm_instance *inst, unsigned max)
{
	bool reclaiming = true;
	uint64_t outstanding;

	usm_inline_round_begin();
	if (frames_free_now(inst) < inst->wm_low)
		reclaim_round(inst, &reclaiming, &outstanding, max);
	usm_inline_round_end();
}

void usm_reclaim_pages(struct usm_instance *inst, uint64_t want)
{
	struct usm_process **procs;
	size_t n;

	usm_inline_round_begin();
	n = grab_processes(inst, &procs);
	collect_all(procs, n);
	while (want) {
		uint64_t queued = choose_victims(inst, want < VICTIMS_PER_ROUND ? want
								: VICTIMS_PER_ROUND);
		if (!queued)
			break;
		kick_agents(inst, procs, n);
		collect_all(procs, n);
		want -= queued < want ? queued : want;
	}
	put_processes(procs, n);
	usm_inline_round_end();
	kick_workers(inst, true);
}

/* Has the policy called usm_page_referenced since we last looked? */
static bool policy_asked(struct usm_instance *inst, uint64_t *seen)
{
	uint64_t now;

	pthread_mutex_lock(&inst->lock);
	now = inst->referenced_asked;
	pthread_mutex_unlock(&inst->lock);
	if (now == *seen)
		return false;
	*seen = now;
	return true;
}

static void *reclaimer_main(void *arg)
{
	struct usm_instance *inst = arg;
	bool reclaiming = false;
	uint64_t outstanding = 0, last_expire = usm_now_ns(), last_scan = 0, asked = 0;
	uint64_t last_unpin = usm_now_ns();

	while (!inst->stopping) {
		/* The in-process host evicts synchronously: while it is below
		 * its high watermark, the next round follows at once. */
		if (!(inst->host && reclaiming && !inst->direct_reclaim))
			wait_tick(inst, outstanding ? POLL_NS : TICK_NS);
		if (inst->stopping)
			break;
		/* What was written lately, for the policy's choice: it costs
		 * the program minor faults, so only once memory is filling up
		 * and only for a policy that asked (fifo never does). */
		if (usm_now_ns() - last_scan > SCAN_NS && budget_used_now(inst) >= SCAN_ABOVE_PCT &&
		    policy_asked(inst, &asked)) {
			usm_access_scan(inst);
			last_scan = usm_now_ns();
		}
		if (inst->host) {
			usm_inline_tick();
			usm_inline_round_begin();
		}
		/* With direct reclaim the faulting threads evict for the
		 * watermarks; this thread only scans and asks cond_swap_out. */
		reclaim_round(inst, &reclaiming, &outstanding,
			      inst->direct_reclaim ? 0 : VICTIMS_PER_ROUND);
		if (inst->host)
			usm_inline_round_end();
		if (usm_now_ns() - last_expire > 1000000000ull) {
			usm_evict_forks_expire(inst);
			last_expire = usm_now_ns();
		}
		if (usm_now_ns() - last_unpin > UNPIN_NS) {
			pthread_mutex_lock(&inst->lock);
			usm_evict_unpin_all(inst);
			pthread_mutex_unlock(&inst->lock);
			last_unpin = usm_now_ns();
		}
	}
	return NULL;
}

static uint64_t pct_of(uint64_t total, unsigned pct, uint64_t min)
{
	uint64_t v = total * pct / 100;

	return v < min ? min : v;
}

bool usm_evict_enabled(const struct usm_instance *inst)
{
	return inst->swap_policy != NULL;
}

/*
 * The reclaimer thread.  In the process itself it must be started after
 * the agent's seccomp filter (core/inline.c): a thread glibc is still
 * setting up, all signals blocked, would be killed by its first trap.
 * Program signals never run on it; SIGSYS (the agent's traps) and the
 * fault signals must reach it.
 */
int usm_evict_start_reclaimer(struct usm_instance *inst, char *err, size_t errlen)
{
	sigset_t all, old;
	int rc;

	if (!inst->swap_policy || inst->reclaimer_running)
		return 0;
	sigfillset(&all);
	sigdelset(&all, SIGSYS);
	sigdelset(&all, SIGBUS);
	sigdelset(&all, SIGSEGV);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&inst->reclaimer, NULL, reclaimer_main, inst);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		snprintf(err, errlen, "cannot start the reclaimer: %s", strerror(rc));
		return -rc;
	}
	inst->reclaimer_running = true;
	usm_thread_name(inst->reclaimer, "usm-reclaim", -1);
	return 0;
}

/* The reclaimer's kick (wait_tick's clock is CLOCK_MONOTONIC); also for a
 * fork child of the in-process host, whose copy may be held. */
void usm_reclaim_sync_init(struct usm_instance *inst)
{
	pthread_condattr_t ca;

	pthread_mutex_init(&inst->reclaim_mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&inst->reclaim_cv, &ca);
	pthread_condattr_destroy(&ca);
	inst->reclaim_kicked = false;
}

static void set_watermarks(struct usm_instance *inst)
{
	const struct usm_config *cfg = &inst->cfg;

	inst->wm_low = pct_of(inst->nframes, cfg->wm_low_pct, 64);
	inst->wm_high = pct_of(inst->nframes, cfg->wm_high_pct, inst->wm_low + 64);
	if (inst->wm_high > inst->nframes / 2)
		inst->wm_high = inst->nframes / 2;
	if (inst->wm_low > inst->wm_high)
		inst->wm_low = inst->wm_high;
}

int usm_evict_start(struct usm_instance *inst, char *err, size_t errlen)
{
	const struct usm_config *cfg = &inst->cfg;
	const char *name = cfg->swap_policy[0] ? cfg->swap_policy : "fifo";
	struct usm_swap_policy *sp;
	int rc;

	if (!cfg->nswapdevs)
		return 0;
	sp = usm_registry_find_swap(name);
	if (!sp) {
		char known[256];
		usm_registry_swap_names(known, sizeof(known));
		snprintf(err, errlen, "%s:%d: unknown swap policy '%s' (registered: %s)",
			 cfg->source, cfg->swap_policy_line, name, known);
		return -EINVAL;
	}
	/* In the process itself the devices live in its own memory. */
	rc = usm_swap_init_mode(cfg->swapdevs, cfg->nswapdevs, cfg->page_size,
				inst->host ? USM_SWAP_PRIVATE : USM_SWAP_SHARED, err, errlen);
	if (rc) {
		char why[256];
		snprintf(why, sizeof(why), "%s", err);
		snprintf(err, errlen, "%s: %s", cfg->source, why);
		return rc;
	}
	if (sp->ops->usm_init && !sp->initialised && sp->ops->usm_init() != USM_OK) {
		snprintf(err, errlen, "swap policy %s failed to initialise", sp->name);
		usm_swap_fini();
		return -EINVAL;
	}
	sp->initialised = 1;
	inst->swap_policy = sp;
	if (usm_access_init(inst, err, errlen))
		usm_log(USM_LOG_WARN, "%s", err);
	err[0] = '\0';
	set_watermarks(inst);
	usm_reclaim_sync_init(inst);
	if (!inst->host) {
		rc = usm_evict_start_reclaimer(inst, err, errlen);
		if (rc) {
			usm_swap_fini();
			inst->swap_policy = NULL;
			return rc;
		}
	}
	usm_log(USM_LOG_INFO, "eviction: swap policy %s, %u device(s), watermarks %llu/%llu "
		"free frames", sp->name, cfg->nswapdevs, (unsigned long long)inst->wm_low,
		(unsigned long long)inst->wm_high);
	return 0;
}

void usm_evict_stop(struct usm_instance *inst)
{
	if (inst->reclaimer_running) {
		usm_reclaim_kick(inst);
		pthread_join(inst->reclaimer, NULL);
		inst->reclaimer_running = false;
	}
}

/* After every process is gone. */
void usm_evict_fini(struct usm_instance *inst)
{
	if (!inst->swap_policy)
		return;
	usm_evict_forks_fini(inst);
	usm_access_fini();
	if (inst->swap_policy->ops->usm_exit)
		inst->swap_policy->ops->usm_exit();
	inst->swap_policy = NULL;
	usm_swap_fini();
}
