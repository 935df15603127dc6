/* SPDX-License-Identifier: MIT */
/*
 * core/tracefile.c - encoding and strict reading of trace files (the
 * format is described at the top of core/trace.c).
 *
 * The reader trusts nothing: every field with a meaning is checked, and
 * the first problem ends the read with the file, the byte offset and what
 * was wrong, so a damaged trace never becomes a silently wrong simulation.
 */
#include "core/tracefile.h"

#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>

static void put32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

void usm_trace_encode_header(uint8_t out[USM_TRACE_HDR_SIZE], const struct usm_trace_header *h)
{
	memset(out, 0, USM_TRACE_HDR_SIZE);
	memcpy(out, USM_TRACE_MAGIC, 8);
	put32(out + 8, h->version);
	put32(out + 12, h->page_size);
	put32(out + 16, h->flags);
	put32(out + 20, USM_TRACE_REC_SIZE);
	put64(out + 24, h->start_ns);
}

void usm_trace_encode_rec(uint8_t out[USM_TRACE_REC_SIZE], const struct usm_trace_rec *r)
{
	memset(out, 0, USM_TRACE_REC_SIZE);
	out[0] = r->kind;
	put32(out + 4, r->pid);
	put64(out + 8, r->vpn);
	put64(out + 16, r->time_ns);
	put32(out + 24, r->npages);
}

const char *usm_trace_kind_name(unsigned kind)
{
	static const char *const names[] = {
		[USM_TR_FAULT] = "fault", [USM_TR_SWAPIN] = "swapin", [USM_TR_EVICT] = "evict",
		[USM_TR_ACCESS] = "access", [USM_TR_FREE] = "free",
	};

	return kind >= 1 && kind <= USM_TRACE_KIND_MAX ? names[kind] : "?";
}

/* Record "FILE: offset N: ..." in rd->err; returns -1. */
__attribute__((format(printf, 3, 4)))
static int bad(struct usm_trace_reader *rd, uint64_t offset, const char *fmt, ...)
{
	int n = snprintf(rd->err, sizeof(rd->err), "%s: offset %llu: ", rd->path,
			 (unsigned long long)offset);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rd->err + n, sizeof(rd->err) - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

/* Read up to len bytes; returns how many (short only at end of file), -1 on error. */
static long read_full(struct usm_trace_reader *rd, uint8_t *buf, size_t len)
{
	size_t got = fread(buf, 1, len, rd->f);

	if (got < len && ferror(rd->f)) {
		snprintf(rd->err, sizeof(rd->err), "%s: offset %llu: read error: %s", rd->path,
			 (unsigned long long)(rd->offset + got), strerror(errno));
		return -1;
	}
	return (long)got;
}

static bool power_of_two(uint32_t v)
{
	return v && !(v & (v - 1));
}

static int check_header(struct usm_trace_reader *rd, const uint8_t *h, long got)
{
	uint32_t recsize;

	if (memcmp(h, USM_TRACE_MAGIC, got < 8 ? (size_t)got : 8))
		return bad(rd, 0, "bad magic (not a USM trace file: expected \"USMTRACE\")");
	if (got < USM_TRACE_HDR_SIZE)
		return bad(rd, 0, "truncated header (%ld of %d bytes)", got, USM_TRACE_HDR_SIZE);
	rd->hdr.version = get32(h + 8);
	rd->hdr.page_size = get32(h + 12);
	rd->hdr.flags = get32(h + 16);
	recsize = get32(h + 20);
	rd->hdr.start_ns = get64(h + 24);
	if (rd->hdr.version != USM_TRACE_VERSION)
		return bad(rd, 8, "unsupported version %u (this usm reads version %d)",
			   rd->hdr.version, USM_TRACE_VERSION);
	if (!power_of_two(rd->hdr.page_size) || rd->hdr.page_size < USM_TRACE_MIN_PAGE)
		return bad(rd, 12, "bad page size %u (expected a power of two >= %d)",
			   rd->hdr.page_size, USM_TRACE_MIN_PAGE);
	if (rd->hdr.flags)
		return bad(rd, 16, "unknown flags 0x%x (version %d defines none)",
			   rd->hdr.flags, USM_TRACE_VERSION);
	if (recsize != USM_TRACE_REC_SIZE)
		return bad(rd, 20, "record size %u (version %d records are %d bytes)",
			   recsize, USM_TRACE_VERSION, USM_TRACE_REC_SIZE);
	return 0;
}

int usm_trace_open(struct usm_trace_reader *rd, const char *path)
{
	uint8_t h[USM_TRACE_HDR_SIZE];
	long got;

	memset(rd, 0, sizeof(*rd));
	snprintf(rd->path, sizeof(rd->path), "%s", path);
	rd->f = fopen(path, "rb");
	if (!rd->f) {
		snprintf(rd->err, sizeof(rd->err), "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	got = read_full(rd, h, sizeof(h));
	if (got < 0 || check_header(rd, h, got)) {
		usm_trace_close(rd);
		return -1;
	}
	rd->offset = USM_TRACE_HDR_SIZE;
	return 0;
}

static int check_rec(struct usm_trace_reader *rd, const uint8_t *b, struct usm_trace_rec *r)
{
	uint64_t at = rd->offset;

	r->kind = b[0];
	r->pid = get32(b + 4);
	r->vpn = get64(b + 8);
	r->time_ns = get64(b + 16);
	r->npages = get32(b + 24);
	if (r->kind < 1 || r->kind > USM_TRACE_KIND_MAX)
		return bad(rd, at, "unknown record kind %u (expected 1-%d)", r->kind,
			   USM_TRACE_KIND_MAX);
	if (b[1] || b[2] || b[3] || get32(b + 28))
		return bad(rd, at, "%s record: reserved bytes are not zero",
			   usm_trace_kind_name(r->kind));
	if (!r->npages)
		return bad(rd, at + 24, "%s record: page count is 0",
			   usm_trace_kind_name(r->kind));
	/* The pages' addresses must fit in 64 bits. */
	if (r->vpn + r->npages < r->vpn ||
	    r->vpn + r->npages > UINT64_MAX / rd->hdr.page_size)
		return bad(rd, at + 8, "%s record: page range %#llx+%u is beyond the "
			   "address space", usm_trace_kind_name(r->kind),
			   (unsigned long long)r->vpn, r->npages);
	return 0;
}

int usm_trace_next(struct usm_trace_reader *rd, struct usm_trace_rec *out)
{
	uint8_t b[USM_TRACE_REC_SIZE];
	long got = read_full(rd, b, sizeof(b));

	if (got < 0)
		return -1;
	if (got == 0)
		return 0;
	if (got < USM_TRACE_REC_SIZE)
		return bad(rd, rd->offset, "truncated record (%ld of %d bytes)", got,
			   USM_TRACE_REC_SIZE);
	if (check_rec(rd, b, out))
		return -1;
	rd->offset += USM_TRACE_REC_SIZE;
	return 1;
}

void usm_trace_close(struct usm_trace_reader *rd)
{
	if (rd->f)
		fclose(rd->f);
	rd->f = NULL;
}
