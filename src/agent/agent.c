/* SPDX-License-Identifier: MIT */
/*
 * agent/agent.c - attach to the instance at start-up and after fork, and
 * detach (hand all memory back to the kernel) when it goes away.
 *
 * Environment (set by `usm run`):
 *   USM_SOCKET           the instance's socket; unset = do nothing
 *   USM_POLICY           allocation policy to ask for
 *   USM_REQUIRED=1       exit(126) instead of running unmanaged if the
 *                        first attach fails (cleared once attached, so
 *                        children and exec'd programs degrade gracefully)
 *   USM_AGENT_TIMEOUT_MS silence from the instance before detaching (10000)
 */
#include "agent/agent.h"
#include "mech/rawsys.h"
#include "ipc/proto.h"
#include "mech/uffd.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#define HELLO_TIMEOUT_S 10
#define MAX_FORK_RANGES 16384
#define MAX_FORK_TOPS 4096

struct agent agent = { .uffd = -1, .sock = -1, .lock = ATOMIC_FLAG_INIT };

/* Ranges registered at fork time, for the child to register again. */
struct range {
	uint64_t start, end;
};
static struct range fork_ranges[MAX_FORK_RANGES];
static size_t n_fork_ranges;

/* Pages glibc's fork touches in the child (see keep_fork_pages). */
static uint64_t fork_tops[MAX_FORK_TOPS];
static size_t n_fork_tops;

/* The in-process host was stopped for a fork (before_fork). */
static bool inline_forking;

void agent_log(const char *fmt, ...)
{
	char buf[384];
	va_list ap;
	int n = snprintf(buf, sizeof(buf), "usm-agent[%d]: ", (int)getpid());

	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	if (write(2, buf, (size_t)n) < 0)
		return;
}

static void lock(void)
{
	while (atomic_flag_test_and_set_explicit(&agent.lock, memory_order_acquire))
		;
}

static void unlock(void)
{
	atomic_flag_clear_explicit(&agent.lock, memory_order_release);
}

void agent_register(uint64_t start, uint64_t len)
{
	if (len == 0 || atomic_load(&agent.state) != AGENT_ATTACHED)
		return;
	lock();
	if (agent.uffd >= 0)
		usm_uffd_register(agent.uffd, start, len, agent.reg_mode);
	unlock();
	/* With 2 MiB pages in play, a huge page can be moved in whole only
	 * where the PMD is empty.  On a THP-eligible mapping a fault leaves
	 * the PMD empty, but the kernel's huge-page fault path clears a
	 * 2 MiB page before it asks userfaultfd, and throws it away.  So the
	 * mapping is made not eligible: a fault costs a 4 KiB clear and
	 * leaves an empty page table, which whoever moves the huge page in
	 * frees first (core/huge.c in the process, agent/thp_pool.c for the
	 * daemon). */
	if (agent.want_pool)
		raw_syscall6(SYS_madvise, (long)start, (long)len, MADV_NOHUGEPAGE, 0, 0, 0);
}

static int unregister_entry(const struct maps_entry *e, void *arg)
{
	(void)arg;
	if (e->anon)
		usm_uffd_unregister(agent.uffd, e->start, e->end - e->start);
	return 0;
}

static void drain_events(int uffd)
{
	struct uffd_msg msgs[16];

	while (usm_uffd_read(uffd, msgs, 16) > 0)
		;
}

void agent_detach(const char *why)
{
	int expected = AGENT_ATTACHED;

	if (!atomic_compare_exchange_strong(&agent.state, &expected, AGENT_DETACHED))
		return;
	atomic_store(&agent.restoring, true);
	lock();
	/* Pages on swap devices go back in place before the kernel takes
	 * over: after that a touch would find them empty.  Meanwhile a
	 * thread that touches one retries its access (agent/inline.c). */
	agent_evict_restore();
	if (agent.api)
		agent.api->restore();
	agent_pins_restore();
	/* Unregistering wakes every thread blocked on a fault in the range;
	 * the kernel then serves it.  Pages already mapped stay as they are. */
	agent_maps_walk(false, unregister_entry, NULL);
	/* A thread in munmap/mremap/madvise waits until its event is read,
	 * and a stopped instance still holds the fd, so closing ours does not
	 * release it: read the queued events here (no range is registered
	 * now, so no new one can come). */
	drain_events(agent.uffd);
	close(agent.uffd);
	agent.uffd = -1;
	atomic_store(&agent.restoring, false);
	unlock();
	agent_inline_stop();
	close(agent.sock);
	agent.sock = -1;
	agent_log("%s; continuing unmanaged (all memory stays in place)", why);
}

