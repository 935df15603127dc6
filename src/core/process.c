/* SPDX-License-Identifier: MIT */
/*
 * core/process.c - processes attached to the instance.
 */
#include "core/access.h"
#include "core/instance.h"
#include "core/trace.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

static int pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int open_maps(pid_t pid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	return open(path, O_RDONLY | O_CLOEXEC);
}

static struct usm_policy *choose_policy(struct usm_instance *inst,
					const struct usm_msg_hello *h,
					char *err, size_t errlen)
{
	const char *name = h->policy[0] ? h->policy
					: usm_config_policy_for(&inst->cfg, h->comm);
	struct usm_policy *pol;
	char known[256];

	if (!name)
		return NULL;           /* follow the instance default */
	pol = usm_registry_find_alloc(name);
	if (!pol) {
		usm_registry_names(known, sizeof(known));
		snprintf(err, errlen, "unknown policy '%s' (registered: %s)", name, known);
	}
	return pol;
}

struct usm_process *usm_process_new(struct usm_instance *inst, const struct usm_msg_hello *h,
				    int uffd, int sock, char *err, size_t errlen)
{
	struct usm_process *p = calloc(1, sizeof(*p));

	if (!p) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	err[0] = '\0';
	p->policy = choose_policy(inst, h, err, errlen);
	if (err[0]) {
		free(p);
		return NULL;
	}
	p->pidfd = pidfd_open_(h->pid);
	if (p->pidfd < 0) {
		snprintf(err, errlen, "pidfd_open(%d): %s", h->pid, strerror(errno));
		free(p);
		return NULL;
	}
	p->maps_fd = open_maps(h->pid);
	p->pagemap_fd = -1;
	p->pid = h->pid;
	memcpy(p->comm, h->comm, sizeof(p->comm));
	p->comm[sizeof(p->comm) - 1] = '\0';
	p->cfgline = usm_config_process_for(&inst->cfg, p->comm);
	p->limit_frames = usm_config_limit_for(&inst->cfg, p->comm);
	p->priority = usm_config_priority_for(&inst->cfg, p->comm);
	p->uffd = uffd;
	p->sock = sock;
	p->attached_ns = usm_now_ns();
	usm_pagemap_init(&p->pm);
	usm_list_init(&p->link);
	usm_list_init(&p->inbox_link);
	p->w_uffd = (struct usm_watch){ WATCH_UFFD, p };
	p->w_sock = (struct usm_watch){ WATCH_SOCK, p };
	p->w_pidfd = (struct usm_watch){ WATCH_PIDFD, p };
	p->w_rpc = (struct usm_watch){ WATCH_RPC, p };
	p->rpc_sock = -1;
	p->lease_fd = -1;
	p->chan_fd = -1;
	p->refs = 1;
	pthread_mutex_init(&p->evict_mu, NULL);
	p->inline_host = (h->flags & USM_HELLO_INLINE) != 0;

	pthread_mutex_lock(&inst->lock);
	struct usm_policy *pol = usm_instance_policy_of(p);
	if (pol->ops->usm_new_process)
		pol->ops->usm_new_process(p);
	pthread_mutex_unlock(&inst->lock);

	if (!p->inline_host)
		usm_trace_attach(p);

	pthread_mutex_lock(&inst->procs_lock);
	usm_list_add_tail(&p->link, &inst->procs);
	pthread_mutex_unlock(&inst->procs_lock);
	usm_log(USM_LOG_INFO, "attached pid %d (%s), policy %s", p->pid, p->comm, pol->name);
	return p;
}

void usm_counters_snapshot(const struct usm_counters *c, const struct usm_hist *h,
			   struct usm_stat_counters *o)
{
	memset(o, 0, sizeof(*o));
	o->faults = usm_read(&c->faults);
	o->pages_mapped = usm_read(&c->pages_mapped);
	o->frames_in_use = usm_read(&c->frames_in_use);
	o->frames_peak = usm_read(&c->frames_peak);
	o->ev_remove = usm_read(&c->ev_remove);
	o->ev_unmap = usm_read(&c->ev_unmap);
	o->ev_remap = usm_read(&c->ev_remap);
	o->pages_freed = usm_read(&c->pages_freed);
	o->oom_events = usm_read(&c->oom_events);
	o->kernel_pages = usm_read(&c->kernel_pages);
	o->eexist = usm_read(&c->eexist);
	o->huge_pages = usm_read(&c->huge_pages);
	o->evicted = usm_read(&c->evicted);
	o->swapin_faults = usm_read(&c->swapin_faults);
	o->swapped_in = usm_read(&c->swapped_in);
	o->swapcache_hits = usm_read(&c->swapcache_hits);
	o->swapped_now = usm_read(&c->swapped_now);
	o->evict_failed = usm_read(&c->evict_failed);
	o->copier_windows = usm_read(&c->copier_windows);
	o->reserve_frames = usm_read(&c->reserve_frames);
	o->lat_p50_ns = usm_hist_quantile(h, 0.50);
	o->lat_p99_ns = usm_hist_quantile(h, 0.99);
	o->lat_max_ns = usm_hist_quantile(h, 1.0);
}

