/* SPDX-License-Identifier: MIT */
/*
 * core/placement.c - where a worker runs (mode colocate).
 *
 * A fault served by a worker on another CPU costs two cross-CPU wake-ups:
 * the faulting thread's CPU wakes the worker, and the worker's UFFDIO_COPY
 * wakes the thread back.  In a virtual machine each one is an IPI, and an
 * IPI is a VM exit.  When the worker runs on the faulting thread's own
 * CPU both wake-ups stay local: the thread blocks in the kernel, its CPU
 * switches to the worker, and back.
 *
 * Moving the worker alone does not do it: when the worker wakes the
 * thread, the scheduler sees the thread's CPU busy (with the worker) and
 * the other one idle, and moves the thread there; the worker follows, and
 * they chase each other.  So in mode colocate both are pinned.  Once one
 * thread has been the only one to fault for ALONE_NS, the worker pins
 * itself to the CPU that thread last ran on and the thread to the same
 * CPU (if its own mask allows it: the mask is kept, put back later, and
 * told to the agent, which puts it back if the instance dies), and
 * sleeps between faults: polling would take the CPU from the very thread
 * it serves.  As soon as another thread faults, the thread gets its mask
 * back, the worker goes back to every CPU it started with and polls as
 * in mode hybrid.  The worker looks at this once every PERIOD_NS.
 */
#include "core/instance.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PERIOD_NS 2000000ull         /* how often a worker reconsiders */
/* A thread is pinned once it has been the only one to fault for this
 * long: threads that fault in turns, in bursts (one between its bursts,
 * or descheduled), must not be pinned and let go again all the time. */
#define ALONE_NS 100000000ull
#define STAT_CPU_FIELD 39            /* "processor" in proc_pid_stat(5) */

void usm_place_init(struct usm_worker *w)
{
	struct usm_placement *pl = &w->place;

	memset(pl, 0, sizeof(*pl));
	pl->cpu = -1;
	pl->stat_fd = -1;
	if (sched_getaffinity(0, sizeof(pl->start_mask), &pl->start_mask) < 0) {
		usm_log(USM_LOG_WARN, "worker %u: sched_getaffinity: %s; it will not move",
			w->id, strerror(errno));
		pl->fixed = true;
	}
}

/* A fault of thread tid of p was served (at now). */
void usm_place_note(struct usm_worker *w, struct usm_process *p, uint32_t tid, uint64_t now)
{
	struct usm_placement *pl = &w->place;

	if (!tid || (pl->tid == tid && pl->proc == p))
		return;
	pl->switched = pl->tid != 0;
	pl->tid = tid;
	pl->proc = p;
	pl->since = now;
}

