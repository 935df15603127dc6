/* SPDX-License-Identifier: MIT */
/*
 * core/worker.c - fault-handling threads.
 *
 * Each worker owns an epoll set with, per process, its userfaultfd, its
 * agent socket (PING, and EOF on exit or exec) and its pidfd (exit).
 * Blocking workers sleep in epoll_wait; spinning workers poll it with a
 * zero timeout, trading a core for the wake-up latency.  Hybrid workers
 * (the default) poll for spin_us after each event and sleep once that
 * passes quietly: a program that faults in bursts (a scan, a swap-in
 * every few microseconds) finds its worker awake, which saves the
 * wake-up of a sleeping thread on every fault, and an idle instance
 * costs nothing.
 */
#include "core/instance.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define EVENTS_PER_WAIT 64
#define PENDING_RETRY_MS 20

static void answer_agent(struct usm_process *p)
{
	union {
		struct usm_msg m;
		struct usm_msg_pool_ready pool;
	} u;
	struct usm_msg m;
	int fd;
	ssize_t n = usm_sock_recv(p->sock, &u, sizeof(u), &fd);
	const char *bad;

	if (n <= 0) {
		/* EOF: the process exited or exec'd (the socket is CLOEXEC). */
		if (fd >= 0)
			close(fd);
		usm_process_teardown(p);
		return;
	}
	bad = usm_msg_check(&u, (size_t)n);
	if (!bad && u.m.type == USM_MSG_POOL_READY && fd >= 0) {
		usm_pool_attach(p, fd);
		close(fd);
		return;
	}
	if (fd >= 0)
		close(fd);
	if (bad || u.m.type != USM_MSG_PING) {
		usm_log(USM_LOG_WARN, "pid %d: bad message from agent: %s", p->pid,
			bad ? bad : "unexpected type");
		return;
	}
	usm_msg_init(&m, USM_MSG_PONG, sizeof(m));
	usm_sock_send(p->sock, &m, sizeof(m), -1);
}

