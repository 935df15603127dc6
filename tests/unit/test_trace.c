/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for core/trace.c and core/tracefile.c: what the writer
 * records is read back exactly (one process, several processes sharing a
 * file, several threads at once, ranges wider than a record), and every
 * damaged or truncated file gives its exact error: file, offset, what.
 *
 * The writer needs an instance only for its config; the tests give it a
 * bare struct usm_instance with a `trace` line, and bare processes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/instance.h"
#include "core/trace.h"
#include "core/tracefile.h"

#define PAGE 4096ull

static char dir[] = "/tmp/usm-unit-trace-XXXXXX";
static char path[200];
static struct usm_instance inst;
static struct usm_cfg_trace trace_line;

/* The instance traces comm "traced" to <dir>/<file>. */
static void trace_to(const char *file)
{
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	snprintf(trace_line.comm, sizeof(trace_line.comm), "traced");
	snprintf(trace_line.path, sizeof(trace_line.path), "%s", path);
	inst.cfg.page_size = PAGE;
	inst.cfg.traces = &trace_line;
	inst.cfg.ntraces = 1;
	usm_inst = &inst;
}

static void new_proc(struct usm_process *p, pid_t pid, const char *comm)
{
	memset(p, 0, sizeof(*p));
	p->pid = pid;
	snprintf(p->comm, sizeof(p->comm), "%s", comm);
}

/* Every record of path, with the header checked; returns the count. */
static size_t read_back(const char *file, struct usm_trace_rec *out, size_t max)
{
	struct usm_trace_reader rd;
	struct usm_trace_rec r;
	size_t n = 0;
	int rc;

	assert_int_equal(usm_trace_open(&rd, file), 0);
	assert_int_equal(rd.hdr.version, 1);
	assert_int_equal(rd.hdr.page_size, PAGE);
	assert_int_equal(rd.hdr.flags, 0);
	assert_true(rd.hdr.start_ns > 0);
	while ((rc = usm_trace_next(&rd, &r)) == 1) {
		assert_true(n < max);
		out[n++] = r;
	}
	if (rc)
		fail_msg("%s", rd.err);
	usm_trace_close(&rd);
	return n;
}

/* ---- writer ------------------------------------------------------------ */

static void test_roundtrip(void **state)
{
	static const struct { enum usm_trace_kind kind; uint64_t vaddr, n; } ev[] = {
		{ USM_TR_FAULT, 0x7f0000001000, 1 },
		{ USM_TR_SWAPIN, 0x7f0000010000, 16 },
		{ USM_TR_EVICT, 0x5555000, 1 },
		{ USM_TR_ACCESS, 0x7f0000001000, 3 },
		{ USM_TR_FREE, 0x7f0000010000, 16 },
	};
	/* more than one buffer (2048 records), to cover a flush mid-way */
	enum { EXTRA = 5000 };
	static struct usm_trace_rec got[16 + EXTRA];
	struct usm_process p;
	size_t n;

	trace_to("roundtrip.trace");
	new_proc(&p, 4242, "traced");
	assert_int_equal(usm_trace_attach(&p), 0);
	assert_non_null(p.trace);
	for (size_t i = 0; i < 5; i++)
		usm_trace_event(&p, ev[i].kind, ev[i].vaddr, ev[i].n);
	for (uint64_t i = 0; i < EXTRA; i++)
		usm_trace_event(&p, USM_TR_FAULT, (0x100000 + i) * PAGE, 1);
	usm_trace_event(&p, USM_TR_FAULT, 0x1000, 0);          /* no pages: no record */
	usm_trace_detach(&p);
	assert_null(p.trace);

	n = read_back(path, got, 16 + EXTRA);
	assert_int_equal(n, 5 + EXTRA);
	for (size_t i = 0; i < 5; i++) {
		assert_int_equal(got[i].kind, ev[i].kind);
		assert_int_equal(got[i].pid, 4242);
		assert_int_equal(got[i].vpn, ev[i].vaddr / PAGE);
		assert_int_equal(got[i].npages, ev[i].n);
	}
	for (size_t i = 0; i < EXTRA; i++) {
		assert_int_equal(got[5 + i].kind, USM_TR_FAULT);
		assert_int_equal(got[5 + i].vpn, 0x100000 + i);
		assert_int_equal(got[5 + i].npages, 1);
	}
	for (size_t i = 1; i < n; i++)
		assert_true(got[i].time_ns >= got[i - 1].time_ns);
	/* header + whole records, nothing else */
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	assert_int_equal(ftell(f), USM_TRACE_HDR_SIZE + (5 + EXTRA) * USM_TRACE_REC_SIZE);
	fclose(f);
}

