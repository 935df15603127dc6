/* SPDX-License-Identifier: MIT */
/*
 * core/inline_rpc.c - the daemon's side of the in-process host.
 *
 * A process attached with USM_HELLO_INLINE resolves its own faults (see
 * core/inline.c), but its budget and statistics still belong to the
 * instance: it leases frames in chunks over a second connection, asks the
 * instance to decide when the budget runs out, and pushes its counters.
 */
#include "core/instance.h"

#include <errno.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

int usm_inline_send_config(struct usm_process *p)
{
	struct usm_msg_inline_config m;
	const char *policy = usm_instance_policy_of(p)->name;

	usm_msg_init(&m.h, USM_MSG_INLINE_CONFIG, sizeof(m));
	if (usm_config_inline_text(&usm_inst->cfg, p->comm, policy, m.text,
				   sizeof(m.text)) < 0) {
		usm_log(USM_LOG_ERROR, "pid %d: config too large for the in-process host", p->pid);
		return -E2BIG;
	}
	return usm_sock_send(p->sock, &m, sizeof(m), -1);
}

struct find_inline {
	pid_t pid;
	int sock;
	int rc;
	int page_fd;
};

/* p's lease page (see struct usm_lease_page), or -errno. */
static int lease_page_create(struct usm_process *p)
{
	int fd = memfd_create("usm-lease", MFD_CLOEXEC);
	void *m;

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, 4096) < 0 ||
	    (m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED) {
		int e = errno;
		close(fd);
		return -e;
	}
	p->lease_page = m;
	p->lease_page->magic = USM_LEASE_MAGIC;
	p->lease_fd = fd;
	return 0;
}

/* Under the process list's lock, so p cannot be freed meanwhile. */
static int attach_channel(struct usm_process *p, void *arg)
{
	struct find_inline *f = arg;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &p->w_rpc };

	if (p->pid != f->pid || !p->inline_host || p->rpc_sock >= 0)
		return 0;
	f->rc = p->lease_page ? 0 : lease_page_create(p);
	if (f->rc)
		return 1;
	p->rpc_sock = f->sock;
	if (epoll_ctl(p->worker->epfd, EPOLL_CTL_ADD, f->sock, &ev) < 0) {
		p->rpc_sock = -1;
		f->rc = -errno;
	}
	f->page_fd = p->lease_fd;
	return 1;
}

int usm_inline_attach_rpc(struct usm_instance *inst, int sock, pid_t pid, int *page_fd,
			  char *err, size_t errlen)
{
	struct find_inline f = { pid, sock, -ENOENT, -1 };

	(void)inst;
	usm_process_for_each(attach_channel, &f);
	*page_fd = f.page_fd;
	if (f.rc == -ENOENT)
		snprintf(err, errlen, "pid %d has no in-process attachment waiting for its channel",
			 pid);
	else if (f.rc)
		snprintf(err, errlen, "epoll_ctl: %s", strerror(-f.rc));
	return f.rc;
}

/* Lend up to want frames (lock held); returns how many. */
static int64_t lend(int64_t want)
{
	return (int64_t)usm_frames_lend((uint64_t)want);
}

/* Processes holding (or asking for) leases, for the fair share. */
struct recall_search {
	struct usm_process *asker, *best;
	unsigned holders;
	bool others_short;              /* another one was refused lately */
};

/* A process refused frames this recently is still short of them. */
#define WANTING_NS 1000000000ull

/* A holder that could not give all it was asked lately has nothing more
 * to evict: asking it again would only keep the asker waiting. */
#define SHORT_NS 5000000000ull

static bool can_give(const struct usm_process *p)
{
	uint64_t at = atomic_load(&p->lease_page->short_ns);

	return !at || usm_now_ns() - at > SHORT_NS;
}