/* ---- attaching ------------------------------------------------------- */

void agent_comm(char *comm, size_t len)
{
	if (prctl(PR_GET_NAME, comm, 0, 0, 0) < 0)
		snprintf(comm, len, "?");
}

static int hello(int sock, int uffd, uint64_t features, uint32_t flags, char *err, size_t errlen)
{
	struct usm_msg_hello h;
	struct usm_msg_ack ack;
	struct timeval tv = { .tv_sec = HELLO_TIMEOUT_S };
	const char *bad;
	ssize_t n;
	int rc;

	usm_msg_init(&h.h, USM_MSG_HELLO, sizeof(h));
	h.pid = getpid();
	h.ppid = (flags & USM_HELLO_FORKED) && agent_evict_fork_asker() ? agent_evict_fork_asker()
								   : getppid();
	h.flags = flags;
	h.fork_token = (flags & USM_HELLO_FORKED) ? agent_evict_fork_token() : 0;
	h.features = features;
	agent_comm(h.comm, sizeof(h.comm));
	snprintf(h.policy, sizeof(h.policy), "%s", agent.policy);
	setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	rc = usm_sock_send(sock, &h, sizeof(h), uffd);
	if (rc) {
		snprintf(err, errlen, "sending HELLO: %s", strerror(-rc));
		return rc;
	}
	n = usm_sock_recv(sock, &ack, sizeof(ack), NULL);
	if (n <= 0) {
		snprintf(err, errlen, "no answer from the instance: %s",
			 n == 0 ? "connection closed" : strerror((int)-n));
		return n == 0 ? -ECONNRESET : (int)n;
	}
	bad = usm_msg_check(&ack, (size_t)n);
	if (bad || ack.h.type != USM_MSG_ACK) {
		snprintf(err, errlen, "bad answer from the instance: %s", bad ? bad : "not an ACK");
		return -EPROTO;
	}
	if (ack.status == USM_ACK_GO_INLINE)
		return USM_ACK_GO_INLINE;
	agent.want_pool = (ack.flags & USM_ACK_WANT_POOL) != 0;
	agent.want_evict = (ack.flags & USM_ACK_EVICT) != 0;
	agent.want_sentinels = (ack.flags & USM_ACK_SENTINELS) != 0;
	if (ack.status) {
		snprintf(err, errlen, "instance refused: %s", ack.error);
		return ack.status;
	}
	return 0;
}

/* After an inline HELLO the instance sends the config the host needs. */
static int inline_config(int sock, char *err, size_t errlen)
{
	static struct usm_msg_inline_config m;   /* 8 KiB: not on the stack */
	ssize_t n = usm_sock_recv(sock, &m, sizeof(m), NULL);

	if (n <= 0 || usm_msg_check(&m, (size_t)n) || m.h.type != USM_MSG_INLINE_CONFIG) {
		snprintf(err, errlen, "no config from the instance for the in-process host");
		return -EPROTO;
	}
	m.text[sizeof(m.text) - 1] = '\0';
	agent.uffd_pending_config = m.text;
	return 0;
}