void usm_process_snapshot(const struct usm_process *p, struct usm_stat_proc *out)
{
	memset(out, 0, sizeof(*out));
	out->pid = p->pid;
	out->alive = !p->dead;
	out->inline_host = p->inline_host;
	memcpy(out->comm, p->comm, sizeof(out->comm));
	/* A process without its own policy follows the instance default. */
	snprintf(out->policy, sizeof(out->policy), "%s",
		 p->policy ? p->policy->name : usm_inst->default_policy->name);
	out->attached_ns = usm_now_ns() - p->attached_ns;
	usm_counters_snapshot(&p->c, &p->lat, &out->c);
	out->c.rss_anon_peak_pages = p->rss_anon_peak;
	out->c.usm_pages_at_peak = p->usm_at_peak;
	out->c.bloat_pages = usm_read(&p->bloat_pages);
}

static void release_all_cb(uint64_t va, struct usm_page *pg, void *arg)
{
	struct usm_process *p = arg;

	/* The instance is stopping, the process is not: its swapped-out
	 * pages stay in the swap table, where its agent reads them back
	 * when our end of the socket closes. */
	if (usm_pm_is_swap(pg) && usm_inst->stopping) {
		usm_pagemap_take(&p->pm, va);
		return;
	}
	usm_fault_drop_entry(p, va);
}

static void remember(struct usm_instance *inst, struct usm_process *p)
{
	if (!inst->history)
		inst->history = calloc(USM_HISTORY_MAX, sizeof(*inst->history));
	if (!inst->history)
		return;
	usm_process_snapshot(p, &inst->history[inst->history_next]);
	inst->history[inst->history_next].alive = 0;
	inst->history_next = (inst->history_next + 1) % USM_HISTORY_MAX;
	if (inst->history_len < USM_HISTORY_MAX)
		inst->history_len++;
}

/*
 * The process exited or exec'd (its agent connection ended).  Runs on the
 * owning worker.  The caller frees p after the current epoll batch.
 */
void usm_process_teardown(struct usm_process *p)
{
	struct usm_instance *inst = usm_inst;
	struct usm_worker *w = p->worker;

	if (p->dead)
		return;
	usm_copier_drain(p);            /* copiers use its userfaultfd */
	if (w) {
		epoll_ctl(w->epfd, EPOLL_CTL_DEL, p->uffd, NULL);
		epoll_ctl(w->epfd, EPOLL_CTL_DEL, p->sock, NULL);
		epoll_ctl(w->epfd, EPOLL_CTL_DEL, p->pidfd, NULL);
		usm_drop_pending(w, p);
		usm_place_forget(w, p);
	}

	if (p->chan)
		usm_access_untrack(p);      /* its own lock, before ours */
	/* Under the policy lock: from here on no policy (on any worker) can
	 * reach p through usm_process_for_each, nor look at its pagemap.
	 * The channel lock first: the reclaimer may be storing p's pages. */
	pthread_mutex_lock(&p->evict_mu);
	pthread_mutex_lock(&inst->lock);
	p->exiting = true;
	struct usm_policy *pol = usm_instance_policy_of(p);
	if (pol->ops->usm_process_exit)
		pol->ops->usm_process_exit(p);
	usm_pagemap_walk(&p->pm, 0, UINT64_MAX, release_all_cb, p);
	usm_pagemap_destroy(&p->pm);
	usm_evict_exit(p);
	usm_inline_release(p);
	usm_pool_detach(p);
	if (p->inline_host)         /* its last push predates the exit */
		atomic_store_explicit(&p->c.frames_in_use, 0, memory_order_relaxed);
	pthread_mutex_unlock(&inst->lock);
	pthread_mutex_unlock(&p->evict_mu);

	usm_trace_detach(p);
	close(p->uffd);
	close(p->sock);
	close(p->pidfd);
	if (p->maps_fd >= 0)
		close(p->maps_fd);
	usm_sentinel_close(p);
	usm_log(USM_LOG_INFO, "detached pid %d (%s): %llu faults, %llu pages mapped",
		p->pid, p->comm, (unsigned long long)usm_read(&p->c.faults),
		(unsigned long long)usm_read(&p->c.pages_mapped));

	pthread_mutex_lock(&inst->procs_lock);
	p->dead = true;
	remember(inst, p);
	usm_list_del(&p->link);
	pthread_mutex_unlock(&inst->procs_lock);
}

void usm_process_put(struct usm_process *p)
{
	if (atomic_fetch_sub(&p->refs, 1) != 1)
		return;
	usm_evict_release(p);
	pthread_mutex_destroy(&p->evict_mu);
	free(p);
}

/* ---- public process API ---------------------------------------------- */

pid_t usm_process_pid(const struct usm_process *p)
{
	return p->pid;
}

const char *usm_process_comm(const struct usm_process *p)
{
	return p->comm;
}

int usm_process_priority(const struct usm_process *p)
{
	return p->priority;
}