/* The CPU thread tid of p last ran on, or -1 (it exited, or no field). */
static int thread_cpu(struct usm_placement *pl, const struct usm_process *p, uint32_t tid)
{
	char buf[1024], path[64];
	int field = 2;
	ssize_t n = -1;
	char *s;

	if (pl->stat_fd < 0 || pl->stat_pid != p->pid || pl->stat_tid != tid) {
		if (pl->stat_fd >= 0)
			close(pl->stat_fd);
		snprintf(path, sizeof(path), "/proc/%d/task/%u/stat", (int)p->pid, tid);
		pl->stat_fd = open(path, O_RDONLY | O_CLOEXEC);
		pl->stat_pid = p->pid;
		pl->stat_tid = tid;
	}
	if (pl->stat_fd >= 0)
		n = pread(pl->stat_fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	s = strrchr(buf, ')');        /* the command name may hold anything */
	if (!s)
		return -1;
	while (*s && field < STAT_CPU_FIELD)
		if (*s++ == ' ')
			field++;
	return *s ? (int)strtol(s, NULL, 10) : -1;
}

/* Tell p's agent, which puts the mask back itself if we die first. */
static void tell_agent(const struct usm_process *p, uint32_t tid, bool pinned, int cpu,
		       const cpu_set_t *mask)
{
	struct usm_msg_pin m;

	usm_msg_init(&m.h, USM_MSG_PIN, sizeof(m));
	m.tid = tid;
	m.pinned = pinned;
	m.cpu = cpu < 0 ? 0 : (uint32_t)cpu;
	m.reserved = 0;
	memset(m.mask, 0, sizeof(m.mask));
	if (mask)
		memcpy(m.mask, mask, sizeof(*mask) < sizeof(m.mask) ? sizeof(*mask) : sizeof(m.mask));
	usm_sock_send(p->sock, &m, sizeof(m), -1);
}

/* Threads the pinned one created meanwhile were born with its pinned
 * mask; those still on exactly that CPU get the mask it had before. */
static void release_children(struct usm_placement *pl, pid_t pid)
{
	char path[64];
	struct dirent *d;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	if (!(dir = opendir(path)))
		return;
	while ((d = readdir(dir))) {
		pid_t tid = (pid_t)strtol(d->d_name, NULL, 10);
		cpu_set_t m;

		if (tid <= 0 || (uint32_t)tid == pl->pinned_tid ||
		    sched_getaffinity(tid, sizeof(m), &m) < 0 ||
		    CPU_COUNT(&m) != 1 || !CPU_ISSET(pl->cpu, &m))
			continue;
		sched_setaffinity(tid, sizeof(pl->thread_mask), &pl->thread_mask);
	}
	closedir(dir);
}

/* The pinned thread gets its own CPU mask back, and so do the threads it
 * started while pinned.  tell: say so to its agent (not when its socket
 * is closing). */
static void release_thread(struct usm_placement *pl, bool tell)
{
	const struct usm_process *p = pl->pinned_proc;

	char path[64];

	if (!p)
		return;
	/* Gone with its process: its number may be someone else's by now. */
	snprintf(path, sizeof(path), "/proc/%d/task/%u", (int)p->pid, pl->pinned_tid);
	if (access(path, F_OK) == 0 &&
	    sched_setaffinity((pid_t)pl->pinned_tid, sizeof(pl->thread_mask),
			      &pl->thread_mask) < 0 && errno != ESRCH)
		usm_log(USM_LOG_WARN, "pid %d: cannot give thread %u its CPU mask back: %s",
			(int)p->pid, pl->pinned_tid, strerror(errno));
	if (pl->cpu >= 0)
		release_children(pl, p->pid);
	if (tell)
		tell_agent(p, pl->pinned_tid, false, -1, NULL);
	pl->pinned_proc = NULL;
	pl->pinned_tid = 0;
}

/* Pin tid of p to cpu, keeping its mask to put back; false if it may not
 * run there or cannot be moved. */
static bool pin_thread(struct usm_placement *pl, struct usm_process *p, uint32_t tid, int cpu)
{
	cpu_set_t one;

	if (pl->pinned_proc == p && pl->pinned_tid == tid && pl->cpu == cpu)
		return true;
	release_thread(pl, true);
	if (sched_getaffinity((pid_t)tid, sizeof(pl->thread_mask), &pl->thread_mask) < 0 ||
	    !CPU_ISSET(cpu, &pl->thread_mask) || !CPU_ISSET(cpu, &pl->start_mask))
		return false;
	/* The agent first: from the moment the thread is pinned, an
	 * instance that dies must leave it to the agent to let it go. */
	tell_agent(p, tid, true, cpu, &pl->thread_mask);
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	if (sched_setaffinity((pid_t)tid, sizeof(one), &one) < 0) {
		tell_agent(p, tid, false, -1, NULL);
		return false;
	}
	pl->pinned_proc = p;
	pl->pinned_tid = tid;
	return true;
}

/* Two workers pinned to one CPU would serve their threads one after the
 * other there while another CPU idles: each CPU has one claimant. */
static bool claim_cpu(struct usm_instance *inst, int cpu)
{
	uint64_t bit = 1ull << (cpu % 64);

	return !(atomic_fetch_or(&inst->cpu_claims[cpu / 64], bit) & bit);
}

static void unclaim_cpu(struct usm_instance *inst, int cpu)
{
	atomic_fetch_and(&inst->cpu_claims[cpu / 64], ~(1ull << (cpu % 64)));
}

static bool claimed(struct usm_instance *inst, int cpu)
{
	return atomic_load(&inst->cpu_claims[cpu / 64]) & (1ull << (cpu % 64));
}

/* cpu if no other worker is pinned there, else another CPU of ours that
 * is free, else -1. */
static int free_cpu(struct usm_worker *w, int cpu)
{
	struct usm_placement *pl = &w->place;

	if (cpu == pl->cpu || !claimed(w->inst, cpu))
		return cpu;
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &pl->start_mask) && !claimed(w->inst, c))
			return c;
	return -1;
}

