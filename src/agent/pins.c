/* SPDX-License-Identifier: MIT */
/*
 * agent/pins.c - threads the instance pinned next to their worker.
 *
 * In mode colocate the instance pins a thread that faults alone to the
 * CPU of its worker, and gives it its own CPU mask back when that stops.
 * It tells the agent both (USM_MSG_PIN), so that the mask comes back even
 * when the instance cannot do it: when it dies (agent_detach), and in a
 * fork child, which inherits the pinned mask of the thread that forked.
 */
#include "agent/agent.h"
#include "ipc/proto.h"

#include <dirent.h>
#include <pthread.h>
#include <stdlib.h>
#include <sched.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_PINS 16     /* one per worker of the instance, at most */

struct pin {
	uint32_t tid;   /* 0: free */
	uint32_t cpu;   /* where the instance pinned it */
	cpu_set_t mask; /* its own mask */
};

static struct pin pins[MAX_PINS];
static pthread_mutex_t pins_mu = PTHREAD_MUTEX_INITIALIZER;
static __thread uint32_t forking_tid;

static struct pin *find(uint32_t tid)
{
	for (int i = 0; i < MAX_PINS; i++)
		if (pins[i].tid == tid)
			return &pins[i];
	return NULL;
}

void agent_pins_note(const struct usm_msg_pin *m)
{
	struct pin *p;

	if (!m->tid)
		return;
	pthread_mutex_lock(&pins_mu);
	p = find(m->tid);
	if (!m->pinned) {
		if (p)
			p->tid = 0;
	} else if (p || (p = find(0))) {
		p->tid = m->tid;
		p->cpu = m->cpu;
		memset(&p->mask, 0, sizeof(p->mask));
		memcpy(&p->mask, m->mask,
		       sizeof(p->mask) < sizeof(m->mask) ? sizeof(p->mask) : sizeof(m->mask));
	} else {
		agent_log("more than %d threads pinned at once; thread %u is not recorded",
			  MAX_PINS, m->tid);
	}
	pthread_mutex_unlock(&pins_mu);
}

/* Threads a pinned thread started were born with its pinned mask: those
 * still on exactly that CPU get p's own mask too. */
static void release_children(const struct pin *p)
{
	DIR *dir = opendir("/proc/self/task");
	struct dirent *d;

	if (!dir)
		return;
	while ((d = readdir(dir))) {
		pid_t tid = (pid_t)strtol(d->d_name, NULL, 10);
		cpu_set_t m;

		if (tid <= 0 || (uint32_t)tid == p->tid || p->cpu >= CPU_SETSIZE ||
		    sched_getaffinity(tid, sizeof(m), &m) < 0 ||
		    CPU_COUNT(&m) != 1 || !CPU_ISSET(p->cpu, &m))
			continue;
		sched_setaffinity(tid, sizeof(p->mask), &p->mask);
	}
	closedir(dir);
}

/* The instance is gone: every pinned thread gets its own mask back. */
void agent_pins_restore(void)
{
	pthread_mutex_lock(&pins_mu);
	for (int i = 0; i < MAX_PINS; i++) {
		if (!pins[i].tid)
			continue;
		if (sched_setaffinity((pid_t)pins[i].tid, sizeof(pins[i].mask), &pins[i].mask) < 0)
			agent_log("cannot give thread %u its CPU mask back", pins[i].tid);
		release_children(&pins[i]);
		pins[i].tid = 0;
	}
	pthread_mutex_unlock(&pins_mu);
}

void agent_pins_fork_prepare(void)
{
	forking_tid = (uint32_t)syscall(SYS_gettid);
}

/* In the child: the thread that forked was maybe pinned; the child is a
 * process of its own, and starts with that thread's own mask.  No lock:
 * whoever held it did not come along. */
void agent_pins_fork_child(void)
{
	struct pin *p = find(forking_tid);

	pthread_mutex_init(&pins_mu, NULL);
	if (p && forking_tid)
		sched_setaffinity(0, sizeof(p->mask), &p->mask);
	memset(pins, 0, sizeof(pins));
}
