/* SPDX-License-Identifier: MIT */
/*
 * usm/usm.h - the USM policy API.
 *
 * A policy is ordinary C code that decides, for the processes managed by a
 * USM instance, what memory to map on a page fault and what to do when
 * memory is released or runs out.  It compiles against this header alone:
 *
 *     cc -shared -fPIC $(pkg-config --cflags usm) my_policy.c -o my_policy.so
 *
 * and registers itself from a constructor with usm_register_alloc_policy().
 * docs/policy-api.md walks through a complete example.
 *
 * Vocabulary (kept from the original USM):
 *  - an *event* (struct usm_event) is what the kernel reported: a fault
 *    (USM_EVENT_ALLOC), a range freed (USM_EVENT_FREE), a range moved
 *    (USM_EVENT_VIRT_AS_CHANGE), a process arriving or leaving;
 *  - a *frame* (struct usm_page) is one page-sized unit of the instance's
 *    memory budget, with a descriptor the policy can chain on its own lists.
 *    The kernel still picks the physical page; USM decides how many pages each
 *    process may hold and what goes into them.
 *
 * Concurrency: every callback of every policy in one instance runs under
 * the instance's policy lock, so a policy needs no locking of its own.
 * Callbacks must not block (no I/O, no sleeping): they run on the fault
 * path.  All helpers declared here may be called from inside callbacks.
 */
#ifndef USM_USM_H
#define USM_USM_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

#include <usm/list.h>