/* Create a userfaultfd, connect, HELLO.  On success agent.uffd/sock are set. */
static int connect_instance(uint32_t flags, char *err, size_t errlen)
{
	bool in = flags & USM_HELLO_INLINE;
	/* Inline: faults come as SIGBUS to the faulting thread; munmap & co
	 * are trapped instead of reported.  Only REMAP is asked for: without
	 * it, mremap drops the registration of the moved mapping *and* of
	 * any registered neighbour the kernel merges it with, and a
	 * swapped-out page there would then read as zero.  The monitor
	 * thread reads those events (agent/monitor.c). */
	/* WP_ASYNC: registered with MODE_WP, written pages can be found
	 * with PAGEMAP_SCAN (the instance's access tracking, core/access.c)
	 * at the cost of a minor fault in the kernel, never a message. */
	uint64_t want = in ? UFFD_FEATURE_SIGBUS | UFFD_FEATURE_MOVE | UFFD_FEATURE_WP_ASYNC |
			     UFFD_FEATURE_EVENT_REMAP
			   : USM_UFFD_WANTED | UFFD_FEATURE_WP_ASYNC;
	uint64_t need = in ? UFFD_FEATURE_SIGBUS : USM_UFFD_REQUIRED;
	uint64_t got = 0, missing = 0;
	int uffd, sock, rc;

	uffd = usm_uffd_create();
	if (uffd < 0) {
		snprintf(err, errlen, "userfaultfd: %s", strerror(-uffd));
		return uffd;
	}
	rc = usm_uffd_api(uffd, want, need, &got, &missing);
	if (rc) {
		snprintf(err, errlen, "UFFDIO_API: %s%s", strerror(-rc),
			 missing ? " (the kernel lacks a userfaultfd feature USM needs)" : "");
		close(uffd);
		return rc;
	}
	sock = usm_sock_connect(agent.sock_path);
	if (sock < 0) {
		snprintf(err, errlen, "cannot reach instance at %s: %s", agent.sock_path,
			 strerror(-sock));
		close(uffd);
		return sock;
	}
	rc = hello(sock, uffd, got, flags, err, errlen);
	if (!rc && in)
		rc = inline_config(sock, err, errlen);
	if (!rc && !in && agent.want_evict)
		rc = agent_evict_setup(sock, uffd, err, errlen);
	if (rc) {
		close(sock);
		close(uffd);
		return rc;
	}
	agent.uffd = uffd;
	agent.sock = sock;
	agent.features = got;
	agent.reg_mode = UFFDIO_REGISTER_MODE_MISSING;
	/* Eviction tracks writes, and write sentinels are write-protected
	 * pages (core/sentinel.c): both need MODE_WP. */
	if ((agent.want_evict || agent.want_sentinels) && (got & UFFD_FEATURE_WP_ASYNC))
		agent.reg_mode |= UFFDIO_REGISTER_MODE_WP;
	return 0;
}

/* The policy wants 2 MiB pages: build the pool, share its header. */
static void send_pool(int sock)
{
	struct usm_thp_pool *pool;
	struct usm_msg_pool_ready r;
	int fd = agent_pool_create(&pool);

	if (fd < 0) {
		agent_log("no 2 MiB page pool: %s", strerror(-fd));
		return;
	}
	usm_msg_init(&r.h, USM_MSG_POOL_READY, sizeof(r));
	r.base = pool->base;
	r.nslots = pool->nslots;
	usm_sock_send(sock, &r, sizeof(r), fd);
}

static int register_heap(const struct maps_entry *e, void *arg)
{
	(void)arg;
	if (e->heap)
		agent_register(e->start, e->end - e->start);
	return 0;
}

static int attach(uint32_t flags)
{
	char err[256];
	int rc = connect_instance(flags | (agent.inline_mode ? USM_HELLO_INLINE : 0),
				 err, sizeof(err));

	if (rc == USM_ACK_GO_INLINE) {
		agent.inline_mode = true;
		rc = connect_instance(flags | USM_HELLO_INLINE, err, sizeof(err));
	}
	if (!rc && agent.inline_mode)
		rc = agent.api ? agent_inline_forked(err, sizeof(err))
			       : agent_inline_start(agent.uffd_pending_config, err, sizeof(err));
	/* An in-process host that evicts tracks writes, as the daemon does,
	 * and write sentinels need the same registration. */
	if (!rc && agent.inline_mode &&
	    (agent.api->evicting() || agent.api->wants_sentinels()) &&
	    (agent.features & UFFD_FEATURE_WP_ASYNC))
		agent.reg_mode |= UFFDIO_REGISTER_MODE_WP;
	if (rc && agent.uffd >= 0) {
		close(agent.uffd);
		close(agent.sock);
		agent.uffd = agent.sock = -1;
	}
	if (rc) {
		if (agent.required) {
			agent_log("%s", err);
			_exit(126);
		}
		agent_log("%s; running unmanaged", err);
		return rc;
	}
	atomic_store(&agent.state, AGENT_ATTACHED);
	return 0;
}

