/* SPDX-License-Identifier: MIT */
/*
 * core/trace.c - recording fault/eviction traces (`trace <comm> <file>`).
 *
 * File format, version 1.  All integers little-endian.
 *
 *   header, 32 bytes at offset 0:
 *     0  char[8]  magic "USMTRACE"
 *     8  u32      version (1)
 *    12  u32      page size in bytes (a power of two >= 512)
 *    16  u32      flags (none defined in version 1: 0)
 *    20  u32      record size in bytes (32)
 *    24  u64      creation time, CLOCK_REALTIME ns (for people)
 *
 *   then records, 32 bytes each, at offset 32 + 32 * i:
 *     0  u8       kind: 1 fault, 2 swapin, 3 evict, 4 access, 5 free
 *                 (enum usm_trace_kind)
 *     1  u8[3]    reserved, 0
 *     4  u32      pid
 *     8  u64      virtual page number (address / page size)
 *    16  u64      time: ns since the file was created (CLOCK_MONOTONIC)
 *    24  u32      page count (>= 1): pages vpn, vpn + 1, ...
 *    28  u32      reserved, 0
 *
 * A file ends after its last whole record; anything else (a short header
 * or record, an unknown kind, a reserved byte set) is an error for the
 * reader (core/tracefile.c).  A trace file may hold several processes:
 * every process whose comm matches the config line appends to the same
 * file.  Each process has its own buffer, so records of different
 * processes are interleaved in blocks; within one process they are in
 * time order.  Readers that need one global order sort by time (stable).
 *
 * Threads: events arrive from the process's worker, the reclaimer and the
 * access tracker; a per-process mutex guards the buffer, a per-file mutex
 * the file offset.  The buffer holds TRACE_BUF_RECS records and is written
 * out (pwrite, page cache) when full and on detach, so recording costs a
 * memcpy per event and a write per TRACE_BUF_RECS events.  Records still
 * buffered when the instance is killed are lost; the file stays valid.
 * usm_trace_detach must come after the process's last usm_trace_event
 * (it frees the buffer): call it from the process's teardown.
 */
#include "core/instance.h"
#include "core/tracefile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TRACE_BUF_RECS 2048     /* 64 KiB */

/* One open trace file, shared by every process that writes to it. */
struct trace_file {
	char path[256];
	int fd;
	unsigned refs;              /* under files_lock */
	uint32_t page_size;
	uint64_t start_mono;        /* CLOCK_MONOTONIC ns at creation */
	pthread_mutex_t lock;       /* off, and the writes */
	uint64_t off;               /* where the next block goes */
	struct trace_file *next;
};

struct usm_trace {
	pthread_mutex_t lock;
	struct trace_file *file;
	pid_t pid;
	bool failed;                /* a write failed: drop the rest */
	uint64_t written, dropped;  /* records */
	size_t len;                 /* bytes in buf */
	uint8_t buf[TRACE_BUF_RECS * USM_TRACE_REC_SIZE];
};

