/* SPDX-License-Identifier: MIT */
/*
 * cli/sim.h - `usm sim`: replay a recorded trace through eviction policies.
 *
 * A trace is loaded once into a flat list of page operations over dense
 * page ids (one id per distinct (pid, virtual page)); the reference
 * algorithms (sim_ref.c) and the replay through a registered swap policy
 * (sim.c) all run over that list.
 */
#ifndef USM_CLI_SIM_H
#define USM_CLI_SIM_H

#include <stddef.h>
#include <stdint.h>

enum sim_op_kind {
	SIM_REF = 0,     /* the page is referenced (fault, swap-in or access) */
	SIM_FREE,        /* the page is released: its content is gone */
};

struct sim_op {
	uint32_t page;   /* dense id */
	uint8_t kind;    /* enum sim_op_kind */
};

struct sim_page_key {
	uint64_t vpn;
	uint32_t pid;
	uint32_t pid_ix;                /* index into sim_trace.pids */
};

struct sim_trace {
	uint32_t page_size;
	struct sim_op *ops;
	size_t nops;
	struct sim_page_key *keys;      /* by id */
	uint32_t npages;                /* distinct pages */
	uint32_t *slots;                /* hash of keys: id + 1, 0 empty */
	uint64_t nslots;
	uint32_t *pids;                 /* distinct pids, in order of appearance */
	uint32_t npids;
	/* what the file held */
	uint64_t records;
	uint64_t rec_kind[6];           /* records by enum usm_trace_kind */
	uint64_t page_kind[6];          /* pages by kind */
	uint64_t refs;                  /* SIM_REF operations */
	uint64_t frees;                 /* SIM_FREE operations: pages freed
					 * after a reference */
};

/* Load a trace file; on error returns -1 with the reason in err. */
int sim_trace_load(struct sim_trace *t, const char *path, char *err, size_t errlen);
void sim_trace_free(struct sim_trace *t);
/* The id of (pid, vpn), or -1 if the trace never mentions that page. */
int64_t sim_trace_find(const struct sim_trace *t, uint32_t pid, uint64_t vpn);

/* Reference algorithms over t with `frames` frames: misses, or -1 (ENOMEM). */
enum sim_ref_kind { SIM_FIFO, SIM_LRU, SIM_CLOCK };
int64_t sim_ref_queue(const struct sim_trace *t, uint64_t frames, enum sim_ref_kind kind);
int64_t sim_ref_opt(const struct sim_trace *t, uint64_t frames);

#endif /* USM_CLI_SIM_H */