static void drain_wakefd(struct usm_worker *w)
{
	uint64_t v;

	if (read(w->wakefd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		usm_log(USM_LOG_WARN, "worker %u: eventfd: %s", w->id, strerror(errno));
}

static void handle_event(struct usm_worker *w, struct usm_watch *watch)
{
	struct usm_process *p = watch->proc;

	if (p && p->dead)
		return;
	switch (watch->kind) {
	case WATCH_UFFD:
		usm_handle_uffd(w, p);
		break;
	case WATCH_SOCK:
		answer_agent(p);
		break;
	case WATCH_PIDFD:
		usm_process_teardown(p);
		break;
	case WATCH_WAKE:
		drain_wakefd(w);
		break;
	case WATCH_RPC:
		usm_inline_serve_rpc(p);
		break;
	}
}

static bool watch_process(struct usm_worker *w, struct usm_process *p);

static void take_inbox(struct usm_worker *w)
{
	struct usm_list_head *pos, *tmp, in;

	usm_list_init(&in);
	pthread_mutex_lock(&w->inbox_lock);
	usm_list_for_each_safe(pos, tmp, &w->inbox)
		usm_list_move_tail(pos, &in);
	pthread_mutex_unlock(&w->inbox_lock);
	usm_list_for_each_safe(pos, tmp, &in) {
		struct usm_process *p = usm_list_entry(pos, struct usm_process, inbox_link);
		usm_list_del(pos);
		if (!watch_process(w, p)) {
			usm_process_teardown(p);
			usm_process_put(p);
		}
	}
}

static void free_dead(struct usm_process **dead, int n)
{
	for (int i = 0; i < n; i++)
		usm_process_put(dead[i]);
}

/* Set while a worker handles a batch whose work another thread finishes. */
static __thread bool leave_cpu;

void usm_worker_leave_cpu(void)
{
	leave_cpu = true;
}

static bool polls_after_events(const struct usm_worker *w)
{
	enum usm_wait_mode m = w->inst->cfg.wait_mode;

	return m == USM_WAIT_HYBRID || (m == USM_WAIT_COLOCATE && !usm_place_colocated(w));
}

/* epoll_wait's timeout: 0 polls, -1 sleeps until an event. */
static int wait_timeout(const struct usm_worker *w, uint64_t last_event_ns)
{
	const struct usm_config *cfg = &w->inst->cfg;

	if (cfg->wait_mode == USM_WAIT_SPINNING)
		return 0;
	if (polls_after_events(w) && usm_now_ns() - last_event_ns < (uint64_t)cfg->spin_us * 1000)
		return 0;
	return w->npending ? PENDING_RETRY_MS : -1;
}

static void *worker_main(void *arg)
{
	struct usm_worker *w = arg;
	struct epoll_event ev[EVENTS_PER_WAIT];
	uint64_t last_event_ns = 0;
	bool colocate = w->inst->cfg.wait_mode == USM_WAIT_COLOCATE;

	usm_place_init(w);
	while (!w->inst->stopping) {
		int n = epoll_wait(w->epfd, ev, EVENTS_PER_WAIT, wait_timeout(w, last_event_ns));
		struct usm_process *dead[EVENTS_PER_WAIT];
		int ndead = 0;

		if (n < 0 && errno != EINTR) {
			usm_log(USM_LOG_ERROR, "worker %u: epoll_wait: %s", w->id, strerror(errno));
			break;
		}
		for (int i = 0; i < n; i++) {
			struct usm_watch *watch = ev[i].data.ptr;
			struct usm_process *p = watch->proc;
			bool was_dead = p && p->dead;

			handle_event(w, watch);
			/* Free only after the batch: later entries may point at p. */
			if (p && !was_dead && p->dead)
				dead[ndead++] = p;
		}
		free_dead(dead, ndead);
		/* Poll after this batch unless a thread of the process has
		 * to finish it: on a small machine the polling would take
		 * the CPU that thread needs. */
		if (n > 0 && colocate)
			usm_place_tick(w, usm_now_ns());
		if (n > 0 && polls_after_events(w))
			last_event_ns = leave_cpu ? 0 : usm_now_ns();
		leave_cpu = false;
		take_inbox(w);
		if (w->npending)
			usm_retry_pending(w);
	}
	usm_place_fini(w);
	return NULL;
}

static int watch_add(int epfd, int fd, struct usm_watch *watch)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = watch };

	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

/*
 * Watch p's descriptors on w.  Negative: nothing is watched, the caller
 * still owns p (and p->worker is NULL again).  0: w owns p.  Once the first
 * watch is in, w may already be handling p's events, so a later failure is
 * not undone here: p's socket is shut down and w tears p down on its own
 * thread when it sees the EOF.
 */
/*
 * Hand p to w.  The worker itself starts watching p's descriptors (see
 * take_inbox): once one is watched an event may tear p down, so no other
 * thread may touch p after handing it over.
 */
int usm_worker_adopt(struct usm_worker *w, struct usm_process *p)
{
	p->worker = w;
	pthread_mutex_lock(&w->inbox_lock);
	usm_list_add_tail(&p->inbox_link, &w->inbox);
	pthread_mutex_unlock(&w->inbox_lock);
	usm_worker_kick(w);
	return 0;
}

/* On the worker: watch the processes handed over; false if p failed. */
static bool watch_process(struct usm_worker *w, struct usm_process *p)
{
	int rc;

	/* An in-process host reads its own userfaultfd (SIGBUS mode: there
	 * are no messages); we only watch its socket and its exit. */
	if ((rc = watch_add(w->epfd, p->sock, &p->w_sock)) ||
	    (rc = watch_add(w->epfd, p->pidfd, &p->w_pidfd)) ||
	    (!p->inline_host && (rc = watch_add(w->epfd, p->uffd, &p->w_uffd)))) {
		usm_log(USM_LOG_ERROR, "pid %d: cannot watch its descriptors: %s",
			p->pid, strerror(-rc));
		return false;
	}
	return true;
}

void usm_worker_kick(struct usm_worker *w)
{
	uint64_t one = 1;

	if (write(w->wakefd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		usm_log(USM_LOG_WARN, "worker %u: eventfd: %s", w->id, strerror(errno));
}

static int worker_init(struct usm_instance *inst, struct usm_worker *w, unsigned id)
{
	w->inst = inst;
	w->id = id;
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	w->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->epfd < 0 || w->wakefd < 0)
		return -errno;
	w->w_wake = (struct usm_watch){ WATCH_WAKE, NULL };
	pthread_mutex_init(&w->inbox_lock, NULL);
	usm_list_init(&w->inbox);
	return watch_add(w->epfd, w->wakefd, &w->w_wake);
}

int usm_workers_start(struct usm_instance *inst)
{
	inst->nworkers = inst->cfg.workers;
	inst->workers = calloc(inst->nworkers, sizeof(*inst->workers));
	if (!inst->workers)
		return -ENOMEM;
	for (unsigned i = 0; i < inst->nworkers; i++) {
		struct usm_worker *w = &inst->workers[i];
		int rc = worker_init(inst, w, i);

		if (rc)
			return rc;
		rc = pthread_create(&w->thread, NULL, worker_main, w);
		if (rc)
			return -rc;
		usm_thread_name(w->thread, "usm-worker", (int)i);
	}
	return 0;
}

/* Stop and join the workers, then detach every process they still hold. */
void usm_workers_stop(struct usm_instance *inst)
{
	struct usm_list_head *pos, *tmp;

	if (!inst->workers)
		return;
	for (unsigned i = 0; i < inst->nworkers; i++)
		if (inst->workers[i].thread) {
			usm_worker_kick(&inst->workers[i]);
			pthread_join(inst->workers[i].thread, NULL);
		}
	/* Closing our end of each socket tells the agent to take its memory
	 * back from us; it keeps running unmanaged. */
	usm_list_for_each_safe(pos, tmp, &inst->procs) {
		struct usm_process *p = usm_list_entry(pos, struct usm_process, link);
		usm_process_teardown(p);
		usm_process_put(p);
	}
	for (unsigned i = 0; i < inst->nworkers; i++) {
		struct usm_worker *w = &inst->workers[i];
		if (w->epfd > 0)
			close(w->epfd);
		if (w->wakefd > 0)
			close(w->wakefd);
		free(w->pending);
		usm_swapin_scratch_free(w);
	}
	free(inst->workers);
	inst->workers = NULL;
}