static pthread_mutex_t files_lock = PTHREAD_MUTEX_INITIALIZER;
static struct trace_file *files;

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Write all of buf at off; 0 or -errno. */
static int write_at(int fd, const uint8_t *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, buf, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		buf += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* Create (truncate) path and write its header.  Lock held: files_lock. */
static struct trace_file *file_create(const char *path, uint32_t page_size, int *rc)
{
	struct usm_trace_header h = {
		.version = USM_TRACE_VERSION, .page_size = page_size,
		.start_ns = clock_ns(CLOCK_REALTIME),
	};
	uint8_t hdr[USM_TRACE_HDR_SIZE];
	struct trace_file *tf = calloc(1, sizeof(*tf));

	if (!tf) {
		*rc = -ENOMEM;
		return NULL;
	}
	tf->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	usm_trace_encode_header(hdr, &h);
	*rc = tf->fd < 0 ? -errno : write_at(tf->fd, hdr, sizeof(hdr), 0);
	if (*rc) {
		if (tf->fd >= 0)
			close(tf->fd);
		free(tf);
		return NULL;
	}
	snprintf(tf->path, sizeof(tf->path), "%s", path);
	tf->page_size = page_size;
	tf->start_mono = clock_ns(CLOCK_MONOTONIC);
	tf->off = USM_TRACE_HDR_SIZE;
	pthread_mutex_init(&tf->lock, NULL);
	return tf;
}

/* The open file for path, created on first use, with a reference taken. */
static struct trace_file *file_get(const char *path, uint32_t page_size, int *rc)
{
	struct trace_file *tf;

	pthread_mutex_lock(&files_lock);
	for (tf = files; tf && strcmp(tf->path, path); tf = tf->next)
		;
	if (!tf) {
		tf = file_create(path, page_size, rc);
		if (tf) {
			tf->next = files;
			files = tf;
		}
	}
	if (tf)
		tf->refs++;
	pthread_mutex_unlock(&files_lock);
	return tf;
}

static void file_put(struct trace_file *tf)
{
	struct trace_file **pp;

	pthread_mutex_lock(&files_lock);
	if (--tf->refs) {
		pthread_mutex_unlock(&files_lock);
		return;
	}
	for (pp = &files; *pp != tf; pp = &(*pp)->next)
		;
	*pp = tf->next;
	pthread_mutex_unlock(&files_lock);
	if (close(tf->fd))
		usm_log(USM_LOG_ERROR, "trace %s: close: %s", tf->path, strerror(errno));
	pthread_mutex_destroy(&tf->lock);
	free(tf);
}

/* Write out t's buffer.  Lock held: t->lock. */
static void flush(struct usm_trace *t)
{
	struct trace_file *tf = t->file;
	size_t nrec = t->len / USM_TRACE_REC_SIZE;
	int rc;

	if (!t->len)
		return;
	pthread_mutex_lock(&tf->lock);
	rc = write_at(tf->fd, t->buf, t->len, tf->off);
	if (!rc)
		tf->off += t->len;
	else if (ftruncate(tf->fd, (off_t)tf->off))    /* drop a partial block */
		usm_log(USM_LOG_ERROR, "trace %s: ftruncate: %s", tf->path, strerror(errno));
	pthread_mutex_unlock(&tf->lock);
	t->len = 0;
	if (!rc) {
		t->written += nrec;
		return;
	}
	/* Nothing more from this process: a partial trace is still valid
	 * (the offset did not move), a trace with holes would mislead. */
	usm_log(USM_LOG_ERROR, "trace %s: pid %d: write failed: %s; recording stopped",
		tf->path, t->pid, strerror(-rc));
	t->failed = true;
	t->dropped += nrec;
}

int usm_trace_attach(struct usm_process *p)
{
	const char *path = usm_config_trace_for(&usm_inst->cfg, p->comm);
	struct usm_trace *t;
	int rc = 0;

	p->trace = NULL;
	if (!path)
		return 0;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->file = file_get(path, (uint32_t)usm_inst->cfg.page_size, &rc);
	if (!t->file) {
		usm_log(USM_LOG_ERROR, "trace for %s (pid %d): cannot create %s: %s",
			p->comm, p->pid, path, strerror(-rc));
		free(t);
		return rc;
	}
	pthread_mutex_init(&t->lock, NULL);
	t->pid = p->pid;
	p->trace = t;
	usm_log(USM_LOG_INFO, "tracing pid %d (%s) to %s", p->pid, p->comm, path);
	return 0;
}

void usm_trace_detach(struct usm_process *p)
{
	struct usm_trace *t = p->trace;

	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	flush(t);
	pthread_mutex_unlock(&t->lock);
	usm_log(t->dropped ? USM_LOG_WARN : USM_LOG_INFO,
		"trace %s: pid %d: %llu records written, %llu dropped", t->file->path,
		t->pid, (unsigned long long)t->written, (unsigned long long)t->dropped);
	file_put(t->file);
	pthread_mutex_destroy(&t->lock);
	free(t);
	p->trace = NULL;
}

/* Append one record.  Lock held: t->lock. */
static void append(struct usm_trace *t, enum usm_trace_kind kind, uint64_t vpn, uint32_t n)
{
	struct usm_trace_rec r = {
		.kind = (uint8_t)kind, .pid = (uint32_t)t->pid, .vpn = vpn, .npages = n,
		.time_ns = clock_ns(CLOCK_MONOTONIC) - t->file->start_mono,
	};

	if (t->failed) {
		t->dropped++;
		return;
	}
	usm_trace_encode_rec(t->buf + t->len, &r);
	t->len += USM_TRACE_REC_SIZE;
	if (t->len == sizeof(t->buf))
		flush(t);
}

void usm_trace_event(struct usm_process *p, enum usm_trace_kind kind,
		     uint64_t vaddr, uint64_t npages)
{
	struct usm_trace *t = p ? p->trace : NULL;
	uint64_t vpn;

	if (!t || !npages)
		return;
	vpn = vaddr / t->file->page_size;
	pthread_mutex_lock(&t->lock);
	/* The page count field is 32 bits: split larger ranges. */
	while (npages) {
		uint32_t n = npages > UINT32_MAX ? UINT32_MAX : (uint32_t)npages;

		append(t, kind, vpn, n);
		vpn += n;
		npages -= n;
	}
	pthread_mutex_unlock(&t->lock);
}
