/* SPDX-License-Identifier: MIT */
/*
 * ipc/proto.h - the messages on an instance's Unix socket.
 *
 * SOCK_SEQPACKET, so each message arrives whole.  Clients are the preload
 * agent (one connection per process image: HELLO carries the process's
 * userfaultfd as SCM_RIGHTS; the connection's end means exit or exec) and
 * the CLI (STATS).  Every message starts with struct usm_msg; the daemon
 * rejects a wrong magic, version or size with an ACK naming the problem.
 */
#ifndef USM_IPC_PROTO_H
#define USM_IPC_PROTO_H

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

#include "mech/rawsys.h"
#include "swap/swapdev.h"

#define USM_PROTO_MAGIC   0x314d5355u   /* "USM1" */
#define USM_PROTO_VERSION 4

enum usm_msg_type {
	USM_MSG_HELLO = 1,     /* agent -> daemon, + uffd */
	USM_MSG_ACK,           /* daemon -> client: status of the last request */
	USM_MSG_PING,          /* agent -> daemon: are you alive and serving? */
	USM_MSG_PONG,
	USM_MSG_STATS,         /* cli -> daemon */
	USM_MSG_STATS_REPLY,
	USM_MSG_SHUTDOWN,      /* cli -> daemon: stop the instance */
	/* The in-process host (usm run --inline): */
	USM_MSG_INLINE_CONFIG, /* daemon -> agent after ACK: config text */
	USM_MSG_ATTACH_RPC,    /* agent -> daemon, on a second connection */
	USM_MSG_LEASE,         /* agent -> daemon: take (or give back) frames */
	USM_MSG_LEASE_REPLY,
	USM_MSG_OOM,           /* agent -> daemon: budget exhausted, decide */
	USM_MSG_STATS_PUSH,    /* agent -> daemon: the process's counters */
	USM_MSG_POOL_READY,    /* agent -> daemon, + the pool's memfd */
	/* Eviction (daemon host): */
	USM_MSG_EVICT_SETUP,   /* daemon -> agent after ACK, + the channel memfd */
	USM_MSG_SWAPDEV,       /* daemon -> agent, + one swap device's fd */
	USM_MSG_FORK_PREPARE,  /* agent -> daemon (own connection), before fork */
	/* Worker placement (mode colocate): */
	USM_MSG_PIN,           /* daemon -> agent: a thread was pinned, or let go */
	USM_MSG_TYPES_END      /* one past the last type */
};

struct usm_msg {
	uint32_t magic;
	uint16_t type;
	uint16_t version;
	uint32_t size;         /* of the whole message */
	uint32_t reserved;
};

#define USM_HELLO_FORKED  (1u << 0)   /* sent from a fork child */
#define USM_HELLO_INLINE  (1u << 1)   /* faults are handled in the process */

/* ACK status asking the agent to attach again with USM_HELLO_INLINE. */
#define USM_ACK_GO_INLINE 1

struct usm_msg_hello {
	struct usm_msg h;
	int32_t pid;
	int32_t ppid;
	uint32_t flags;
	uint32_t fork_token;        /* FORKED: FORK_PREPARE's answer, or 0 */
	uint64_t features;          /* what UFFDIO_API granted */
	char comm[16];
	char policy[32];            /* requested policy, "" for the config's */
};

#define USM_ACK_WANT_POOL (1u << 0)   /* HELLO's ACK: set up the 2 MiB pool */
#define USM_ACK_EVICT     (1u << 1)   /* HELLO's ACK: EVICT_SETUP follows */
#define USM_ACK_SENTINELS (1u << 2)   /* HELLO's ACK: register for async WP too */

struct usm_msg_ack {
	struct usm_msg h;
	int32_t status;             /* 0 or -errno; FORK_PREPARE: the token */
	uint32_t flags;             /* USM_ACK_* */
	char error[224];
};

#define USM_INLINE_CONFIG_MAX 8192

/* The config lines the in-process host needs, as config-file text. */
struct usm_msg_inline_config {
	struct usm_msg h;
	char text[USM_INLINE_CONFIG_MAX];
};

struct usm_msg_attach_rpc {
	struct usm_msg h;
	int32_t pid;
	uint32_t reserved;
};

struct usm_msg_lease {
	struct usm_msg h;
	int64_t delta;              /* > 0: frames wanted; < 0: given back */
};

struct usm_msg_lease_reply {
	struct usm_msg h;
	int64_t granted;            /* frames now added (or taken back) */
	uint64_t instance_free;
	uint32_t recalling;         /* short, and another process was asked to
				     * give frames back: ask again soon */
	uint32_t reserved;
};