/* The worker on cpu, or back on every CPU it started with (cpu < 0). */
static void move_worker(struct usm_worker *w, int cpu)
{
	struct usm_placement *pl = &w->place;
	const cpu_set_t *mask = &pl->start_mask;
	cpu_set_t one;

	if (cpu == pl->cpu)
		return;
	if (cpu >= 0) {
		if (!claim_cpu(w->inst, cpu))
			return;             /* another worker took it meanwhile */
		CPU_ZERO(&one);
		CPU_SET(cpu, &one);
		mask = &one;
	}
	if (sched_setaffinity(0, sizeof(*mask), mask) < 0) {
		usm_log(USM_LOG_WARN, "worker %u: sched_setaffinity: %s; it stops moving",
			w->id, strerror(errno));
		if (cpu >= 0)
			unclaim_cpu(w->inst, cpu);
		release_thread(pl, true);
		pl->fixed = true;
		return;
	}
	if (pl->cpu >= 0)
		unclaim_cpu(w->inst, pl->cpu);
	pl->cpu = cpu;
	pl->moves++;
}

/* After a batch: once a period, settle next to the one thread that faults. */
void usm_place_tick(struct usm_worker *w, uint64_t now)
{
	struct usm_placement *pl = &w->place;
	int cpu;

	if (pl->fixed || now - pl->period_start < PERIOD_NS)
		return;
	pl->period_start = now;
	if (pl->switched) {                     /* another thread faulted */
		pl->switched = false;
		release_thread(pl, true);
		move_worker(w, -1);
		return;
	}
	if (!pl->tid || now - pl->since < ALONE_NS)
		return;
	cpu = pl->pinned_proc == pl->proc && pl->pinned_tid == pl->tid
	      ? pl->cpu : thread_cpu(pl, pl->proc, pl->tid);
	if (cpu >= 0 && cpu < CPU_SETSIZE)
		cpu = free_cpu(w, cpu);
	else
		cpu = -1;
	/* The worker first: a thread pinned to a CPU without its worker
	 * would be worse off than not pinned at all. */
	if (cpu >= 0)
		move_worker(w, cpu);
	if (cpu < 0 || pl->cpu != cpu || !pin_thread(pl, pl->proc, pl->tid, cpu)) {
		release_thread(pl, true);
		move_worker(w, -1);
	}
}

/* p is leaving (exit, exec, or the instance stops): a thread of it that
 * is still pinned gets its mask back (exec keeps the mask). */
void usm_place_forget(struct usm_worker *w, struct usm_process *p)
{
	struct usm_placement *pl = &w->place;

	if (pl->pinned_proc == p) {
		release_thread(pl, false);
		move_worker(w, -1);
	}
	if (pl->proc == p) {
		pl->proc = NULL;
		pl->tid = 0;
		pl->switched = false;
	}
}

void usm_place_fini(struct usm_worker *w)
{
	struct usm_placement *pl = &w->place;

	release_thread(pl, true);
	if (pl->cpu >= 0)
		unclaim_cpu(w->inst, pl->cpu);
	pl->cpu = -1;
	if (pl->stat_fd >= 0)
		close(pl->stat_fd);
	pl->stat_fd = -1;
}

bool usm_place_colocated(const struct usm_worker *w)
{
	return w->place.cpu >= 0;
}
