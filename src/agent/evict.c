/* SPDX-License-Identifier: MIT */
/*
 * agent/evict.c - the agent's half of eviction (see struct usm_evict_chan).
 *
 * The daemon cannot take a page out of another process: UFFDIO_MOVE only
 * works inside one address space, and process_madvise refuses
 * MADV_DONTNEED.  So this thread does it on the daemon's request: it moves
 * each victim with UFFDIO_MOVE into a staging area — atomically, so no
 * thread of the program can write to the page after its content is taken
 * — copies it into the channel's outbox and empties the staging area.
 *
 * The staging area is registered with a second userfaultfd of our own,
 * without non-cooperative events: UFFDIO_MOVE needs a registered
 * destination, and emptying it must not raise events at the daemon.
 *
 * If the instance dies, agent_evict_restore() puts every swapped-out page
 * back from the swap devices (whose fds we hold) before the memory goes
 * back to the kernel.
 */
#include "agent/agent.h"
#include "ipc/proto.h"
#include "mech/rawsys.h"
#include "mech/stage.h"
#include "mech/uffd.h"
#include "swap/swapdev.h"

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define STAGE_PAGES 64
#define FORK_TIMEOUT_S 10

static struct usm_evict_chan *chan;
static int dev_fd[USM_SWAP_MAX_DEVS];
static unsigned ndev;
static struct usm_stage stage = { .uffd = -1 };
static uint64_t ps;
static uint32_t fork_token;
static pid_t fork_parent;          /* who asked for fork_token */
static int fork_slot;              /* its layout_tid slot, while it forks */
/* Held while pages move; recursive: detaching may happen inside. */
static pthread_mutex_t evict_mu = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static char page_buf[65536] __attribute__((aligned(4096)));

/*
 * Address-space changes (see struct usm_evict_chan, `marker`): numbered
 * under evict_mu, the last LAYOUT_RING remembered with the ranges they
 * touched.
 */
#define LAYOUT_RING 64

struct layout_change {
	uint64_t lo[2], hi[2];
};

static struct layout_change layout_ring[LAYOUT_RING];
static uint32_t layout_seq;
static void *marker;

static void *outbox(unsigned i)
{
	return (char *)chan + chan->outbox_off + (uint64_t)i * ps;
}

/* ---- set-up ---------------------------------------------------------- */