static void test_not_traced(void **state)
{
	struct usm_process p;

	trace_to("never.trace");
	new_proc(&p, 1, "other");
	assert_int_equal(usm_trace_attach(&p), 0);
	assert_null(p.trace);
	usm_trace_event(&p, USM_TR_FAULT, 0x1000, 1);
	usm_trace_event(NULL, USM_TR_FAULT, 0x1000, 1);
	usm_trace_detach(&p);
	assert_int_equal(access(path, F_OK), -1);
}

static void test_cannot_create(void **state)
{
	struct usm_process p;

	trace_to("no-such-dir/x.trace");
	new_proc(&p, 1, "traced");
	assert_int_equal(usm_trace_attach(&p), -ENOENT);
	assert_null(p.trace);
}

static void test_wide_range(void **state)
{
	struct usm_trace_rec got[4];
	struct usm_process p;

	trace_to("wide.trace");
	new_proc(&p, 7, "traced");
	assert_int_equal(usm_trace_attach(&p), 0);
	usm_trace_event(&p, USM_TR_FREE, 0x10000, (1ull << 32) + 5);
	usm_trace_detach(&p);
	assert_int_equal(read_back(path, got, 4), 2);
	assert_int_equal(got[0].vpn, 0x10);
	assert_int_equal(got[0].npages, UINT32_MAX);
	assert_int_equal(got[1].vpn, 0x10 + (uint64_t)UINT32_MAX);
	assert_int_equal(got[1].npages, 6);
}

/* Two processes of the same comm share the file; two threads each write
 * to each of them at once (worker and reclaimer). */
enum { THREADS = 4, PER_THREAD = 3000 };

struct writer {
	struct usm_process *p;
	unsigned id;
};

static void *write_events(void *arg)
{
	struct writer *w = arg;

	for (uint64_t i = 0; i < PER_THREAD; i++)
		usm_trace_event(w->p, USM_TR_ACCESS, ((uint64_t)w->id << 20 | i) * PAGE, 1);
	return NULL;
}