uint64_t usm_process_frames(const struct usm_process *p)
{
	return usm_read(&p->c.frames_in_use);
}

void *usm_process_priv(const struct usm_process *p)
{
	return p->priv;
}

void usm_process_set_priv(struct usm_process *p, void *priv)
{
	p->priv = priv;
}

const char *usm_process_param(const struct usm_process *p, const char *key)
{
	const struct usm_cfg_process *line = p->cfgline;
	const char *policy = usm_instance_policy_of((struct usm_process *)p)->name;
	char full[96];

	if (line && !strcmp(line->policy, policy))
		for (unsigned i = 0; i < line->nparams; i++)
			if (!strcmp(line->params[i].key, key))
				return line->params[i].value;
	snprintf(full, sizeof(full), "%s.%s", policy, key);
	return usm_config_get(full);
}

long long usm_process_param_int(const struct usm_process *p, const char *key,
				long long def, int *err)
{
	char what[96];

	snprintf(what, sizeof(what), "pid %d: parameter %s", p->pid, key);
	return usm_config_int_value(usm_process_param(p, key), what, def, err);
}

int usm_process_for_each(int (*fn)(struct usm_process *, void *), void *arg)
{
	struct usm_list_head *pos;
	int rc = 0;

	pthread_mutex_lock(&usm_inst->procs_lock);
	usm_list_for_each(pos, &usm_inst->procs) {
		struct usm_process *p = usm_list_entry(pos, struct usm_process, link);
		if (!p->dead && !p->exiting && (rc = fn(p, arg)) != 0)
			break;
	}
	pthread_mutex_unlock(&usm_inst->procs_lock);
	return rc;
}

int usm_process_kill(struct usm_process *p, const char *reason)
{
	if (p->killed)
		return 0;
	if (syscall(SYS_pidfd_send_signal, p->pidfd, SIGKILL, NULL, 0) < 0) {
		usm_log(USM_LOG_ERROR, "cannot kill pid %d (%s): %s", p->pid, p->comm,
			strerror(errno));
		return -errno;
	}
	p->killed = true;
	usm_log(USM_LOG_WARN, "killed pid %d (%s, priority %d, %llu frames): %s",
		p->pid, p->comm, p->priority,
		(unsigned long long)usm_read(&p->c.frames_in_use), reason);
	return 0;
}

/* ---- OOM --------------------------------------------------------------- */

struct victim_search {
	struct usm_process *best;
	bool dying;          /* a victim was killed and has not exited yet */
};

/* What killing p would free: its frames (an in-process host's lease)
 * and swap slots. */
static uint64_t held(const struct usm_process *p)
{
	uint64_t frames = p->inline_host ? p->nleased : usm_read(&p->c.frames_in_use);

	return frames + usm_read(&p->c.swapped_now);
}

/* Lowest priority first; among equals, the largest. */
static int consider_victim(struct usm_process *p, void *arg)
{
	struct victim_search *vs = arg;
	struct usm_process *b = vs->best;

	if (p->killed) {
		vs->dying = true;
		return 0;
	}
	/* Killing a process that holds no frames and no swap slots frees
	 * nothing. */
	if (!held(p))
		return 0;
	if (!b || p->priority < b->priority ||
	    (p->priority == b->priority && held(p) > held(b)))
		vs->best = p;
	return 0;
}

enum usm_oom_action usm_oom_default(struct usm_event *ev)
{
	struct usm_process *p = ev->origin;
	struct victim_search vs = { NULL };

	/* In the process itself, frames may be on their way from another
	 * process (the instance recalls them): not out of memory yet. */
	if (usm_inst->host && usm_evict_enabled(usm_inst) && usm_inline_oom_grace())
		return USM_OOM_WAIT;
	/* In the process itself: the instance picks the victim among all its
	 * processes; this thread waits for frames. */
	if (usm_inst->host && usm_inst->cfg.oom != USM_OOM_KERNEL) {
		if (usm_inst->host->oom() == USM_OOM_RETRY)
			usm_inline_lease_now();       /* it has frames again */
		return USM_OOM_WAIT;
	}
	switch (usm_inst->cfg.oom) {
	case USM_OOM_KERNEL:
		if (!p->warned_oom) {
			p->warned_oom = true;
			usm_log(USM_LOG_WARN, "budget full (%llu frames): pid %d (%s) gets "
				"kernel pages from now on until frames free up",
				(unsigned long long)usm_inst->nframes, p->pid, p->comm);
		}
		return USM_OOM_KERNEL;
	case USM_OOM_RETRY:
		usm_process_for_each(consider_victim, &vs);
		/* While an earlier victim is still exiting, its frames are on
		 * their way back: wait for them rather than kill another. */
		if (vs.best && !vs.dying)
			usm_process_kill(vs.best, usm_evict_enabled(usm_inst)
				? "instance out of frames and nothing left to evict (oom kill)"
				: "instance out of frames (oom kill)");
		return USM_OOM_WAIT;
	case USM_OOM_WAIT:
	default:
		return USM_OOM_WAIT;
	}
}
