/* SPDX-License-Identifier: MIT */
/*
 * core/copier.c - helper threads that map a worker's windows when the
 * threads of one process fault faster than one worker can copy.
 *
 * A process is served by one worker, which reads its userfaultfd in order:
 * that order is what keeps a fault from being mapped after an munmap or
 * mremap the kernel reported later.  But the copy itself (UFFDIO_COPY of
 * the planned window) is most of a fault's cost, and with two threads
 * faulting on two CPUs one worker doing all the copying leaves a CPU
 * idle.  So when two or more of its threads have been faulting lately
 * (by the thread ids in the messages) and no copy of the process is with
 * a copier, or when more messages are already waiting on its
 * userfaultfd, the worker hands the copy to a copier thread and goes on
 * with the next message: the next window is then copied by the worker
 * while the copier does this one.  A single faulting thread never pays
 * the hand-over.
 *
 * What keeps the order:
 *  - the frames were recorded in the pagemap when the window was planned
 *    (under the policy lock), before the copy is handed over;
 *  - before the worker handles anything but a fault of that process
 *    (REMOVE, UNMAP, REMAP, its exit), it waits for the process's copies
 *    (usm_copier_drain), as it would have finished them itself;
 *  - a fault on a page recorded as mapped waits too, before it probes
 *    whether the page is there (fault_on_mapped in core/fault.c);
 *  - a copy that fails gives the rest of its window back (unplan) and
 *    wakes the faulting thread, which faults again and is handled by the
 *    worker like any new fault (a mapping that ended, changed, or a page
 *    that appeared meanwhile are all sorted out there).
 *
 * Only plain windows are handed over: no swap devices in the instance,
 * no 2 MiB pages, nothing held (bloat sampling), no trace.  A fill
 * (usm_resolve_fill) goes over whole: the fault's run and the others.
 */
#include "core/instance.h"
#include "mech/uffd.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#define COPY_JOBS 64
/* Windows smaller than this are cheaper to copy than to hand over. */
#define COPY_MIN_PAGES 16
/* Faults of another thread within this long make a process "threaded". */
#define OTHER_THREAD_NS 2000000ull

struct copy_job {
	struct usm_process *p;
	uint64_t fault;
	uint64_t t0;                   /* when the worker read the fault */
	unsigned nruns;
	struct usm_copy_run run[1 + USM_AHEAD_MAX];
};

struct usm_copy_queue {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct copy_job job[COPY_JOBS];
	unsigned head, tail;           /* head - tail jobs queued */
	bool stop;
	unsigned nthreads;
	pthread_t threads[];
};

static void copy_run(struct usm_process *p, const struct usm_copy_run *r, uint64_t fault)
{
	uint64_t ps = usm_inst->cfg.page_size, cur = r->from;

	while (cur < r->to) {
		uint64_t done = 0;
		int rc = usm_uffd_copy_mode(p->uffd, cur, usm_inst->zero, r->to - cur, 0, &done);

		usm_count(&p->c.pages_mapped, done / ps);
		usm_count(&usm_inst->c.pages_mapped, done / ps);
		cur += done;
		if (rc == 0)
			return;
		if (rc == -EEXIST) {
			/* Populated behind our back: not ours (as in map_plan). */
			usm_count(&p->c.eexist, 1);
			usm_fault_unplan(p, cur, cur + ps);
			if (cur == fault)
				usm_uffd_wake(p->uffd, cur, ps);
			cur += ps;
			continue;
		}
		/* Anything else: the rest goes back; the thread faults again
		 * and the worker deals with what changed. */
		usm_fault_unplan(p, cur, r->to);
		if (cur <= fault && fault < r->to)
			usm_uffd_wake(p->uffd, fault, ps);
		return;
	}
}