static int map_chan(int fd, char *err, size_t errlen)
{
	long hdr = raw_syscall6(SYS_mmap, 0, sizeof(struct usm_evict_chan), PROT_READ,
				MAP_SHARED, fd, 0);
	uint64_t size;
	long full;

	if (raw_is_error(hdr)) {
		snprintf(err, errlen, "mapping the eviction channel: %s", strerror((int)-hdr));
		return (int)hdr;
	}
	size = ((struct usm_evict_chan *)hdr)->size;
	ps = ((struct usm_evict_chan *)hdr)->page_size;
	if (((struct usm_evict_chan *)hdr)->magic != USM_EVICT_MAGIC || ps > sizeof(page_buf)) {
		raw_unmap((void *)hdr, sizeof(struct usm_evict_chan));
		snprintf(err, errlen, "the eviction channel is not one this agent knows");
		return -EPROTO;
	}
	raw_unmap((void *)hdr, sizeof(struct usm_evict_chan));
	full = raw_syscall6(SYS_mmap, 0, (long)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (raw_is_error(full)) {
		snprintf(err, errlen, "mapping the eviction channel: %s", strerror((int)-full));
		return (int)full;
	}
	chan = (struct usm_evict_chan *)full;
	return 0;
}

static int recv_devices(int sock, unsigned n, char *err, size_t errlen)
{
	for (ndev = 0; ndev < n && ndev < USM_SWAP_MAX_DEVS; ndev++) {
		struct usm_msg_swapdev d;
		int fd = -1;
		ssize_t len = usm_sock_recv(sock, &d, sizeof(d), &fd);

		if (len <= 0 || usm_msg_check(&d, (size_t)len) || d.h.type != USM_MSG_SWAPDEV ||
		    d.dev != ndev || fd < 0) {
			if (fd >= 0)
				close(fd);
			snprintf(err, errlen, "swap device %u missing from the instance", ndev);
			return -EPROTO;
		}
		dev_fd[ndev] = fd;
	}
	return 0;
}

/* A page of our own, registered and never touched: dropping it makes a
 * REMOVE event the instance recognises by its address. */
static void make_marker(int uffd)
{
	void *m = raw_map(ps, PROT_READ | PROT_WRITE);

	if (!m || usm_uffd_register(uffd, (uint64_t)m, ps, UFFDIO_REGISTER_MODE_MISSING)) {
		agent_log("no layout marker: this process's pages will not be evicted");
		if (m)
			raw_unmap(m, ps);
		return;
	}
	marker = m;
	chan->marker = (uint64_t)m;
}

int agent_evict_setup(int sock, int uffd, char *err, size_t errlen)
{
	struct usm_msg_evict_setup s;
	int fd = -1, rc;
	ssize_t n = usm_sock_recv(sock, &s, sizeof(s), &fd);

	if (n <= 0 || usm_msg_check(&s, (size_t)n) || s.h.type != USM_MSG_EVICT_SETUP || fd < 0) {
		if (fd >= 0)
			close(fd);
		snprintf(err, errlen, "no eviction channel from the instance");
		return -EPROTO;
	}
	rc = map_chan(fd, err, errlen);
	close(fd);
	if (!rc)
		rc = recv_devices(sock, s.ndevs, err, errlen);
	if (!rc)
		rc = usm_stage_create(&stage, STAGE_PAGES, ps, err, errlen);
	/* Before the program changes anything: the count starts in step. */
	if (!rc)
		make_marker(uffd);
	return rc;
}

/* ---- ordering with the program's munmap, mremap, madvise --------------- */

/*
 * A slot in chan->layout_tid for the calling thread, taken before it waits
 * for evict_mu and kept until it lets go: the instance then serves its
 * faults even when every free frame is waiting for our evictor.  With
 * more threads than slots inside such calls at once, wait for a slot.
 */
static int claim_layout_slot(void)
{
	int32_t tid = (int32_t)raw_syscall6(SYS_gettid, 0, 0, 0, 0, 0, 0);

	for (;;) {
		for (int i = 0; i < USM_LAYOUT_TIDS; i++) {
			int32_t free_slot = 0;
			if (atomic_compare_exchange_strong(&chan->layout_tid[i], &free_slot, tid))
				return i;
		}
		raw_syscall6(SYS_sched_yield, 0, 0, 0, 0, 0, 0);
	}
}

static void release_layout_slot(int slot)
{
	if (slot >= 0)
		atomic_store(&chan->layout_tid[slot], 0);
}

/* evict_mu, with a slot for the wait and the time it is held. */
static int lock_evict_mu(void)
{
	int slot = claim_layout_slot();

	pthread_mutex_lock(&evict_mu);
	return slot;
}

static void unlock_evict_mu(int slot)
{
	pthread_mutex_unlock(&evict_mu);
	release_layout_slot(slot);
}

int agent_evict_layout_begin(void)
{
	return chan ? lock_evict_mu() : -1;
}

void agent_evict_layout_end(int slot, uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	struct layout_change *c;

	if (slot < 0)
		return;
	if (!marker) {                  /* no count without a marker */
		unlock_evict_mu(slot);
		return;
	}
	c = &layout_ring[++layout_seq % LAYOUT_RING];
	*c = (struct layout_change){ { a, b }, { a + alen, b + blen } };
	/* After the call's own events: the instance counts this one. */
	raw_syscall6(SYS_madvise, (long)marker, (long)ps, MADV_DONTNEED, 0, 0, 0);
	unlock_evict_mu(slot);
}

/* evict_mu held: was va left alone by every change the instance had not
 * seen when it queued r? */
static bool request_current(const struct usm_evict_req *r)
{
	uint32_t behind = layout_seq - r->seq;

	if (!marker)
		return false;            /* changes are not counted: trust none */
	if (behind >= LAYOUT_RING)
		return false;            /* too old to tell: ask again later */
	for (uint32_t s = r->seq + 1; behind--; s++) {
		const struct layout_change *c = &layout_ring[s % LAYOUT_RING];
		for (int k = 0; k < 2; k++)
			if (r->vaddr >= c->lo[k] && r->vaddr < c->hi[k])
				return false;
	}
	return true;
}

/* ---- moving pages out --------------------------------------------------- */

static void move_batch(const unsigned *req, unsigned n)
{
	uint32_t answer[STAGE_PAGES];

	for (unsigned j = 0; j < n; j++) {
		uint64_t slot = usm_stage_slot(&stage, j);
		/* A page another call put at that address is not the one the
		 * instance chose: leave it. */
		int rc = request_current(&chan->req[req[j]])
			 ? usm_stage_take(&stage, slot, chan->req[req[j]].vaddr) : -ESTALE;
		answer[j] = usm_evict_answer(rc);
		if (rc == 0)
			memcpy(outbox(req[j]), (void *)(uintptr_t)slot, ps);
	}
	/* Empty the staging area for the next batch (no event: its own
	 * userfaultfd has none). */
	usm_stage_empty(&stage, stage.base, n * ps);
	for (unsigned j = 0; j < n; j++)
		atomic_store_explicit(&chan->req[req[j]].state, answer[j], memory_order_release);
}

static void process_queue(void)
{
	unsigned batch[STAGE_PAGES], n = 0;

	for (unsigned i = 0; i < chan->nreq; i++) {
		uint32_t queued = USM_EV_QUEUED;
		if (!atomic_compare_exchange_strong(&chan->req[i].state, &queued, USM_EV_MOVING))
			continue;
		batch[n++] = i;
		if (n == STAGE_PAGES) {
			move_batch(batch, n);
			n = 0;
		}
	}
	if (n)
		move_batch(batch, n);
	atomic_fetch_add(&chan->done, 1);
}

static void *evictor(void *arg)
{
	struct timespec tick = { .tv_sec = 0, .tv_nsec = 200 * 1000000 };

	(void)arg;
	while (atomic_load(&agent.state) == AGENT_ATTACHED) {
		uint32_t seen = atomic_load(&chan->kick);

		pthread_mutex_lock(&evict_mu);
		if (atomic_load(&agent.state) == AGENT_ATTACHED && chan)
			process_queue();
		pthread_mutex_unlock(&evict_mu);
		syscall(SYS_futex, &chan->kick, FUTEX_WAIT, seen, &tick, NULL, 0);
	}
	return NULL;
}

int agent_evict_start(void)
{
	if (!chan)
		return 0;
	return agent_spawn("usm-evictor", evictor, NULL);
}

/* ---- crash safety ------------------------------------------------------- */

/*
 * Address-space events the instance never read.  While one is queued the
 * kernel refuses UFFDIO_COPY (EAGAIN), and the thread that caused it waits
 * until it is read; once read, its munmap / MADV_DONTNEED / mremap goes
 * on.  So the restore reads them itself and applies them to every
 * swapped-out page before putting it back: a page in a removed range
 * stays empty, a page in a moved range goes to its new address.
 */
#define RESTORE_EVENTS 4096
#define RESTORE_TRIES 10000

struct layout_event {
	uint8_t event;              /* UFFD_EVENT_REMOVE, _UNMAP or _REMAP */
	uint64_t start, end, to;
};

static struct layout_event restore_log[RESTORE_EVENTS];
static unsigned restore_nlog;
static bool restore_log_full;

static void read_pending_events(void)
{
	struct uffd_msg msgs[16];
	int n;

	while ((n = usm_uffd_read(agent.uffd, msgs, 16)) > 0)
		for (int i = 0; i < n; i++) {
			const struct uffd_msg *m = &msgs[i];
			struct layout_event e = { .event = m->event };

			if (m->event == UFFD_EVENT_REMOVE || m->event == UFFD_EVENT_UNMAP) {
				e.start = m->arg.remove.start;
				e.end = m->arg.remove.end;
			} else if (m->event == UFFD_EVENT_REMAP) {
				e.start = m->arg.remap.from;
				e.end = m->arg.remap.from + m->arg.remap.len;
				e.to = m->arg.remap.to;
			} else {
				continue;   /* faults: unregistering wakes them */
			}
			if (restore_nlog == RESTORE_EVENTS) {
				restore_log_full = true;
				continue;
			}
			restore_log[restore_nlog++] = e;
		}
}

/* Where the page swapped out at va lives now (0: it was released). */
static uint64_t address_now(uint64_t va)
{
	for (unsigned i = 0; i < restore_nlog && va; i++) {
		const struct layout_event *e = &restore_log[i];

		if (va < e->start || va >= e->end)
			continue;
		va = e->event == UFFD_EVENT_REMAP ? e->to + (va - e->start) : 0;
	}
	return va;
}

/* Put content back at the page's current address; true if it is there
 * (or had been released meanwhile). */
static bool restore_page(uint64_t va, const void *content)
{
	for (int tries = 0; tries < RESTORE_TRIES; tries++) {
		uint64_t done = 0, now = address_now(va);
		int rc;

		if (!now)
			return true;
		rc = usm_uffd_copy_mode(agent.uffd, now, content, ps, 0, &done);
		if (rc == 0 || rc == -EEXIST || rc == -ENOENT)
			return true;
		if (rc != -EAGAIN) {
			agent_log("cannot restore page 0x%llx: %s", (unsigned long long)now,
				  strerror(-rc));
			return false;
		}
		read_pending_events();
	}
	agent_log("cannot restore page 0x%llx: the address space keeps changing",
		  (unsigned long long)va);
	return false;
}

void agent_evict_restore(void)
{
	const struct usm_swap_ent *tab;
	uint64_t n, lost = 0, back = 0;

	if (!chan)
		return;
	restore_nlog = 0;
	restore_log_full = false;
	/* A thread inside munmap & co. holds the lock until the event it
	 * raised is read: read them while waiting. */
	while (pthread_mutex_trylock(&evict_mu)) {
		read_pending_events();
		sched_yield();
	}
	read_pending_events();
	tab = (const void *)((const char *)chan + chan->table_off);
	n = atomic_load(&chan->table_hwm);
	for (uint64_t i = 0; i < n && i < chan->table_cap; i++) {
		uint64_t va = atomic_load_explicit(&tab[i].vaddr, memory_order_acquire);
		const struct usm_swap_loc *loc = &tab[i].loc;
		if (!va)
			continue;
		if (loc->dev >= ndev ||
		    usm_swap_read_loc(dev_fd[loc->dev], loc, page_buf, ps) ||
		    !restore_page(va, page_buf)) {
			lost++;
			continue;
		}
		back++;
	}
	for (unsigned i = 0; i < chan->nreq; i++)
		if (atomic_load(&chan->req[i].state) == USM_EV_COPIED) {
			if (restore_page(chan->req[i].vaddr, outbox(i)))
				back++;
			else
				lost++;
		}
	if (restore_log_full)
		agent_log("too many address-space changes during the restore; some "
			  "pages may be misplaced");
	if (back || lost)
		agent_log("restored %llu swapped-out page(s)%s", (unsigned long long)back,
			  lost ? " (some could not be put back: they read as zero)" : "");
	pthread_mutex_unlock(&evict_mu);
}

/* ---- fork --------------------------------------------------------------- */

static int ask_fork_token(void)
{
	struct usm_msg_fork_prepare m;
	struct usm_msg_ack ack;
	struct timeval tv = { .tv_sec = FORK_TIMEOUT_S };
	int sock = usm_sock_connect(agent.sock_path), rc;
	ssize_t n;

	if (sock < 0)
		return sock;
	setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	usm_msg_init(&m.h, USM_MSG_FORK_PREPARE, sizeof(m));
	m.pid = getpid();
	m.reserved = 0;
	rc = usm_sock_send(sock, &m, sizeof(m), -1);
	if (!rc) {
		n = usm_sock_recv(sock, &ack, sizeof(ack), NULL);
		if (n <= 0 || usm_msg_check(&ack, (size_t)n) || ack.h.type != USM_MSG_ACK)
			rc = n < 0 ? (int)n : -EPROTO;
		else
			rc = ack.status;
	}
	close(sock);
	return rc;
}

/*
 * Before fork: stop moving pages (until the fork is over) and have the
 * instance keep a reference to every swapped-out page for the child.  If
 * that fails, the child would find those pages empty: detach instead,
 * which puts them all back first.
 */
void agent_evict_fork_prepare(void)
{
	int rc;

	fork_token = 0;
	fork_parent = getpid();
	if (!chan || atomic_load(&agent.state) != AGENT_ATTACHED)
		return;
	fork_slot = lock_evict_mu();
	rc = ask_fork_token();
	if (rc > 0) {
		fork_token = (uint32_t)rc;
		return;
	}
	agent_log("fork: the instance cannot share swapped-out pages with the child (%s)",
		  strerror(rc < 0 ? -rc : EPROTO));
	agent_detach("fork without the instance's snapshot");
	unlock_evict_mu(fork_slot);
}

void agent_evict_fork_parent(void)
{
	if (fork_token)
		unlock_evict_mu(fork_slot);
}

/* The child's copy of our state belongs to the parent's attachment. */
void agent_evict_fork_child(void)
{
	pthread_mutex_t fresh = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;

	evict_mu = fresh;
	if (chan)
		raw_unmap(chan, chan->size);
	chan = NULL;
	for (unsigned i = 0; i < ndev; i++)
		close(dev_fd[i]);
	ndev = 0;
	usm_stage_close(&stage);
	if (stage.mapped)
		raw_unmap((void *)(uintptr_t)stage.base, STAGE_PAGES * ps);
	stage.mapped = false;
	if (marker)
		raw_unmap(marker, ps);
	marker = NULL;
	layout_seq = 0;
}

uint32_t agent_evict_fork_token(void)
{
	return fork_token;
}

/* The pid the token belongs to: the parent may have exited by the time
 * the child says HELLO (getppid() would then be 1 or a subreaper). */
pid_t agent_evict_fork_asker(void)
{
	return fork_parent;
}
