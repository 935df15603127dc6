/* SPDX-License-Identifier: MIT */
/*
 * agent/inline.c - load the in-process host and give it a channel to the
 * instance; resolve faults in the faulting thread's SIGBUS handler.
 *
 * With UFFD_FEATURE_SIGBUS the kernel does not queue a missing fault: it
 * sends the faulting thread SIGBUS (BUS_ADRERR).  The handler asks libusm's
 * in-process host to resolve the page (UFFDIO_COPY from this thread) and
 * returns, and the access is retried.  A SIGBUS that is not ours goes to
 * the program's own handler, or kills as it would have.
 */
#include "agent/agent.h"
#include "ipc/proto.h"
#include "mech/rawsys.h"
#include "mech/uffd.h"

#include <dlfcn.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#define RPC_TIMEOUT_S 10
#define PAGE 4096ull

static int rpc = -1;
static atomic_flag rpc_lock = ATOMIC_FLAG_INIT;
static struct usm_lease_page *lease_page;   /* the instance's requests */
static __thread int in_fault __attribute__((tls_model("initial-exec")));
static __thread uint64_t last_retry_addr __attribute__((tls_model("initial-exec")));
static __thread int retries __attribute__((tls_model("initial-exec")));
static char zero_page[PAGE] __attribute__((aligned(4096)));

/* ---- the channel ------------------------------------------------------ */

static int rpc_call(const void *req, size_t len, void *reply, size_t rlen, uint16_t type)
{
	ssize_t n = 0;
	int rc;

	while (atomic_flag_test_and_set_explicit(&rpc_lock, memory_order_acquire))
		;
	rc = rpc < 0 ? -ENOTCONN : usm_sock_send(rpc, req, len, -1);
	if (!rc && reply) {
		n = usm_sock_recv(rpc, reply, rlen, NULL);
		if (n <= 0 || usm_msg_check(reply, (size_t)n) ||
		    ((struct usm_msg *)reply)->type != type)
			rc = n < 0 ? (int)n : -EPROTO;
	}
	atomic_flag_clear_explicit(&rpc_lock, memory_order_release);
	return rc;
}

static int host_lease(int64_t delta, int64_t *granted, bool *recalling)
{
	struct usm_msg_lease m;
	struct usm_msg_lease_reply r;
	int rc;

	usm_msg_init(&m.h, USM_MSG_LEASE, sizeof(m));
	m.delta = delta;
	rc = rpc_call(&m, sizeof(m), &r, sizeof(r), USM_MSG_LEASE_REPLY);
	*granted = rc ? 0 : r.granted;
	*recalling = !rc && r.recalling;
	return rc;
}

static int host_oom(void)
{
	struct usm_msg m;
	struct usm_msg_ack a;
	int rc;

	usm_msg_init(&m, USM_MSG_OOM, sizeof(m));
	rc = rpc_call(&m, sizeof(m), &a, sizeof(a), USM_MSG_ACK);
	return rc ? rc : a.status;
}

static int host_push(const struct usm_msg_stats_push *m)
{
	return rpc_call(m, sizeof(*m), NULL, 0, 0);
}

/* Frames the instance asks back, taken (0: none asked). */
static int64_t host_recalled(void)
{
	struct usm_lease_page *lp = lease_page;

	if (!lp || atomic_load_explicit(&lp->recall, memory_order_relaxed) <= 0)
		return 0;
	return atomic_exchange(&lp->recall, 0);
}