/*
 * The in-process host's lease page: one page of a memfd the instance
 * creates for each ATTACH_RPC and sends with its ACK.  When the instance
 * runs short while a process holds more than its share, it asks for
 * frames back: it adds to `recall` and bumps `seq`.  The host gives back
 * free frames first, evicts its own pages for the rest, and returns them
 * with a LEASE of minus that many.
 */
#define USM_LEASE_MAGIC 0x4553454cu      /* "LESE" */

struct usm_lease_page {
	uint32_t magic;
	_Atomic uint32_t seq;
	_Atomic int64_t recall;         /* frames the instance wants back */
	_Atomic uint64_t short_ns;      /* CLOCK_MONOTONIC: it could not give all
					 * it was asked (nothing more to evict) */
};

/* Counters as sent to the CLI (see core/stats.h for their meaning). */
struct usm_stat_counters {
	uint64_t faults, pages_mapped, frames_in_use, frames_peak;
	uint64_t ev_remove, ev_unmap, ev_remap, pages_freed;
	uint64_t oom_events, kernel_pages, eexist, huge_pages;
	uint64_t lat_p50_ns, lat_p99_ns, lat_max_ns;
	uint64_t rss_anon_peak_pages;   /* largest RssAnon seen (procs only) */
	uint64_t usm_pages_at_peak;     /* frames held at that moment */
	uint64_t bloat_pages;           /* mapped ahead, never touched (sampled) */
	uint64_t evicted, swapin_faults, swapped_in, swapcache_hits;
	uint64_t swapped_now, evict_failed;
	uint64_t copier_windows;        /* windows a copier thread mapped */
	uint64_t reserve_frames;        /* taken beyond the budget (frames.c) */
};

struct usm_stat_proc {
	int32_t pid;
	uint32_t alive;
	uint32_t inline_host;           /* faults handled in the process */
	uint32_t reserved;
	char comm[16];
	char policy[32];
	uint64_t attached_ns;           /* uptime of the attachment */
	struct usm_stat_counters c;
};

struct usm_stat_instance {
	char name[64];
	int32_t pid;
	uint32_t workers;
	uint32_t wait_mode;             /* enum usm_wait_mode */
	uint32_t spin_us;               /* hybrid: poll time after an event */
	uint32_t nprocs;                /* entries following */
	uint64_t uptime_ns;
	uint64_t page_size;
	uint64_t frames_total;
	uint64_t frames_free;
	char default_policy[32];
	char active_policy[32];         /* after `threshold` switching */
	char oom[16];
	char swap_policy[32];           /* "" when no swap device */
	uint32_t swap_devs;
	uint32_t reserved2;
	struct usm_swap_stats swap;     /* summed over the devices */
	uint64_t access_scans;          /* access tracking (core/access.h) */
	uint64_t access_marked;         /* frames found written */
	uint64_t access_scan_ns;        /* time spent scanning */
	struct usm_stat_counters c;     /* instance totals (incl. exited) */
};

#define USM_HIST_SLOTS 168          /* = USM_HIST_BUCKETS (core/stats.h) */

struct usm_msg_stats_push {
	struct usm_msg h;
	struct usm_stat_counters c;
	uint64_t hist[USM_HIST_SLOTS];
	struct usm_swap_stats swap;     /* the in-process host's own devices */
	uint64_t access_scans, access_marked, access_scan_ns;   /* and tracker */
};

struct usm_msg_stats_reply {
	struct usm_msg h;
	struct usm_stat_instance inst;
	struct usm_stat_proc procs[];   /* live processes, then recently exited */
};

#define USM_STATS_MAX_PROCS 512

/*
 * The 2 MiB page pool.  The agent keeps `nslots` aligned 2 MiB slots of a
 * staging mapping filled with zeroed transparent huge pages (a write of 0
 * into each faults one in); whoever resolves faults moves a READY slot
 * into place with UFFDIO_MOVE, which keeps it PMD-mapped, marks it EMPTY
 * and bumps `kick` (a futex the agent's refill thread sleeps on).  This
 * header lives in a memfd both sides map.
 *
 * UFFDIO_MOVE only works from inside the process (the kernel refuses it
 * through another process's userfaultfd), so the daemon host queues the
 * destination in `req` instead and the agent's thread moves the page and
 * wakes the faulting thread; it falls back to zeroed 4 KiB pages if no
 * huge page can be had.  `moved` and `fallback` count the outcomes.
 */