static void *copier_main(void *arg)
{
	struct usm_copy_queue *q = arg;

	pthread_mutex_lock(&q->mu);
	for (;;) {
		while (q->head == q->tail && !q->stop)
			pthread_cond_wait(&q->cv, &q->mu);
		if (q->head == q->tail)
			break;                  /* stopping, and nothing left */
		struct copy_job j = q->job[q->tail++ % COPY_JOBS];

		pthread_mutex_unlock(&q->mu);
		for (unsigned i = 0; i < j.nruns; i++)
			copy_run(j.p, &j.run[i], j.fault);
		usm_fault_record_latency(j.p, j.t0);
		atomic_fetch_sub_explicit(&j.p->copies, 1, memory_order_release);
		pthread_mutex_lock(&q->mu);
	}
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

/* Are more messages waiting on p's userfaultfd right now? */
static bool more_waiting(const struct usm_process *p)
{
	struct pollfd pfd = { .fd = p->uffd, .events = POLLIN };

	return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN);
}

/* Worker of p: have two of p's threads been faulting lately? */
static bool threaded(struct usm_process *p, uint32_t tid, uint64_t now)
{
	if (tid && p->last_tid && tid != p->last_tid)
		p->other_tid_ns = now;
	if (tid)
		p->last_tid = tid;
	return p->other_tid_ns && now - p->other_tid_ns < OTHER_THREAD_NS;
}

bool usm_copier_offer(struct usm_process *p, const struct usm_copy_run *runs, unsigned nruns,
		      uint64_t fault, uint64_t t0, uint32_t tid)
{
	struct usm_copy_queue *q = usm_inst->copyq;
	uint64_t ps = usm_inst->cfg.page_size, pages = 0;
	bool queued = false, busy;

	for (unsigned i = 0; i < nruns; i++)
		pages += (runs[i].to - runs[i].from) / ps;
	if (!q || p->trace || usm_evict_enabled(usm_inst) || pages < COPY_MIN_PAGES ||
	    nruns > 1 + USM_AHEAD_MAX)
		return false;
	busy = atomic_load_explicit(&p->copies, memory_order_relaxed) != 0;
	if (!(threaded(p, tid, t0) && !busy) && !more_waiting(p))
		return false;
	pthread_mutex_lock(&q->mu);
	if (q->head - q->tail < COPY_JOBS && !q->stop) {
		atomic_fetch_add_explicit(&p->copies, 1, memory_order_relaxed);
		struct copy_job *j = &q->job[q->head++ % COPY_JOBS];

		*j = (struct copy_job){ .p = p, .fault = fault, .t0 = t0, .nruns = nruns };
		memcpy(j->run, runs, nruns * sizeof(runs[0]));
		usm_count(&p->c.copier_windows, 1);
		usm_count(&usm_inst->c.copier_windows, 1);
		pthread_cond_signal(&q->cv);
		queued = true;
	}
	pthread_mutex_unlock(&q->mu);
	return queued;
}

void usm_copier_drain(struct usm_process *p)
{
	while (atomic_load_explicit(&p->copies, memory_order_acquire))
		sched_yield();
}

int usm_copiers_start(struct usm_instance *inst)
{
	unsigned n = inst->cfg.copiers;
	struct usm_copy_queue *q;

	if (!n)
		return 0;
	q = calloc(1, sizeof(*q) + n * sizeof(q->threads[0]));
	if (!q)
		return -ENOMEM;
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
	inst->copyq = q;
	for (; q->nthreads < n; q->nthreads++) {
		int rc = pthread_create(&q->threads[q->nthreads], NULL, copier_main, q);

		if (rc) {
			usm_copiers_stop(inst);
			return -rc;
		}
		usm_thread_name(q->threads[q->nthreads], "usm-copier", (int)q->nthreads);
	}
	return 0;
}

/* After the workers have stopped: nothing is handed over any more. */
void usm_copiers_stop(struct usm_instance *inst)
{
	struct usm_copy_queue *q = inst->copyq;

	if (!q)
		return;
	pthread_mutex_lock(&q->mu);
	q->stop = true;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
	for (unsigned i = 0; i < q->nthreads; i++)
		pthread_join(q->threads[i], NULL);
	pthread_cond_destroy(&q->cv);
	pthread_mutex_destroy(&q->mu);
	inst->copyq = NULL;
	free(q);
}
