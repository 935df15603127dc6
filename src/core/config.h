/* SPDX-License-Identifier: MIT */
/*
 * core/config.h - the instance configuration file.
 *
 * The format is the original USM's alloc_policy_assignment_strategy.cfg,
 * one directive per line, '#' starts a comment:
 *
 *   memory <MiB>                     frame budget of the instance
 *   workers <n>                      fault-handling threads (1-64)
 *   page <bytes>                     frame size (4096)
 *   process [alloc|swap] <comm> <policy> [key=value]...
 *                                    policy (and its parameters) for comm
 *   priority <comm> <n>              OOM priority (lower dies first)
 *   threshold <pct> <policy>         default alloc policy once budget use >= pct
 * and USM extensions:
 *   policy <name>                    default allocation policy
 *   mode blocking|spinning|hybrid [us]
 *                                    how workers wait for faults (hybrid:
 *                                    poll for us after each event, 50)
 *   copiers <n>                      threads that map windows for the
 *                                    workers when faults queue up (0-64, 1)
 *   host daemon|inline               where faults are handled by default
 *                                    (a process line's host=... overrides)
 *   oom kernel|kill|wait             default action when the budget is full
 *   plugin <path.so>                 load policies from a shared object
 *   set <key> <value>                a policy parameter (usm_config_get)
 * and for eviction (docs/eviction.md):
 *   swapdev file <path> <size> [priority=N] [direct]
 *   swapdev zmem - <size> [priority=N] [codec=lz4|zstd]
 *                                    a swap device (sizes take K/M/G)
 *   swap_policy <name>               eviction policy (fifo)
 *   watermarks <low%> <high%>        reclaim when free frames < low% of
 *                                    the budget, until >= high%
 *   reclaim direct|background        in-process host: who evicts for the
 *                                    watermarks, the faulting thread
 *                                    (direct, default) or a thread of its own
 *   limit <comm> <MiB>               frames one process may hold
 *   trace <comm> <file>              record comm's fault/eviction trace
 */
#ifndef USM_CORE_CONFIG_H
#define USM_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <usm/usm.h>
#include "swap/swapdev.h"

#define USM_NAME_MAX 32
#define USM_COMM_MAX 16

#define USM_PARAMS_MAX 4

struct usm_cfg_param {
	char key[32];
	char value[64];
};

struct usm_cfg_process {
	char comm[USM_COMM_MAX];
	char policy[USM_NAME_MAX];
	bool swap;          /* `process swap ...` */
	int line;
	struct usm_cfg_param params[USM_PARAMS_MAX];
	unsigned nparams;
};

struct usm_cfg_priority {
	char comm[USM_COMM_MAX];
	int priority;
};

struct usm_cfg_threshold {
	unsigned pct;
	char policy[USM_NAME_MAX];
	int line;
};

struct usm_cfg_set {
	char key[64];
	char value[128];
};

struct usm_cfg_limit {
	char comm[USM_COMM_MAX];
	uint64_t mib;
};

struct usm_cfg_trace {
	char comm[USM_COMM_MAX];
	char path[256];
};

/* How a worker waits for its next event (see core/worker.c). */
enum usm_wait_mode {
	USM_WAIT_BLOCKING,          /* sleep in epoll_wait */
	USM_WAIT_SPINNING,          /* poll it all the time */
	USM_WAIT_HYBRID,            /* poll for spin_us after each event, then sleep */
	USM_WAIT_COLOCATE,          /* run on the CPU of the one thread that faults,
				     * and sleep; hybrid while several do */
};
#define USM_SPIN_US_DEFAULT 50
#define USM_SPIN_US_MAX 100000

const char *usm_wait_mode_name(enum usm_wait_mode m);

struct usm_config {
	char source[256];           /* file name, for messages */
	uint64_t memory_mib;
	unsigned workers;
	unsigned copiers;
	uint64_t page_size;
	enum usm_wait_mode wait_mode;
	unsigned spin_us;           /* hybrid, colocate: poll this long after an event */
	bool inline_host;
	enum usm_oom_action oom;
	char default_policy[USM_NAME_MAX];
	int default_policy_line;

	struct usm_cfg_process *procs;      size_t nprocs;
	struct usm_cfg_priority *prios;     size_t nprios;
	struct usm_cfg_threshold *thresh;   size_t nthresh;  /* sorted by pct */
	struct usm_cfg_set *sets;           size_t nsets;
	char **plugins;                     size_t nplugins;

	/* eviction */
	struct usm_swapdev_cfg swapdevs[USM_SWAP_MAX_DEVS];  unsigned nswapdevs;
	char swap_policy[USM_NAME_MAX];
	int swap_policy_line;
	unsigned wm_low_pct, wm_high_pct;   /* of the budget, free frames */
	bool reclaim_background;            /* in-process: no direct reclaim */
	struct usm_cfg_limit *limits;       size_t nlimits;
	struct usm_cfg_trace *traces;       size_t ntraces;
};

/* Defaults: 4096 MiB, 1 worker, 4 KiB pages, blocking, oom kernel, first_fit. */
void usm_config_defaults(struct usm_config *cfg);

/*
 * Parse text (the contents of `source`).  On error returns -1 with
 * "source:line: what was wrong" in err; cfg is then left partly filled
 * and must still be released with usm_config_free().
 */
int usm_config_parse(struct usm_config *cfg, const char *text, const char *source,
		     char *err, size_t errlen);
int usm_config_load(struct usm_config *cfg, const char *path, char *err, size_t errlen);

/* Check every policy name the config uses is registered (after plugins). */
int usm_config_check_policies(const struct usm_config *cfg, char *err, size_t errlen);

/* Apply a `KEY VALUE...` directive line given on the command line. */
int usm_config_apply_line(struct usm_config *cfg, const char *line,
			  char *err, size_t errlen);

/* The `process alloc` line for comm (the last one wins), or NULL. */
const struct usm_cfg_process *usm_config_process_for(const struct usm_config *cfg,
						     const char *comm);
const char *usm_config_policy_for(const struct usm_config *cfg, const char *comm);
int usm_config_priority_for(const struct usm_config *cfg, const char *comm);
const char *usm_config_lookup(const struct usm_config *cfg, const char *key);
/* v as a whole number (def if v is NULL); logs "what: ..." and sets *err if bad. */
long long usm_config_int_value(const char *v, const char *what, long long def, int *err);
/* comm's `limit` in frames, 0 for none. */
uint64_t usm_config_limit_for(const struct usm_config *cfg, const char *comm);
/* comm's `trace` file, or NULL. */
const char *usm_config_trace_for(const struct usm_config *cfg, const char *comm);
/* Is comm's memory handled in-process (`host inline`, or host=inline)? */
bool usm_config_inline_for(const struct usm_config *cfg, const char *comm);
/*
 * The config text an in-process host needs for comm: its policy, the
 * `set` lines, plugins, its process line, and for eviction its compressed
 * swap devices, the swap policy, watermarks and comm's limit.  Returns the
 * length, or -1 if it does not fit in len.
 */
int usm_config_inline_text(const struct usm_config *cfg, const char *comm,
			   const char *policy, char *buf, size_t len);

void usm_config_free(struct usm_config *cfg);

#endif /* USM_CORE_CONFIG_H */