/* ---- fork ------------------------------------------------------------ */

/* A glibc thread stack: a writable mapping right above its PROT_NONE guard. */
static bool is_thread_stack(const struct maps_entry *e, const struct maps_entry *below)
{
	return e->anon && !e->stack && e->perms[0] == 'r' && e->perms[1] == 'w' &&
	       below->end == e->start && below->anon && !strncmp(below->perms, "---", 3);
}

/* glibc's non-main malloc arenas sit at the start of a heap mapping
 * aligned to HEAP_MAX_SIZE (64 MiB on 64-bit). */
#define ARENA_ALIGN (64ull << 20)

static void keep_page(uint64_t va)
{
	if (n_fork_tops < MAX_FORK_TOPS)
		fork_tops[n_fork_tops++] = va & ~((uint64_t)sysconf(_SC_PAGESIZE) - 1);
}

static int snapshot_entry(const struct maps_entry *e, void *arg)
{
	struct maps_entry *below = arg;

	if (e->uffd_missing && n_fork_ranges < MAX_FORK_RANGES)
		fork_ranges[n_fork_ranges++] = (struct range){ e->start, e->end };
	if (e->uffd_missing && is_thread_stack(e, below))
		keep_page(e->end - 1);
	if (e->uffd_missing && !(e->start & (ARENA_ALIGN - 1)))
		keep_page(e->start);
	*below = *e;
	return 0;
}

/* glibc's list of open streams (exported, but in no public header). */
extern FILE *_IO_list_all;
extern void _IO_list_lock(void);
extern void _IO_list_unlock(void);

/* Every stream and its lock: the child's fork resets their locks. */
static void keep_streams(void)
{
	_IO_list_lock();
	for (FILE *f = _IO_list_all; f; f = f->_chain) {
		keep_page((uint64_t)(uintptr_t)f);
		keep_page((uint64_t)(uintptr_t)f + sizeof(*f) - 1);
		if (f->_lock)
			keep_page((uint64_t)(uintptr_t)f->_lock);
	}
	_IO_list_unlock();
}

/* Touch the kept pages: all of them, or those not resident. */
static void touch_fork_tops(bool only_missing)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE);
	unsigned char in_core;

	for (size_t i = 0; i < n_fork_tops; i++) {
		void *page = (void *)(uintptr_t)fork_tops[i];
		if (only_missing && !mincore(page, ps, &in_core) && (in_core & 1))
			continue;
		(void)*(volatile const char *)page;
	}
}

/* Are all kept pages resident? */
static bool fork_tops_resident(void)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE);
	unsigned char in_core;

	for (size_t i = 0; i < n_fork_tops; i++)
		if (mincore((void *)(uintptr_t)fork_tops[i], ps, &in_core) || !(in_core & 1))
			return false;
	return true;
}

/*
 * In the child, glibc's fork runs before any atfork handler, so before
 * the child has registered anything, and it touches memory of the parent:
 * the other threads' descriptors (the top page of each thread stack) and
 * cached stacks, every malloc arena (unlocked afresh) and every stream's
 * lock.  A page the parent had swapped out would read as zero there, and
 * the child would crash in fork or later in malloc.  So the parent brings
 * those pages in before it stops evicting, and again, after, any that
 * went out in between.  The in-process host's faulting threads evict by
 * themselves (direct reclaim), so there the pages are brought in while
 * eviction runs, until they are all still there once it is stopped.
 */
static void keep_fork_pages(bool inline_host)
{
	touch_fork_tops(false);
	agent_evict_fork_prepare();
	if (!inline_host) {
		touch_fork_tops(true);
		return;
	}
	for (int tries = 0; tries < 100; tries++) {
		agent.api->fork_pause();
		if (fork_tops_resident())
			return;
		agent.api->fork_resume();
		touch_fork_tops(true);
	}
	agent.api->fork_pause();         /* the child may find a page missing */
}