static int consider_holder(struct usm_process *p, void *arg)
{
	struct recall_search *rs = arg;

	if (!p->inline_host || p->dead)
		return 0;
	if (p != rs->asker && p->refused_ns && usm_now_ns() - p->refused_ns < WANTING_NS)
		rs->others_short = true;
	if (!p->nleased && p != rs->asker)
		return 0;
	rs->holders++;
	if (p != rs->asker && p->lease_page && can_give(p) &&
	    (!rs->best || p->nleased > rs->best->nleased))
		rs->best = p;
	return 0;
}

/*
 * Lock held.  asker is short of `need` frames and the instance has none
 * to lend: ask the largest other holder for what it holds beyond an even
 * share of the budget (once: not while an earlier request is pending).
 */
static bool recall_for(struct usm_process *asker, uint64_t need)
{
	struct recall_search rs = { asker, NULL, 0, false };
	uint64_t share, more;

	usm_process_for_each(consider_holder, &rs);
	if (!rs.best || !rs.holders)
		return false;
	share = usm_inst->nframes / rs.holders;
	if (rs.best->nleased <= share)
		return false;
	if (atomic_load(&rs.best->lease_page->recall) > 0)
		return true;                    /* asked already */
	more = rs.best->nleased - share < need ? rs.best->nleased - share : need;
	atomic_fetch_add(&rs.best->lease_page->recall, (int64_t)more);
	atomic_fetch_add(&rs.best->lease_page->seq, 1);
	syscall(SYS_futex, &rs.best->lease_page->seq, FUTEX_WAKE, 1, NULL, NULL, 0);
	usm_log(USM_LOG_DEBUG, "pid %d needs frames: asking pid %d for %llu back", asker->pid,
		rs.best->pid, (unsigned long long)more);
	return true;
}

/* Take back up to want of the frames lent to p (lock held). */
static int64_t take_back(struct usm_process *p, int64_t want)
{
	uint64_t n = p->nleased < (uint64_t)want ? p->nleased : (uint64_t)want;

	usm_frames_unlend(n);
	return (int64_t)n;
}

/*
 * Lock held.  While another process is short of frames, one already at
 * its even share of the budget gets no more: the frames another gave back
 * on request must go to the process that asked for them.
 */
static int64_t lend_fairly(struct usm_process *p, int64_t want)
{
	struct recall_search rs = { p, NULL, 0, false };
	uint64_t share;

	usm_process_for_each(consider_holder, &rs);
	share = rs.holders ? usm_inst->nframes / rs.holders : usm_inst->nframes;
	if (rs.others_short && p->nleased + (uint64_t)want > share)
		want = p->nleased < share ? (int64_t)(share - p->nleased) : 0;
	return want > 0 ? lend(want) : 0;
}

static void answer_lease(struct usm_process *p, const struct usm_msg_lease *m)
{
	struct usm_msg_lease_reply r;
	int64_t n;

	usm_msg_init(&r.h, USM_MSG_LEASE_REPLY, sizeof(r));
	pthread_mutex_lock(&usm_inst->lock);
	n = m->delta > 0 ? lend_fairly(p, m->delta) : -take_back(p, -m->delta);
	p->nleased += (uint64_t)n;
	if (m->delta > 0 && n < m->delta)
		p->refused_ns = usm_now_ns();
	r.recalling = m->delta > 0 && n < m->delta && recall_for(p, (uint64_t)(m->delta - n));
	r.reserved = 0;
	r.granted = n;
	r.instance_free = usm_frames_free();
	pthread_mutex_unlock(&usm_inst->lock);
	usm_count(&usm_inst->c.frames_in_use, (uint64_t)n);
	usm_peak(&usm_inst->c.frames_peak, usm_read(&usm_inst->c.frames_in_use));
	usm_sock_send(p->rpc_sock, &r, sizeof(r), -1);
}