#define USM_POOL_MAGIC 0x4c4f4f50u        /* "POOL" */
#define USM_POOL_SLOTS 4
#define USM_POOL_SLOT_SIZE (2ull << 20)
#define USM_POOL_REQS 64
/* Low bits of a request (destinations are 2 MiB-aligned): */
#define USM_POOL_REQ_HOLD    1ull   /* move without waking; a later request wakes */
#define USM_POOL_REQ_FAULTED 2ull   /* the faulting window: the kernel's 4 KiB fault
				     * path left a page table under it */
#define USM_POOL_REQ_FLAGS   3ull
#define USM_POOL_OWN_REMOVES 4

enum { USM_SLOT_EMPTY = 0, USM_SLOT_READY, USM_SLOT_TAKEN };

struct usm_thp_pool {
	uint32_t magic;
	uint32_t nslots;
	uint64_t base;                    /* staging address in the process */
	_Atomic uint32_t kick;            /* futex: bumped when a slot empties */
	_Atomic uint32_t state[USM_POOL_SLOTS];
	_Atomic uint64_t req_head;        /* written by the daemon */
	_Atomic uint64_t req_tail;        /* written by the agent */
	uint64_t req[USM_POOL_REQS];      /* 2 MiB destinations to fill */
	_Atomic uint64_t moved, fallback;
	/* Windows the agent is emptying with MADV_DONTNEED (0: a free
	 * entry); the daemon takes one out per REMOVE event it matches. */
	_Atomic uint64_t own_remove[USM_POOL_OWN_REMOVES];
};

/*
 * Give slot i back after a move of `moved` bytes out of it, and wake the
 * refill threads.  If the move had to split the huge page (the
 * destination's PMD held a page table: a window that had 4 KiB pages
 * once), the slot is left with a page table of its own and every later
 * fill of it would be 4 KiB pages.  MADV_DONTNEED frees an empty page
 * table (CONFIG_PT_RECLAIM), and is one cheap walk when the PMD is empty.
 * Both the agent and the in-process host release slots through this.
 */
static inline void usm_pool_release_slot(struct usm_thp_pool *pool, int i, uint64_t moved)
{
	if (moved)
		raw_syscall6(SYS_madvise, (long)(pool->base + (uint64_t)i * USM_POOL_SLOT_SIZE),
			     (long)USM_POOL_SLOT_SIZE, MADV_DONTNEED, 0, 0, 0);
	atomic_store(&pool->state[i], USM_SLOT_EMPTY);
	atomic_fetch_add(&pool->kick, 1);
	raw_syscall6(SYS_futex, (long)&pool->kick, FUTEX_WAKE, INT_MAX, 0, 0, 0);
}

/*
 * Mode colocate pins a faulting thread to its worker's CPU.  The agent
 * keeps the thread's own mask, and puts it back if the instance dies
 * before it could (agent/monitor.c).
 */
#define USM_PIN_MASK_BYTES 128          /* 1024 CPUs */
struct usm_msg_pin {
	struct usm_msg h;
	uint32_t tid;
	uint32_t pinned;                /* 1: pinned now, 0: its mask is back */
	uint32_t cpu;                   /* where (pinned) */
	uint32_t reserved;
	uint8_t mask[USM_PIN_MASK_BYTES]; /* the thread's own mask (pinned) */
};

struct usm_msg_pool_ready {
	struct usm_msg h;
	uint64_t base;
	uint32_t nslots;
	uint32_t reserved;
};

/*
 * The eviction channel of one process (daemon host), in a memfd the
 * daemon creates and the agent maps:
 *
 *   [struct usm_evict_chan][outbox: nreq pages][swap table: ncap entries]
 *
 * Swap-out: the daemon writes victims into req[] (QUEUED) and bumps
 * `kick`; the agent's evictor thread moves each page out of the program
 * with UFFDIO_MOVE (atomic: the page is missing from then on, and no
 * thread can change it behind us), copies it into the request's outbox
 * page and marks it COPIED (or GONE: not there; PINNED: cannot be moved).
 * The daemon stores COPIED pages on a swap device, records them in the
 * swap table and frees the request.
 *
 * The swap table says where every swapped-out page of the process is:
 * entry i holds a device location and, last (release), the page's
 * address; vaddr 0 means unused.  If the instance dies, the agent reads
 * every entry back from the devices' fds (and COPIED outbox pages) and
 * puts it in place before it hands the memory to the kernel: nothing is
 * lost (DESIGN.md §5).
 */
#define USM_EVICT_MAGIC 0x54434956u       /* "VICT" */
#define USM_EVICT_REQS  256
#define USM_EVICT_TABLE (1u << 22)        /* swapped pages per process */
#define USM_LAYOUT_TIDS 32                /* see usm_evict_chan.layout_tid */