/*
 * Without UFFD_FEATURE_EVENT_FORK the child's mappings come out of fork
 * unregistered and fully the kernel's: correct, but unmanaged.  So the
 * parent notes what it has registered, and the child attaches with a
 * userfaultfd of its own and registers the same ranges.
 */
static void before_fork(void)
{
	struct maps_entry below = { 0 };

	bool inline_host = agent.api && atomic_load(&agent.state) == AGENT_ATTACHED;

	n_fork_ranges = n_fork_tops = 0;
	agent_pins_fork_prepare();
	if (atomic_load(&agent.state) == AGENT_ATTACHED) {
		agent_maps_walk(true, snapshot_entry, &below);
		keep_streams();
	}
	keep_fork_pages(inline_host);
	/* The in-process host stops the world last: the child gets a
	 * consistent copy of its tables and devices. */
	if (inline_host) {
		agent.api->fork_prepare();
		inline_forking = true;
	}
}

static void in_parent(void)
{
	if (inline_forking)
		agent.api->fork_parent();
	inline_forking = false;
	agent_evict_fork_parent();
}

static void in_child(void)
{
	bool was_attached = atomic_load(&agent.state) == AGENT_ATTACHED;

	/* Whatever another thread held at fork time is not held here. */
	atomic_flag_clear(&agent.lock);
	inline_forking = false;
	agent_pins_fork_child();
	/* The inherited descriptors belong to the parent's attachment. */
	if (agent.uffd >= 0)
		close(agent.uffd);
	if (agent.sock >= 0)
		close(agent.sock);
	agent.uffd = agent.sock = -1;
	atomic_store(&agent.state, AGENT_OFF);
	agent_pool_forget();
	agent_evict_fork_child();
	if (!was_attached || attach(USM_HELLO_FORKED))
		return;
	if (agent.want_pool && !agent.inline_mode)
		send_pool(agent.sock);
	for (size_t i = 0; i < n_fork_ranges; i++)
		agent_register(fork_ranges[i].start, fork_ranges[i].end - fork_ranges[i].start);
	/* Threads only now: creating one touches the heap (glibc reuses the
	 * parent's cached stacks and their malloc'd TLS vectors), and a page
	 * of it swapped out in the parent must fault to the host, not read
	 * as zero. */
	if (agent.inline_mode)
		agent_inline_threads();
	if (agent_monitor_start() || agent_evict_start())
		agent_detach("cannot start the agent's threads");
}

/* ---- start-up -------------------------------------------------------- */

/* The in-process host's last counters reach the instance at exit. */
static void push_final_stats(void)
{
	if (agent.api && atomic_load(&agent.state) == AGENT_ATTACHED)
		agent.api->push_stats();
}

static void read_env(void)
{
	const char *s = getenv("USM_SOCKET"), *p = getenv("USM_POLICY");
	const char *r = getenv("USM_REQUIRED"), *t = getenv("USM_AGENT_TIMEOUT_MS");

	snprintf(agent.sock_path, sizeof(agent.sock_path), "%s", s ? s : "");
	snprintf(agent.policy, sizeof(agent.policy), "%s", p ? p : "");
	agent.required = r && !strcmp(r, "1");
	agent.inline_mode = getenv("USM_INLINE") && !strcmp(getenv("USM_INLINE"), "1");
	agent.timeout_ms = t ? atoi(t) : 0;
	if (agent.timeout_ms <= 0)
		agent.timeout_ms = 10000;
	/* Only the program usm run started must attach; its children and
	 * exec'd images degrade to unmanaged on failure. */
	unsetenv("USM_REQUIRED");
}

__attribute__((constructor)) static void agent_init(void)
{
	read_env();
	if (!agent.sock_path[0])
		return;
	if (attach(0))
		return;
	/* The filter first: the agent's threads must be born under it. */
	agent.intercepting = agent_intercept_install() == 0;
	if (agent.inline_mode)
		agent_inline_threads();
	else if (agent.want_pool)
		send_pool(agent.sock);
	agent_maps_walk(false, register_heap, NULL);
	if (agent_monitor_start() || agent_evict_start()) {
		agent_detach("cannot start the agent's threads");
		return;
	}
	pthread_atfork(before_fork, in_parent, in_child);
	if (agent.inline_mode)
		atexit(push_final_stats);
}