/* The process found no frame: the instance decides, as for its own faults. */
static void answer_oom(struct usm_process *p)
{
	struct usm_event ev = { .type = USM_EVENT_ALLOC, .origin = p };
	struct usm_msg_ack a;
	enum usm_oom_action act;

	pthread_mutex_lock(&usm_inst->lock);
	/* Frames came free since it last asked (a victim exited): no kill,
	 * it leases them. */
	act = usm_frames_free() ? USM_OOM_RETRY : usm_oom_default(&ev);
	pthread_mutex_unlock(&usm_inst->lock);
	usm_count(&usm_inst->c.oom_events, 1);
	usm_msg_init(&a.h, USM_MSG_ACK, sizeof(a));
	a.status = (int32_t)act;
	a.error[0] = '\0';
	usm_sock_send(p->rpc_sock, &a, sizeof(a), -1);
}

static void store(_Atomic uint64_t *dst, _Atomic uint64_t *total, uint64_t v)
{
	uint64_t old = atomic_exchange_explicit(dst, v, memory_order_relaxed);

	if (total && v > old)
		usm_count(total, v - old);
}

/* A level, not a count: the instance total follows it both ways. */
static void store_level(_Atomic uint64_t *dst, _Atomic uint64_t *total, uint64_t v)
{
	uint64_t old = atomic_exchange_explicit(dst, v, memory_order_relaxed);

	usm_count(total, v - old);
}

/* Counters are cumulative in the process: keep them, add the growth to
 * the instance totals. */
static void take_stats(struct usm_process *p, const struct usm_msg_stats_push *m)
{
	struct usm_counters *c = &p->c, *t = &usm_inst->c;

	store(&c->faults, &t->faults, m->c.faults);
	store(&c->pages_mapped, &t->pages_mapped, m->c.pages_mapped);
	store(&c->frames_in_use, NULL, m->c.frames_in_use);
	store(&c->frames_peak, NULL, m->c.frames_peak);
	store(&c->ev_remove, &t->ev_remove, m->c.ev_remove);
	store(&c->ev_unmap, &t->ev_unmap, m->c.ev_unmap);
	store(&c->ev_remap, &t->ev_remap, m->c.ev_remap);
	store(&c->pages_freed, &t->pages_freed, m->c.pages_freed);
	store(&c->kernel_pages, &t->kernel_pages, m->c.kernel_pages);
	store(&c->eexist, &t->eexist, m->c.eexist);
	store(&c->huge_pages, &t->huge_pages, m->c.huge_pages);
	store(&c->evicted, &t->evicted, m->c.evicted);
	store(&c->swapin_faults, &t->swapin_faults, m->c.swapin_faults);
	store(&c->swapped_in, &t->swapped_in, m->c.swapped_in);
	store(&c->swapcache_hits, &t->swapcache_hits, m->c.swapcache_hits);
	store(&c->evict_failed, &t->evict_failed, m->c.evict_failed);
	store(&c->reserve_frames, &t->reserve_frames, m->c.reserve_frames);
	store_level(&c->swapped_now, &t->swapped_now, m->c.swapped_now);
	store(&p->bloat_pages, NULL, m->c.bloat_pages);
	pthread_mutex_lock(&usm_inst->procs_lock);
	p->inline_swap = m->swap;
	p->inline_access[0] = m->access_scans;
	p->inline_access[1] = m->access_marked;
	p->inline_access[2] = m->access_scan_ns;
	pthread_mutex_unlock(&usm_inst->procs_lock);
	for (unsigned i = 0; i < USM_HIST_BUCKETS; i++)
		store(&p->lat.bucket[i], &usm_inst->lat.bucket[i], m->hist[i]);
}

