/* SPDX-License-Identifier: MIT */
/*
 * agent/monitor.c - a thread that watches the instance.
 *
 * The instance's end of the socket closes when usmd exits or is killed;
 * a PING unanswered for USM_AGENT_TIMEOUT_MS means it is stuck.  Either
 * way the program must not wait on it: detach.  The thread runs on a stack
 * mapped here by a raw syscall, so it is never registered and never
 * faults to the instance it is watching.
 */
#include "agent/agent.h"
#include "mech/rawsys.h"
#include "ipc/proto.h"
#include "mech/uffd.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define STACK_SIZE (256 * 1024)
#define PING_MS 1000

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void ping(int sock)
{
	struct usm_msg m;

	usm_msg_init(&m, USM_MSG_PING, sizeof(m));
	send(sock, &m, sizeof(m), MSG_DONTWAIT | MSG_NOSIGNAL);
}

/*
 * In the in-process host the userfaultfd carries REMAP events only (see
 * connect_instance): the thread in mremap waits until one is read, and its
 * SIGSYS handler does the bookkeeping itself.  So they are read and
 * dropped here.
 */
void agent_drain_events(void)
{
	struct uffd_msg msgs[16];

	if (agent.inline_mode && agent.uffd >= 0)
		while (usm_uffd_read(agent.uffd, msgs, 16) > 0)
			;
}

static void *monitor(void *arg)
{
	int sock = agent.sock;
	uint64_t last_pong = now_ms(), last_ping = 0, last_push = 0;

	(void)arg;
	while (atomic_load(&agent.state) == AGENT_ATTACHED) {
		struct pollfd pfd[2] = { { .fd = sock, .events = POLLIN },
					 { .fd = agent.inline_mode ? agent.uffd : -1,
					   .events = POLLIN } };
		union {
			struct usm_msg m;
			struct usm_msg_pin pin;
		} u;
		uint64_t t;
		int r = poll(pfd, 2, PING_MS);

		if (atomic_load(&agent.state) != AGENT_ATTACHED)
			break;
		if (r > 0 && pfd[1].revents)
			agent_drain_events();
		if (r > 0 && pfd[0].revents) {
			ssize_t n = recv(sock, &u, sizeof(u), MSG_DONTWAIT);
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
				agent_detach("the instance went away");
				break;
			}
			if (n > 0 && !usm_msg_check(&u, (size_t)n)) {
				if (u.m.type == USM_MSG_PONG)
					last_pong = now_ms();
				else if (u.m.type == USM_MSG_PIN)
					agent_pins_note(&u.pin);
			}
		}
		t = now_ms();
		if (t - last_ping >= PING_MS) {
			ping(sock);
			last_ping = t;
		}
		/* The in-process host's counters, for `usm stat`. */
		if (agent.api && t - last_push >= PING_MS) {
			agent.api->push_stats();
			last_push = t;
		}
		if (t - last_pong > (uint64_t)agent.timeout_ms) {
			agent_detach("the instance stopped answering");
			break;
		}
	}
	return NULL;
}

/* The kernel's sigset_t: 64 signals. */
#define KERNEL_SIGSET 8

/* A thread of the agent: on a stack the program never registers, with
 * every signal but SIGSYS blocked, and named (at most 15 characters) so
 * that top -H and perf tell it from the program's own threads. */
int agent_spawn(const char *name, void *(*fn)(void *), void *arg)
{
	pthread_attr_t attr;
	pthread_t t;
	sigset_t all, old;
	long stack = raw_syscall6(SYS_mmap, 0, STACK_SIZE, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int rc;

	if (raw_is_error(stack))
		return (int)stack;
	memset((void *)stack, 0, STACK_SIZE);      /* fault it all in now */
	pthread_attr_init(&attr);
	pthread_attr_setstack(&attr, (void *)stack, STACK_SIZE);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	/* Signals are the program's business, not the agent's: a program's
	 * handler run on the evictor in the middle of a batch may touch a
	 * page the batch has just moved out, and then both wait for each
	 * other.  The mask is set with our own syscall instruction: libc's
	 * is trapped (agent/intercept.c), and a mask changed inside the
	 * SIGSYS handler is undone when the handler returns. */
	sigfillset(&all);
	sigdelset(&all, SIGSYS);
	/* In the in-process host SIGBUS is how a thread's faults are
	 * served (libc's thread start-up may touch registered memory):
	 * blocked, it would kill the process. */
	if (agent.inline_mode)
		sigdelset(&all, SIGBUS);
	raw_syscall6(SYS_rt_sigprocmask, SIG_SETMASK, (long)&all, (long)&old, KERNEL_SIGSET, 0, 0);
	rc = pthread_create(&t, &attr, fn, arg);
	raw_syscall6(SYS_rt_sigprocmask, SIG_SETMASK, (long)&old, 0, KERNEL_SIGSET, 0, 0);
	pthread_attr_destroy(&attr);
	if (rc)
		raw_unmap((void *)stack, STACK_SIZE);
	else
		(void)pthread_setname_np(t, name);   /* cosmetic: errors ignored */
	return -rc;
}

int agent_monitor_start(void)
{
	return agent_spawn("usm-agent", monitor, NULL);
}