static void test_threads_and_processes(void **state)
{
	static struct usm_trace_rec got[THREADS * PER_THREAD + 1];
	struct usm_process a, b;
	struct writer w[THREADS];
	pthread_t th[THREADS];
	uint64_t next[THREADS] = { 0 }, last_time[2] = { 0, 0 };
	size_t n;

	trace_to("shared.trace");
	new_proc(&a, 100, "traced");
	new_proc(&b, 200, "traced");
	assert_int_equal(usm_trace_attach(&a), 0);
	assert_int_equal(usm_trace_attach(&b), 0);
	for (unsigned i = 0; i < THREADS; i++) {
		w[i] = (struct writer){ .p = i % 2 ? &b : &a, .id = i };
		assert_int_equal(pthread_create(&th[i], NULL, write_events, &w[i]), 0);
	}
	for (unsigned i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	usm_trace_detach(&a);
	usm_trace_detach(&b);

	n = read_back(path, got, THREADS * PER_THREAD + 1);
	assert_int_equal(n, THREADS * PER_THREAD);
	/* every event once, each thread's in its order, each pid in time order */
	for (size_t i = 0; i < n; i++) {
		unsigned id = (unsigned)(got[i].vpn >> 20);
		unsigned pi = got[i].pid == 200;

		assert_true(id < THREADS);
		assert_int_equal(got[i].pid, id % 2 ? 200 : 100);
		assert_int_equal(got[i].vpn & 0xfffff, next[id]);
		next[id]++;
		assert_true(got[i].time_ns >= last_time[pi]);
		last_time[pi] = got[i].time_ns;
	}
	for (unsigned i = 0; i < THREADS; i++)
		assert_int_equal(next[i], PER_THREAD);
}

/* ---- reader: damaged files ----------------------------------------------- */

static uint8_t good_hdr[USM_TRACE_HDR_SIZE];

static void make_good_header(void)
{
	struct usm_trace_header h = { .version = 1, .page_size = 4096, .start_ns = 1 };

	usm_trace_encode_header(good_hdr, &h);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void write_file(const char *name, const void *a, size_t alen, const void *b, size_t blen)
{
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(a, 1, alen, f), alen);
	if (blen)
		assert_int_equal(fwrite(b, 1, blen, f), blen);
	fclose(f);
}

/* open must fail with "<path>: <want>" */
static void expect_open_error(const char *want)
{
	struct usm_trace_reader rd;
	char full[800];

	snprintf(full, sizeof(full), "%s: %s", path, want);
	assert_int_equal(usm_trace_open(&rd, path), -1);
	assert_string_equal(rd.err, full);
	assert_null(rd.f);
}

/* open succeeds; after `good` records, next must fail with want */
static void expect_record_error(unsigned good, const char *want)
{
	struct usm_trace_reader rd;
	struct usm_trace_rec r;
	char full[800];

	snprintf(full, sizeof(full), "%s: %s", path, want);
	assert_int_equal(usm_trace_open(&rd, path), 0);
	for (unsigned i = 0; i < good; i++)
		assert_int_equal(usm_trace_next(&rd, &r), 1);
	assert_int_equal(usm_trace_next(&rd, &r), -1);
	assert_string_equal(rd.err, full);
	usm_trace_close(&rd);
}

/* A good header with the u32 at off set to v must fail to open with want. */
static void bad_field(size_t off, uint32_t v, const char *want)
{
	uint8_t h[USM_TRACE_HDR_SIZE];

	memcpy(h, good_hdr, sizeof(h));
	put_le32(h + off, v);
	write_file("field", h, sizeof(h), NULL, 0);
	expect_open_error(want);
}

static void test_bad_headers(void **state)
{
	uint8_t h[USM_TRACE_HDR_SIZE];

	make_good_header();
	snprintf(path, sizeof(path), "%s/missing", dir);
	expect_open_error("cannot open: No such file or directory");

	write_file("empty", "", 0, NULL, 0);
	expect_open_error("offset 0: truncated header (0 of 32 bytes)");
	write_file("short", good_hdr, 20, NULL, 0);
	expect_open_error("offset 0: truncated header (20 of 32 bytes)");
	write_file("short-magic", "USMT", 4, NULL, 0);
	expect_open_error("offset 0: truncated header (4 of 32 bytes)");
	write_file("text", "#!/bin/sh\necho hello\n", 21, NULL, 0);
	expect_open_error("offset 0: bad magic (not a USM trace file: expected \"USMTRACE\")");

	memcpy(h, good_hdr, sizeof(h));
	h[7] = 'X';
	write_file("magic", h, sizeof(h), NULL, 0);
	expect_open_error("offset 0: bad magic (not a USM trace file: expected \"USMTRACE\")");

	bad_field(8, 2, "offset 8: unsupported version 2 (this usm reads version 1)");
	static const uint32_t bad_pages[] = { 0, 4097, 3000, 256 };
	for (size_t i = 0; i < 4; i++) {
		char want[128];

		snprintf(want, sizeof(want), "offset 12: bad page size %u (expected a power "
			 "of two >= 512)", bad_pages[i]);
		bad_field(12, bad_pages[i], want);
	}
	bad_field(16, 0x10, "offset 16: unknown flags 0x10 (version 1 defines none)");
	bad_field(20, 24, "offset 20: record size 24 (version 1 records are 32 bytes)");

	/* a header alone is a valid, empty trace */
	struct usm_trace_reader rd;
	struct usm_trace_rec r;

	write_file("hdr-only", good_hdr, sizeof(good_hdr), NULL, 0);
	assert_int_equal(usm_trace_open(&rd, path), 0);
	assert_int_equal(usm_trace_next(&rd, &r), 0);
	usm_trace_close(&rd);
}

static void test_bad_records(void **state)
{
	struct usm_trace_rec ok = { .kind = USM_TR_FAULT, .pid = 9, .vpn = 0x1234,
				    .npages = 1, .time_ns = 5 };
	uint8_t recs[3][USM_TRACE_REC_SIZE];

	make_good_header();
	for (int i = 0; i < 3; i++)
		usm_trace_encode_rec(recs[i], &ok);

	write_file("trunc", good_hdr, sizeof(good_hdr), recs, 2 * sizeof(recs[0]) - 22);
	expect_record_error(1, "offset 64: truncated record (10 of 32 bytes)");

	recs[1][0] = 6;
	write_file("kind6", good_hdr, sizeof(good_hdr), recs, sizeof(recs));
	expect_record_error(1, "offset 64: unknown record kind 6 (expected 1-5)");
	recs[1][0] = 0;
	write_file("kind0", good_hdr, sizeof(good_hdr), recs, sizeof(recs));
	expect_record_error(1, "offset 64: unknown record kind 0 (expected 1-5)");
	recs[1][0] = USM_TR_FAULT;

	recs[0][2] = 1;
	write_file("reserved", good_hdr, sizeof(good_hdr), recs, sizeof(recs));
	expect_record_error(0, "offset 32: fault record: reserved bytes are not zero");
	recs[0][2] = 0;
	recs[2][30] = 1;
	recs[2][0] = USM_TR_EVICT;
	write_file("reserved2", good_hdr, sizeof(good_hdr), recs, sizeof(recs));
	expect_record_error(2, "offset 96: evict record: reserved bytes are not zero");
	usm_trace_encode_rec(recs[2], &ok);

	ok.npages = 0;
	ok.kind = USM_TR_FREE;
	usm_trace_encode_rec(recs[1], &ok);
	write_file("zero", good_hdr, sizeof(good_hdr), recs, sizeof(recs));
	expect_record_error(1, "offset 88: free record: page count is 0");

	ok.npages = 2;
	ok.vpn = (1ull << 52) - 1;        /* 4 KiB pages: 2^52 is past 2^64 bytes */
	usm_trace_encode_rec(recs[1], &ok);
	write_file("range", good_hdr, sizeof(good_hdr), recs, sizeof(recs));
	expect_record_error(1, "offset 72: free record: page range 0xfffffffffffff+2 is beyond the "
			    "address space");
}

/* What the reader decodes is what the writer encoded, every field. */
static void test_encode_decode(void **state)
{
	struct usm_trace_rec in = { .kind = USM_TR_SWAPIN, .pid = 0xfedcba98,
				    .vpn = 0x0123456789a, .npages = 0x87654321,
				    .time_ns = 0x1122334455667788ull }, out;
	uint8_t rec[USM_TRACE_REC_SIZE];
	struct usm_trace_reader rd;

	make_good_header();
	usm_trace_encode_rec(rec, &in);
	/* little-endian on disk, whatever the host */
	assert_int_equal(rec[0], 2);
	assert_int_equal(rec[4], 0x98);
	assert_int_equal(rec[8], 0x9a);
	assert_int_equal(rec[16], 0x88);
	assert_int_equal(rec[24], 0x21);
	write_file("one", good_hdr, sizeof(good_hdr), rec, sizeof(rec));
	assert_int_equal(usm_trace_open(&rd, path), 0);
	assert_int_equal(rd.hdr.start_ns, 1);
	assert_int_equal(usm_trace_next(&rd, &out), 1);
	assert_int_equal(out.kind, in.kind);
	assert_int_equal(out.pid, in.pid);
	assert_int_equal(out.vpn, in.vpn);
	assert_int_equal(out.npages, in.npages);
	assert_int_equal(out.time_ns, in.time_ns);
	assert_int_equal(usm_trace_next(&rd, &out), 0);
	usm_trace_close(&rd);
	assert_string_equal(usm_trace_kind_name(USM_TR_ACCESS), "access");
	assert_string_equal(usm_trace_kind_name(0), "?");
	assert_string_equal(usm_trace_kind_name(6), "?");
}

static int setup(void **state)
{
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	usm_inst = NULL;
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_not_traced),
		cmocka_unit_test(test_cannot_create),
		cmocka_unit_test(test_wide_range),
		cmocka_unit_test(test_threads_and_processes),
		cmocka_unit_test(test_bad_headers),
		cmocka_unit_test(test_bad_records),
		cmocka_unit_test(test_encode_decode),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
