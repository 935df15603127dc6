/* SPDX-License-Identifier: MIT */
/*
 * core/tracefile.h - the binary trace format: encoding, and a strict reader.
 *
 * core/trace.c writes these files for `trace <comm> <file>`; `usm sim`
 * reads them.  The layout is described at the top of core/trace.c.
 */
#ifndef USM_CORE_TRACEFILE_H
#define USM_CORE_TRACEFILE_H

#include <stdint.h>
#include <stdio.h>

#include "core/trace.h"

#define USM_TRACE_MAGIC      "USMTRACE"   /* 8 bytes, no terminating NUL */
#define USM_TRACE_VERSION    1
#define USM_TRACE_HDR_SIZE   32
#define USM_TRACE_REC_SIZE   32
#define USM_TRACE_KIND_MAX   USM_TR_FREE
#define USM_TRACE_MIN_PAGE   512

struct usm_trace_header {
	uint32_t version;
	uint32_t page_size;
	uint32_t flags;          /* none defined: must be 0 */
	uint64_t start_ns;       /* CLOCK_REALTIME when the file was created */
};

struct usm_trace_rec {
	uint8_t kind;            /* enum usm_trace_kind */
	uint32_t pid;
	uint64_t vpn;            /* virtual address / page size */
	uint32_t npages;         /* >= 1 */
	uint64_t time_ns;        /* since the file was created (CLOCK_MONOTONIC) */
};

void usm_trace_encode_header(uint8_t out[USM_TRACE_HDR_SIZE], const struct usm_trace_header *h);
void usm_trace_encode_rec(uint8_t out[USM_TRACE_REC_SIZE], const struct usm_trace_rec *r);
/* "fault", "swapin", ...; "?" for an unknown kind. */
const char *usm_trace_kind_name(unsigned kind);

/*
 * Reading: open, then next() until it returns 0 (end) or -1 (error).
 * Every error leaves "FILE: offset N: what was wrong" in the reader's err.
 */
struct usm_trace_reader {
	FILE *f;
	char path[256];
	struct usm_trace_header hdr;
	uint64_t offset;         /* of the next record */
	char err[512];
};

int usm_trace_open(struct usm_trace_reader *rd, const char *path);
int usm_trace_next(struct usm_trace_reader *rd, struct usm_trace_rec *out);
void usm_trace_close(struct usm_trace_reader *rd);

#endif /* USM_CORE_TRACEFILE_H */