enum usm_evict_state {
	USM_EV_FREE = 0,
	USM_EV_QUEUED,      /* daemon: move this page out */
	USM_EV_MOVING,      /* agent: taken, being moved */
	USM_EV_COPIED,      /* agent: moved; content in the outbox page */
	USM_EV_GONE,        /* agent: no page at vaddr (freed or moved) */
	USM_EV_PINNED,      /* agent: the kernel refuses to move it */
};

/* The answer for a move that returned rc (mech/stage.h): moved, or the
 * kernel refuses to move from this mapping (EINVAL: read-only, locked),
 * or there was no page (freed or moved meanwhile). */
static inline uint32_t usm_evict_answer(int rc)
{
	return rc == 0 ? USM_EV_COPIED : rc == -EINVAL ? USM_EV_PINNED : USM_EV_GONE;
}

struct usm_evict_req {
	_Atomic uint32_t state;
	uint32_t seq;       /* the agent's address-space changes the daemon had
			     * seen when it chose the page (see `marker`) */
	uint64_t vaddr;
};

struct usm_swap_ent {
	_Atomic uint64_t vaddr;           /* 0: unused */
	struct usm_swap_loc loc;
};

struct usm_evict_chan {
	uint32_t magic;
	uint32_t nreq;
	uint64_t page_size;
	uint64_t outbox_off, table_off;   /* byte offsets in the memfd */
	uint64_t table_cap;
	_Atomic uint64_t table_hwm;       /* entries ever used: scan no further */
	uint64_t size;                    /* of the memfd */
	/*
	 * The agent numbers the program's munmap / mremap / madvise /
	 * MAP_FIXED calls (it traps them) and after each one drops the
	 * `marker` page (MADV_DONTNEED): the instance counts the REMOVE
	 * events of that page, which arrive after the call's own events.  A
	 * request stamped with that count is carried out only if no later
	 * change touched its address: otherwise another page may be there.
	 */
	uint64_t marker;                  /* set by the agent; 0: none */
	_Atomic uint32_t kick;            /* futex: daemon queued requests */
	_Atomic uint32_t done;            /* bumped by the agent after a batch */
	/*
	 * The threads waiting for or holding the agent's eviction lock (a
	 * layout change or a fork), by TID; 0: a free slot.  While one holds
	 * it the agent moves no page, so the frames in flight do not come
	 * back; if that thread faults (its stack may have been moved out
	 * while it waited) no frame may be free.  The instance serves the
	 * faults of these threads from a small reserve beyond the budget
	 * (core/frames.c) instead of waiting for eviction.
	 */
	_Atomic int32_t layout_tid[USM_LAYOUT_TIDS];
	struct usm_evict_req req[USM_EVICT_REQS];
};

struct usm_msg_evict_setup {
	struct usm_msg h;
	uint32_t ndevs;                   /* SWAPDEV messages that follow */
	uint32_t reserved;
};

struct usm_msg_swapdev {
	struct usm_msg h;
	uint32_t dev;                     /* index in usm_swap_loc.dev */
	uint32_t reserved;
};

struct usm_msg_fork_prepare {
	struct usm_msg h;
	int32_t pid;                      /* the forking process */
	uint32_t reserved;
};

/* ---- socket helpers (ipc/sock.c) ---------------------------------- */

/*
 * Directory of the instances' sockets: $USM_RUNTIME_DIR, else /run/usm for
 * root, else $XDG_RUNTIME_DIR/usm, else /tmp/usm-<uid>.
 */
int usm_sock_dir(char *buf, size_t len);
/* <dir>/<instance>.sock; instance names are [A-Za-z0-9_.-]{1,63}. */
int usm_sock_path(const char *instance, char *buf, size_t len);
int usm_instance_name_ok(const char *name);

void usm_msg_init(struct usm_msg *m, enum usm_msg_type type, size_t size);
/* Check magic, version, type-specific size.  Returns NULL or a reason. */
const char *usm_msg_check(const void *buf, size_t len);

/* Connect to an instance's socket (SOCK_SEQPACKET, CLOEXEC); -errno. */
int usm_sock_connect(const char *path);
/* Send one message with an optional fd (-1 for none).  0 or -errno. */
int usm_sock_send(int sock, const void *msg, size_t len, int fd);
/* Receive one message, and an fd if one came (*fd = -1 otherwise).
 * Returns the length, 0 on EOF, or -errno. */
ssize_t usm_sock_recv(int sock, void *buf, size_t len, int *fd);

#endif /* USM_IPC_PROTO_H */