#ifdef __cplusplus
extern "C" {
#endif

#define USM_API_VERSION 1

/* Most pages one usm_resolve maps (2 MiB of 4 KiB pages). */
#define USM_RESOLVE_MAX 512

/* Return codes of policy callbacks (besides 0 for success). */
#define USM_OK        0
#define USM_ENOMEM  (-12)  /* no free frame: the framework will call usm_oom */
#define USM_EINVAL  (-22)
#define USM_ENOENT  (-2)   /* no such page (usm_page_written) */
#define USM_YIELD     1    /* resolution deferred; retried when frames free up */

/* What usm_oom tells the framework to do with the fault that ran out. */
enum usm_oom_action {
	USM_OOM_RETRY = 0,   /* frames were (or will be) freed: retry the fault */
	USM_OOM_KERNEL,      /* hand this page to the kernel, outside the budget */
	USM_OOM_WAIT,        /* leave the fault pending until frames free up */
};

enum usm_event_type {
	USM_EVENT_ALLOC = 1,        /* page fault on a missing page */
	USM_EVENT_FREE,             /* range released: munmap, MADV_DONTNEED, brk */
	USM_EVENT_VIRT_AS_CHANGE,   /* range moved by mremap */
	USM_EVENT_NEW_PROC,         /* a process attached */
	USM_EVENT_PROC_DTH,         /* a process exited (or exec'd) */
};

/* usm_event.flags */
#define USM_FAULT_WRITE   (1u << 0)  /* the access was a write */
#define USM_FREE_UNMAP    (1u << 1)  /* FREE came from munmap (else madvise) */

struct usm_process;
struct usm_page;

/*
 * One kernel event, as handed to a policy.
 *  ALLOC:           vaddr = faulting address rounded down to the page;
 *                   length = page size; flags: USM_FAULT_*.
 *  FREE:            [vaddr, vaddr + length) released.
 *  VIRT_AS_CHANGE:  [vaddr, vaddr + length) moved to offst.
 */
struct usm_event {
	enum usm_event_type type;
	struct usm_process *origin;  /* the process the event belongs to */
	uint64_t vaddr;
	uint64_t paddr;              /* frame index chosen (single-page resolve) */
	uint64_t length;
	uint64_t offst;
	uint32_t flags;
	uint32_t tid;                /* faulting thread, when the kernel says */
	void *framework;             /* private to the framework */
};

/* usm_page.state */
enum usm_page_state {
	USM_PAGE_FREE = 0,    /* in the free pool */
	USM_PAGE_TAKEN,       /* held by a policy, not mapped yet */
	USM_PAGE_MAPPED,      /* mapped into usm_page.proc at usm_page.vaddr */
	USM_PAGE_EVICTING,    /* being written to a swap device */
};

/* usm_page.fw_flags */
#define USM_PG_REFERENCED (1u << 0)  /* accessed since usm_page_referenced() */
#define USM_PG_PINNED     (1u << 1)  /* cannot be evicted */
#define USM_PG_TRACKED    (1u << 2)  /* handed to the swap policy */
#define USM_PG_DROPPED    (1u << 3)  /* released while being evicted */

/*
 * A frame descriptor.  The framework owns frame, proc, vaddr and state; a
 * policy owns list, list2 and priv (e.g. to keep FIFO/LRU lists).
 */
struct usm_page {
	uint64_t frame;               /* index in the budget: the "pfn" */
	struct usm_process *proc;     /* owner while TAKEN/MAPPED */
	uint64_t vaddr;               /* where it is mapped (MAPPED only) */
	uint32_t state;               /* enum usm_page_state */
	uint32_t policy_flags;        /* free for the policy */
	uint32_t fw_flags;            /* framework's (USM_PG_*): read-only */
	struct usm_list_head list;    /* free for the policy */
	struct usm_list_head list2;   /* free for the policy */
	void *priv;                   /* free for the policy */
	const void *owner;            /* framework-private: the mapping policy */
};

/* usm_page.fw_flags; read them through usm_page_referenced/usm_page_pinned. */
#define USM_PG_REFERENCED (1u << 0)   /* mapped or seen accessed since last asked */
#define USM_PG_PINNED     (1u << 1)   /* cannot be evicted */

/* ---- processes ---------------------------------------------------- */

pid_t        usm_process_pid(const struct usm_process *p);
const char  *usm_process_comm(const struct usm_process *p);
/* Priority from the config's `priority <comm> <n>` (default 0). */
int          usm_process_priority(const struct usm_process *p);
/* Pages the process holds from the budget right now. */
uint64_t     usm_process_frames(const struct usm_process *p);
/* Per-process slot for the allocation policy's own state. */
void        *usm_process_priv(const struct usm_process *p);
void         usm_process_set_priv(struct usm_process *p, void *priv);
/*
 * A policy parameter for p: `key=value` on the process's config line
 * (`process alloc <comm> <policy> key=value`), else `set <policy>.<key>`,
 * else NULL.  <policy> is the policy serving p.
 */
const char  *usm_process_param(const struct usm_process *p, const char *key);
/* The same as an integer; def if unset; *err (if non-NULL) set on a bad value. */
long long    usm_process_param_int(const struct usm_process *p, const char *key,
				   long long def, int *err);
/*
 * Memory bloat: pages USM mapped for p ahead of a fault that p has not
 * touched since.  Call usm_process_track_bloat() once (usm_new_process) to
 * have the framework measure it for p: pages mapped ahead of the faulting
 * one have their accessed bit cleared (MADV_COLD), and the process's
 * registered mappings are sampled (smaps Rss - Referenced) about twice a
 * second.  usm_process_bloat_pages() is the last sample, 0 before one.
 */
void         usm_process_track_bloat(struct usm_process *p);
/* Ask for p's pool of ready 2 MiB pages (usm_resolve_huge), set up in
 * the process by its agent, off the fault path. */
void         usm_process_want_huge(struct usm_process *p);
uint64_t     usm_process_bloat_pages(const struct usm_process *p);
/*
 * Write sentinels: call usm_process_want_sentinels() once (usm_new_process)
 * to have the last page of every whole aligned window mapped at once for p
 * (2 or more pages mapped on the window's first fault, ahead of any touch)
 * mapped write-protected, with the kernel lifting the protection by itself
 * on the program's first write (asynchronous uffd write-protection, Linux
 * 6.7).  That costs one more ioctl per window and a minor fault on the
 * first write to each such page.
 *
 * usm_page_written(p, vaddr) then returns 1 if the page at vaddr is mapped
 * and is not a sentinel or was written since (a page mapped on a fault or
 * in a partial window counts as written), 0 if it is a sentinel not written yet
 * (read, or not touched), USM_ENOENT if it is not mapped, and USM_EINVAL
 * if the process has no sentinels (not asked for, or the kernel cannot).
 * A pread of /proc/<pid>/pagemap: fine once per region, not per page.
 */
void         usm_process_want_sentinels(struct usm_process *p);
int          usm_page_written(struct usm_process *p, uint64_t vaddr);
/* Calls fn for every attached process; stops early when fn returns non-zero. */
int          usm_process_for_each(int (*fn)(struct usm_process *, void *), void *arg);
/*
 * Kill a process through its pidfd (SIGKILL), logging `reason`.  Its frames
 * return to the pool once its exit is processed.
 */
int          usm_process_kill(struct usm_process *p, const char *reason);

/* ---- frames -------------------------------------------------------- */

uint64_t usm_page_size(void);          /* bytes per frame (the config's `page`) */
uint64_t usm_frames_total(void);       /* the budget, in frames */
uint64_t usm_frames_free(void);
/* Budget use in percent (0-100), what `threshold` lines compare against. */
unsigned usm_budget_used_pct(void);

/*
 * Take one free frame for ev's process (NULL if the budget is exhausted).
 * It comes with list and list2 self-linked, priv NULL, policy_flags 0.
 */
struct usm_page *usm_frame_take(struct usm_event *ev);
/* Take n frames at once: all or nothing.  Returns 0 or USM_ENOMEM. */
int usm_frames_take(struct usm_event *ev, struct usm_page **out, unsigned n);
/* Give back a frame that was taken but not mapped. */
void usm_frame_put(struct usm_page *page);

/*
 * Resolve the fault in ev: map pages[0..n) at vaddr, vaddr + page, ... .
 * The window must contain ev->vaddr and every page in it must be missing
 * (see usm_page_present()).  Content is zero-filled (fresh anonymous memory);
 * frames never carry an earlier owner's data.
 *
 * The mapping is carried out after the callback returns.  Pages the kernel
 * refuses (the mapping ended, or the page was populated meanwhile) are
 * handed back through the policy's usm_pindex_free and returned to the pool.
 * Only one usm_resolve per ALLOC event, 1 <= n <= USM_RESOLVE_MAX.
 * Returns 0, USM_EINVAL (a condition above fails) or USM_ENOMEM (the
 * framework could not record the pages); on failure nothing is recorded
 * and the frames are still the caller's to use or usm_frame_put().
 */
int usm_resolve(struct usm_event *ev, uint64_t vaddr,
		struct usm_page **pages, unsigned n);

/*
 * The common case in one call: map the missing run of the aligned window of
 * `want` pages around the fault (usm_fault_window), or only the faulting
 * page when the budget cannot cover the run, and put every mapped frame on
 * `list` through usm_page.list (list may be NULL).  Returns USM_OK or
 * USM_ENOMEM (no frame at all).
 */
int usm_resolve_window(struct usm_event *ev, unsigned want, struct usm_list_head *list);

/*
 * Like usm_resolve_window, and then every other missing run of the same
 * aligned window too (up to USM_AHEAD_MAX more runs, as far as the budget
 * goes), mapped before the faulting thread runs again: a window that is
 * known to be wanted whole is filled in one fault, however its present
 * pages split it.  Returns USM_OK or USM_ENOMEM (no frame at all).
 */
int usm_resolve_fill(struct usm_event *ev, unsigned want, struct usm_list_head *list);

/*
 * Map the whole naturally aligned 2 MiB window around the fault as one
 * PMD-mapped huge page (pages[] holds USM_RESOLVE_MAX taken frames).  The
 * window must be entirely missing and inside one mapping.  When the
 * process has a ready huge page (usm_process_want_huge) it is moved into
 * place with UFFDIO_MOVE; otherwise the window is filled with 4 KiB pages.
 * Returns USM_OK, or USM_EINVAL when the window does not qualify (the
 * frames are then still the caller's).
 */
int usm_resolve_huge(struct usm_event *ev, struct usm_page **pages);

/*
 * Fault-ahead: after the fault's own window (usm_resolve_huge), also map
 * the 2 MiB window at `base` as a huge page, before the faulting thread
 * runs again.  For a stream this saves the faults, and each fault on a
 * THP-eligible mapping costs a 2 MiB clear the kernel throws away before
 * it asks userfaultfd.  Same conditions on the window as usm_resolve_huge;
 * at most USM_AHEAD_MAX per fault.  Returns USM_OK, or USM_EINVAL (the
 * frames are then still the caller's).
 */
#define USM_AHEAD_MAX 8
int usm_resolve_huge_ahead(struct usm_event *ev, uint64_t base, struct usm_page **pages);

/* How many pages of the aligned window of `want` pages around ev->vaddr
 * are mapped by USM already (a density signal for adaptive policies). */
unsigned usm_window_mapped(const struct usm_event *ev, unsigned want);

/* Is vaddr of p currently mapped by USM?  Returns its frame, or NULL. */
struct usm_page *usm_page_lookup(const struct usm_process *p, uint64_t vaddr);
static inline bool usm_page_present(const struct usm_process *p, uint64_t vaddr)
{
	return usm_page_lookup(p, vaddr) != NULL;
}

/*
 * Largest run of missing pages around ev->vaddr inside the naturally aligned
 * window of `want` pages (want a power of two).  Sets *start and returns the
 * count (>= 1).  The framework further clips the run to the mapping.
 */
unsigned usm_fault_window(const struct usm_event *ev, unsigned want, uint64_t *start);

/* ---- configuration ------------------------------------------------- */

/*
 * Values from `set <key> <value>` config lines, e.g. `set batch.pages 16`.
 * Keys are namespaced by policy name by convention.
 */
const char *usm_config_get(const char *key);
/* Integer value of key, or def if unset; sets *err (if non-NULL) on a bad value. */
long long usm_config_get_int(const char *key, long long def, int *err);

/* ---- policies ------------------------------------------------------ */

/*
 * Allocation policy.  Every slot may be NULL except usm_alloc; a NULL slot
 * gets the framework's default behaviour described next to it.
 */
struct usm_alloc_policy_ops {
	/* Once, at instance start, after the config is read. */
	int (*usm_init)(void);
	/* Instance shutdown. */
	void (*usm_exit)(void);
	/*
	 * A fault (USM_EVENT_ALLOC): take frames and call usm_resolve().
	 * Return USM_OK, USM_ENOMEM (then usm_oom decides) or USM_YIELD.
	 */
	int (*usm_alloc)(struct usm_event *ev);
	/*
	 * A range was released (USM_EVENT_FREE).  The framework calls
	 * usm_pindex_free for every USM frame in the range afterwards;
	 * this hook is for range-level bookkeeping.
	 */
	int (*usm_free)(struct usm_event *ev);
	/* One mapped frame is released: unlink it from policy lists.  The
	 * framework returns it to the pool after this returns. */
	int (*usm_pindex_free)(struct usm_page *page);
	/* mremap moved [vaddr, +length) to offst; frames' vaddr already updated. */
	int (*usm_virt_address_space_change)(struct usm_event *ev);
	/* A process attached.  The return value is ignored: usm_alloc must
	 * cope with per-process state that could not be set up. */
	int (*usm_new_process)(struct usm_process *p);
	/* Called before the process's frames are released; usm_pindex_free
	 * then runs for each of them, so unlink them from anything freed here. */
	int (*usm_process_exit)(struct usm_process *p);
	/*
	 * No frame for ev.  Default (NULL): the instance's configured OOM
	 * action, see usm_oom_default().
	 */
	enum usm_oom_action (*usm_oom)(struct usm_event *ev);
	/* Application hints (the hint library); reserved for the hint API. */
	int (*usm_hints)(struct usm_event *ev);
};

/*
 * Swap (eviction) policy: which mapped frames leave memory when the budget
 * runs short, and how much to bring back on a swap-in.  One per instance
 * (`swap_policy <name>` in the config, FIFO by default).
 *
 * The framework tells the policy about every frame that becomes evictable
 * (usm_page_mapped) and every one that stops being so (usm_page_unmapped:
 * freed, evicted, its process exited); the policy keeps them on its own
 * lists through usm_page.list2 (usm_page.list belongs to the allocation
 * policy).  Victims are chosen by usm_evict_fallback when free frames fall
 * below the low watermark, and by cond_swap_out on every reclaimer tick;
 * the framework then writes them to a swap device and unmaps them, off the
 * fault path.  A chosen victim is unmapped from the policy first
 * (usm_page_unmapped is not called again for it).  Every callback runs
 * under the policy lock and must not block.
 */
struct usm_swap_policy_ops {
	int (*usm_init)(void);
	void (*usm_exit)(void);
	/* pg was mapped (first touch or swap-in) and may now be evicted. */
	void (*usm_page_mapped)(struct usm_page *pg);
	/* pg is no longer evictable: unlink it from the policy's lists. */
	void (*usm_page_unmapped)(struct usm_page *pg);
	/*
	 * Memory is short: put up to `want` victims in out[] and return how
	 * many.  Victims must be frames handed to usm_page_mapped and not yet
	 * unmapped; return fewer (or 0) when nothing more can go.
	 */
	unsigned (*usm_evict_fallback)(struct usm_page **out, unsigned want);
	/* Proactive eviction, called on every reclaimer tick (NULL: none):
	 * same contract as usm_evict_fallback, at most `max` victims. */
	unsigned (*cond_swap_out)(struct usm_page **out, unsigned max);
	/*
	 * A fault on a swapped-out page (ev->vaddr; ev->offst is its entry
	 * in the process's swap table).
	 * Return how many pages to swap in, >= 1, counting from the aligned
	 * group of that many around the fault (a power of two, at most
	 * USM_RESOLVE_MAX): neighbours that are swapped out come in with it
	 * (prefetch).  NULL: 1.
	 */
	unsigned (*usm_swap)(struct usm_event *ev);
};

/*
 * Swap-in prefetch, for a policy's usm_swap.
 *
 * usm_swap_readahead(ev, max) reads ahead like a kernel: a swap-in that
 * continues one of the process's recent forward streams (at or just past
 * the end of the group that stream last brought back) doubles the
 * stream's group, up to max (a power of two); any other swap-in starts a
 * new stream and gets 1.  Random access thus costs nothing extra and a
 * sequential scan soon comes back max pages per fault.
 *
 * usm_prefetch_init/usm_prefetch_pages give a policy the standard knobs:
 * `set <policy>.prefetch N` (a fixed group of N, a power of two; 1 is
 * demand paging) or `auto` (usm_swap_readahead, the default), and
 * `set <policy>.readahead_max N` (default 64).  usm_prefetch_init logs what is
 * wrong and returns USM_EINVAL on a bad value.
 */
struct usm_prefetch {
	unsigned fixed;    /* 0: readahead */
	unsigned max;
};
unsigned usm_swap_readahead(struct usm_event *ev, unsigned max);
int      usm_prefetch_init(struct usm_prefetch *pf, const char *policy);
unsigned usm_prefetch_pages(const struct usm_prefetch *pf, struct usm_event *ev);

/*
 * Access information for eviction: was pg's page used since the last call
 * for it?  Clears the answer.  The framework learns it off the fault path:
 * on a stock kernel it sees writes (PAGEMAP_SCAN), not reads, and a frame
 * mapped (first touch or swap-in) since the last call counts as used.
 * See docs/eviction.md and docs/access-tracking.md.
 */
bool usm_page_referenced(struct usm_page *pg);
/* Is pg's page pinned (cannot be evicted: e.g. its mapping is read-only)?
 * The framework sets it when an eviction fails for good. */
bool usm_page_pinned(const struct usm_page *pg);

int usm_register_alloc_policy(const struct usm_alloc_policy_ops *ops,
			      const char *name, bool is_default);
int usm_register_swap_policy(const struct usm_swap_policy_ops *ops,
			     const char *name, bool is_default);

/* The instance-wide OOM action from the config (`oom kernel|kill|wait`). */
enum usm_oom_action usm_oom_default(struct usm_event *ev);

/* ---- memory for a policy's own state -------------------------------- */

/*
 * malloc, calloc, realloc and free for a policy's own state.  In the
 * daemon they are the C library's.  In the in-process host (`usm run
 * --inline`) they come from the framework's own heap: memory never
 * registered with userfaultfd, so never evicted, and safe to use in a
 * callback, which there runs in the faulting thread's SIGBUS handler.  A
 * plugin meant for the in-process host must use these (the built-in
 * policies' malloc goes there already): the C library's malloc is not
 * async-signal-safe, and its memory is the program's, which USM may swap
 * out under the policy's feet.
 */
void *usm_mem_alloc(size_t n);
void *usm_mem_calloc(size_t n, size_t size);
void *usm_mem_realloc(void *p, size_t n);
void  usm_mem_free(void *p);

/* ---- logging ------------------------------------------------------- */

enum usm_log_level { USM_LOG_ERROR, USM_LOG_WARN, USM_LOG_INFO, USM_LOG_DEBUG };
void usm_log(enum usm_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}
#endif

#endif /* USM_USM_H */