void usm_inline_serve_rpc(struct usm_process *p)
{
	union {
		struct usm_msg m;
		struct usm_msg_lease lease;
		struct usm_msg_stats_push push;
	} u;
	int fd;
	ssize_t n = usm_sock_recv(p->rpc_sock, &u, sizeof(u), &fd);
	const char *bad;

	if (fd >= 0)
		close(fd);
	if (n <= 0) {
		epoll_ctl(p->worker->epfd, EPOLL_CTL_DEL, p->rpc_sock, NULL);
		close(p->rpc_sock);
		p->rpc_sock = -1;
		return;
	}
	bad = usm_msg_check(&u, (size_t)n);
	if (bad) {
		usm_log(USM_LOG_WARN, "pid %d: bad message on its channel: %s", p->pid, bad);
		return;
	}
	if (u.m.type == USM_MSG_LEASE)
		answer_lease(p, &u.lease);
	else if (u.m.type == USM_MSG_OOM)
		answer_oom(p);
	else if (u.m.type == USM_MSG_STATS_PUSH)
		take_stats(p, &u.push);
	else
		usm_log(USM_LOG_WARN, "pid %d: unexpected message %u on its channel", p->pid,
			u.m.type);
}

/* Teardown: what its devices stored and loaded stays in the instance's
 * totals; what they held is gone with the process. */
static void keep_swap_totals(struct usm_process *p)
{
	struct usm_swap_stats *g = &usm_inst->inline_swap_gone;

	pthread_mutex_lock(&usm_inst->procs_lock);
	g->stored += p->inline_swap.stored;
	g->loaded += p->inline_swap.loaded;
	g->freed += p->inline_swap.freed;
	g->store_errors += p->inline_swap.store_errors;
	g->load_errors += p->inline_swap.load_errors;
	memset(&p->inline_swap, 0, sizeof(p->inline_swap));
	for (int i = 0; i < 3; i++) {
		usm_inst->inline_access_gone[i] += p->inline_access[i];
		p->inline_access[i] = 0;
	}
	pthread_mutex_unlock(&usm_inst->procs_lock);
	usm_count(&usm_inst->c.swapped_now, -usm_read(&p->c.swapped_now));
	atomic_store_explicit(&p->c.swapped_now, 0, memory_order_relaxed);
}

/* Teardown (lock held): every lent frame comes back. */
void usm_inline_release(struct usm_process *p)
{
	int64_t n = take_back(p, INT64_MAX);

	usm_count(&usm_inst->c.frames_in_use, (uint64_t)-n);
	p->nleased = 0;
	if (p->inline_host)
		keep_swap_totals(p);
	if (p->lease_page) {
		munmap(p->lease_page, 4096);
		close(p->lease_fd);
		p->lease_page = NULL;
		p->lease_fd = -1;
	}
	if (p->rpc_sock >= 0) {
		if (p->worker)
			epoll_ctl(p->worker->epfd, EPOLL_CTL_DEL, p->rpc_sock, NULL);
		close(p->rpc_sock);
		p->rpc_sock = -1;
	}
}

void usm_inline_swap_stats(struct usm_instance *inst, struct usm_swap_stats *sum,
			   uint64_t access[3])
{
	struct usm_list_head *pos;
	const struct usm_swap_stats *g = &inst->inline_swap_gone;

	pthread_mutex_lock(&inst->procs_lock);
	sum->stored += g->stored;
	sum->loaded += g->loaded;
	sum->freed += g->freed;
	sum->store_errors += g->store_errors;
	sum->load_errors += g->load_errors;
	for (int i = 0; i < 3; i++)
		access[i] += inst->inline_access_gone[i];
	usm_list_for_each(pos, &inst->procs) {
		const struct usm_process *p = usm_list_entry(pos, struct usm_process, link);
		const uint64_t *b = (const uint64_t *)&p->inline_swap;
		uint64_t *a = (uint64_t *)sum;
		for (size_t i = 0; i < sizeof(p->inline_swap) / sizeof(uint64_t); i++)
			a[i] += b[i];
		for (int i = 0; i < 3; i++)
			access[i] += p->inline_access[i];
	}
	pthread_mutex_unlock(&inst->procs_lock);
}