static void host_recall_short(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (lease_page)
		atomic_store(&lease_page->short_ns,
			     (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec);
}

static const struct usm_inline_host host = {
	.lease = host_lease,
	.oom = host_oom,
	.push = host_push,
	.drain_events = agent_drain_events,
	.recalled = host_recalled,
	.recall_short = host_recall_short,
};

/* The lease page that came with ATTACH_RPC's ACK. */
static void map_lease_page(int fd)
{
	long m = raw_syscall6(SYS_mmap, 0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	close(fd);
	if (raw_is_error(m) || ((struct usm_lease_page *)m)->magic != USM_LEASE_MAGIC) {
		if (!raw_is_error(m))
			raw_unmap((void *)m, 4096);
		agent_log("no lease page from the instance: frames are given back only when "
			  "free");
		return;
	}
	lease_page = (struct usm_lease_page *)m;
}

static int open_channel(char *err, size_t errlen)
{
	struct usm_msg_attach_rpc m;
	struct usm_msg_ack a;
	struct timeval tv = { .tv_sec = RPC_TIMEOUT_S };
	int s = usm_sock_connect(agent.sock_path), fd = -1;
	ssize_t n;

	if (s < 0) {
		snprintf(err, errlen, "channel to the instance: %s", strerror(-s));
		return s;
	}
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	usm_msg_init(&m.h, USM_MSG_ATTACH_RPC, sizeof(m));
	m.pid = getpid();
	if (usm_sock_send(s, &m, sizeof(m), -1) ||
	    (n = usm_sock_recv(s, &a, sizeof(a), &fd)) <= 0 ||
	    usm_msg_check(&a, (size_t)n) || a.h.type != USM_MSG_ACK || a.status) {
		snprintf(err, errlen, "channel to the instance refused");
		if (fd >= 0)
			close(fd);
		close(s);
		return -EPROTO;
	}
	if (lease_page)
		raw_unmap(lease_page, 4096);        /* a fork child's: the parent's */
	lease_page = NULL;
	if (fd >= 0)
		map_lease_page(fd);
	rpc = s;
	return 0;
}

/* ---- SIGBUS ----------------------------------------------------------- */

/* The program's handler for a SIGBUS that is not a USM fault. */
static void chain(int sig, siginfo_t *si, void *ctx)
{
	void *handler;
	unsigned long flags;

	agent_app_sigbus(&handler, &flags);
	if (handler == SIG_DFL || handler == SIG_IGN) {
		/* Back to the default: the access is retried and the kernel
		 * delivers the SIGBUS it would have without us. */
		struct sigaction dfl = { .sa_handler = SIG_DFL };
		sigaction(SIGBUS, &dfl, NULL);
		return;
	}
	if (flags & SA_SIGINFO)
		((void (*)(int, siginfo_t *, void *))handler)(sig, si, ctx);
	else
		((void (*)(int))handler)(sig);
}

/*
 * A fault taken while this thread is already resolving one (framework or
 * policy code touching registered memory): map a zero page directly, the
 * policy lock may be held.
 */
static void emergency(uint64_t addr)
{
	uint64_t done;

	usm_uffd_copy(agent.uffd, addr, zero_page, PAGE, &done);
}

static void on_sigbus(int sig, siginfo_t *si, void *ctx)
{
	greg_t *g = ((ucontext_t *)ctx)->uc_mcontext.gregs;
	uint64_t addr = (uint64_t)(uintptr_t)si->si_addr & ~(PAGE - 1);

	if (si->si_code == BUS_ADRERR && agent.api) {
		if (atomic_load(&agent.state) != AGENT_ATTACHED && atomic_load(&agent.restoring)) {
			/* Its page may be swapped out and on its way back
			 * (agent_detach): retry until the range is the
			 * kernel's. */
			sched_yield();
			return;
		}
		if (atomic_load(&agent.state) != AGENT_ATTACHED) {
			/* Detached between the fault and now: the range is the
			 * kernel's again, so retrying the access is enough. */
			if (addr != last_retry_addr || retries++ < 3) {
				if (addr != last_retry_addr)
					retries = 0;
				last_retry_addr = addr;
				return;
			}
		} else if (in_fault) {
			emergency(addr);
			return;
		} else {
			int rc;
			in_fault = 1;
			rc = agent.api->fault(addr, (g[REG_ERR] & 2) != 0);
			in_fault = 0;
			if (rc == 0)
				return;
		}
	}
	chain(sig, si, ctx);
}

static int install_sigbus(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	/* NODEFER: a nested fault must reach us (see emergency()).  The
	 * program's signals wait until the fault is resolved. */
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigfillset(&sa.sa_mask);
	sigdelset(&sa.sa_mask, SIGBUS);
	sigdelset(&sa.sa_mask, SIGSYS);
	sigdelset(&sa.sa_mask, SIGSEGV);
	return sigaction(SIGBUS, &sa, NULL) < 0 ? -errno : 0;
}

/* ---- start ------------------------------------------------------------ */

static const struct usm_inline_api *load_libusm(char *err, size_t errlen)
{
	const char *path = getenv("USM_LIBUSM");
	void *h = dlopen(path && *path ? path : "libusm-inline.so", RTLD_NOW | RTLD_GLOBAL);
	const struct usm_inline_api *api;

	if (!h) {
		snprintf(err, errlen, "cannot load libusm for the in-process host: %s", dlerror());
		return NULL;
	}
	api = dlsym(h, USM_INLINE_API_SYMBOL);
	if (!api)
		snprintf(err, errlen, "libusm has no in-process host (%s)", USM_INLINE_API_SYMBOL);
	return api;
}

int agent_inline_start(const char *config, char *err, size_t errlen)
{
	const struct usm_inline_api *api = load_libusm(err, errlen);
	char comm[16] = "";
	int rc;

	if (!api)
		return -ENOENT;
	rc = open_channel(err, errlen);
	if (rc)
		return rc;
	agent_comm(comm, sizeof(comm));
	if (api->start(&host, config, getpid(), comm, agent.uffd, err, errlen)) {
		agent_inline_stop();
		return -EINVAL;
	}
	rc = install_sigbus();
	if (rc) {
		snprintf(err, errlen, "SIGBUS handler: %s", strerror(-rc));
		agent_inline_stop();
		return rc;
	}
	agent.api = api;
	return 0;
}

/*
 * After the seccomp filter is in place: a thread created before it would
 * get it (TSYNC) while glibc still has all its signals blocked, and its
 * first trapped call would then kill the process.
 */
void agent_inline_threads(void)
{
	struct usm_thp_pool *pool;

	if (!agent.api)
		return;
	if (agent.api->wants_pool() && agent_pool_create(&pool) >= 0) {
		agent.want_pool = true;
		agent.api->pool_ready(pool);
	}
	agent.api->start_threads();
}

int agent_inline_forked(char *err, size_t errlen)
{
	int rc;

	if (rpc >= 0)
		close(rpc);              /* the parent's channel */
	rpc = -1;
	atomic_flag_clear(&rpc_lock);
	rc = open_channel(err, errlen);
	if (rc)
		return rc;
	agent.api->forked(getpid(), agent.uffd);
	return 0;
}

void agent_inline_stop(void)
{
	while (atomic_flag_test_and_set_explicit(&rpc_lock, memory_order_acquire))
		;
	if (rpc >= 0)
		close(rpc);
	rpc = -1;
	atomic_flag_clear_explicit(&rpc_lock, memory_order_release);
}
