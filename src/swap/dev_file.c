/* SPDX-License-Identifier: MIT */
/*
 * swap/dev_file.c - a swap device on a file or a block device.
 *
 * Slot i is the page at byte i * page_size.  A batch of pages is one
 * io_uring submission: every write (or read) is queued, submitted with one
 * io_uring_enter, and the completions are reaped until each page is done;
 * short transfers continue where they stopped, -EAGAIN and -EINTR are
 * retried a bounded number of times.  When io_uring is not available
 * (kernel.io_uring_disabled, seccomp) the same requests run one by one
 * with pwrite/pread.
 *
 * `direct` opens the file with O_DIRECT: the page cache is bypassed, so
 * buffers, offsets and lengths must be aligned; a caller's buffer that is
 * not page-aligned goes through a bounce buffer.  The agent reads through
 * a second, plain read-only fd (usm_swap_dev_fd), which needs no
 * alignment; the kernel keeps it coherent with direct writes.
 *
 * One ring per device, used under the device's io_lock: batches on one
 * device run one after the other.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <usm/usm.h>
#include "mech/rawsys.h"
#include "swap/swap_int.h"

#define MAX_RETRIES 100     /* -EAGAIN / -EINTR completions of one request */

struct io_req {
	char *buf;
	uint64_t off;
	uint32_t done;          /* bytes moved so far */
	int err;                /* 0, or -errno once failed for good */
	unsigned retries;
	bool queued;            /* to be (re)submitted */
};

struct file_dev {
	pthread_mutex_t io_lock;   /* the ring, the bounce buffer, reqs */
	struct io_uring ring;
	bool have_ring;
	bool direct;
	int wfd;                   /* read-write, O_DIRECT with `direct` */
	int rfd;                   /* plain read-only: the agent's fd */
	unsigned char *bounce;     /* USM_SWAP_BATCH aligned pages (direct only) */
	size_t bounce_len;
	struct io_req reqs[USM_SWAP_BATCH];
};

/* ---- one batch of requests ------------------------------------------ */

/* Account one result (bytes, or -errno) of request r moving len bytes. */
static void req_complete(struct io_req *r, long res, size_t len)
{
	if (res == -EAGAIN || res == -EINTR) {
		r->queued = ++r->retries <= MAX_RETRIES;
		if (!r->queued)
			r->err = (int)res;
	} else if (res < 0) {
		r->err = (int)res;
	} else if (res == 0) {
		r->err = -EIO;           /* end of device, or a write that moved nothing */
	} else {
		r->done += (uint32_t)res;
		r->queued = r->done < len;
	}
}

static void req_init(struct io_req *r, void *buf, uint64_t off)
{
	*r = (struct io_req){ .buf = buf, .off = off, .queued = true };
}

/* Without io_uring: the same requests, one system call at a time. */
static void io_sync(struct file_dev *f, unsigned n, bool write, size_t len)
{
	for (unsigned i = 0; i < n; i++) {
		struct io_req *r = &f->reqs[i];

		while (r->queued) {
			ssize_t res = write ? pwrite(f->wfd, r->buf + r->done, len - r->done,
						     (off_t)(r->off + r->done))
					    : pread(f->wfd, r->buf + r->done, len - r->done,
						    (off_t)(r->off + r->done));

			req_complete(r, res < 0 ? -errno : res, len);
		}
	}
}

static void queue_reqs(struct file_dev *f, unsigned n, bool write, size_t len,
		       unsigned *inflight)
{
	for (unsigned i = 0; i < n; i++) {
		struct io_req *r = &f->reqs[i];
		struct io_uring_sqe *sqe;

		if (!r->queued)
			continue;
		sqe = io_uring_get_sqe(&f->ring);   /* never NULL: n <= ring size */
		if (write)
			io_uring_prep_write(sqe, f->wfd, r->buf + r->done,
					    (unsigned)(len - r->done), r->off + r->done);
		else
			io_uring_prep_read(sqe, f->wfd, r->buf + r->done,
					   (unsigned)(len - r->done), r->off + r->done);
		io_uring_sqe_set_data64(sqe, i);
		r->queued = false;
		(*inflight)++;
	}
}

static void reap_reqs(struct file_dev *f, size_t len, unsigned *inflight)
{
	struct io_uring_cqe *cqe;

	while (io_uring_peek_cqe(&f->ring, &cqe) == 0) {
		struct io_req *r = &f->reqs[io_uring_cqe_get_data64(cqe)];

		req_complete(r, cqe->res, len);
		io_uring_cqe_seen(&f->ring, cqe);
		(*inflight)--;
	}
}

static bool any_queued(const struct file_dev *f, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (f->reqs[i].queued)
			return true;
	return false;
}

/*
 * A failing io_uring_enter (other than a signal or a transient shortage)
 * leaves the ring in doubt: wait for what is in flight, drop the ring and
 * finish the batch with synchronous I/O.  A request whose completion was
 * lost is written (or read) again: same bytes, same place.
 */
static void io_ring_abandon(struct file_dev *f, unsigned n, bool write, size_t len,
			    unsigned inflight, int why)
{
	struct io_uring_cqe *cqe;

	usm_log(USM_LOG_ERROR, "swap: io_uring_enter: %s; continuing with synchronous I/O",
		strerror(-why));
	inflight -= io_uring_sq_ready(&f->ring);    /* queued, never consumed */
	while (inflight && io_uring_wait_cqe(&f->ring, &cqe) == 0)
		reap_reqs(f, len, &inflight);
	io_uring_queue_exit(&f->ring);
	f->have_ring = false;
	for (unsigned i = 0; i < n; i++)
		f->reqs[i].queued = !f->reqs[i].err && f->reqs[i].done < len;
	io_sync(f, n, write, len);
}

/* Run f->reqs[0..n) through the ring: one submission for the batch, then
 * resubmissions only for what came back short or busy. */
static void io_ring(struct file_dev *f, unsigned n, bool write, size_t len)
{
	unsigned inflight = 0;

	while (inflight || any_queued(f, n)) {
		int ret;

		queue_reqs(f, n, write, len, &inflight);
		ret = io_uring_submit_and_wait(&f->ring, 1);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
			io_ring_abandon(f, n, write, len, inflight, ret);
			return;
		}
		reap_reqs(f, len, &inflight);
	}
}

static void io_run(struct file_dev *f, unsigned n, bool write, size_t len)
{
	if (f->have_ring)
		io_ring(f, n, write, len);
	else
		io_sync(f, n, write, len);
}

/* The buffer to hand the kernel for page i: the caller's, or the bounce
 * page when O_DIRECT needs alignment the caller's lacks. */
static char *io_buf(struct file_dev *f, unsigned i, const void *user, size_t ps)
{
	if (f->direct && ((uintptr_t)user & (ps - 1)))
		return (char *)f->bounce + (size_t)i * ps;
	return (char *)user;
}

/* ---- device ops ------------------------------------------------------- */

static unsigned file_store(struct swap_dev *d, const void *const *pages, const uint32_t *slots,
			   unsigned n, struct usm_swap_loc *out, uint64_t *errors)
{
	struct file_dev *f = d->priv;
	size_t ps = d->page_size;
	unsigned stored = 0;
	int first_err = 0;

	pthread_mutex_lock(&f->io_lock);
	for (unsigned i = 0; i < n; i++) {
		char *buf = io_buf(f, i, pages[i], ps);

		if (buf != pages[i])
			memcpy(buf, pages[i], ps);
		req_init(&f->reqs[i], buf, (uint64_t)slots[i] * ps);
	}
	io_run(f, n, true, ps);
	for (unsigned i = 0; i < n; i++) {
		if (f->reqs[i].err) {
			first_err = first_err ? first_err : f->reqs[i].err;
			(*errors)++;
			continue;
		}
		out[i].off = f->reqs[i].off;
		out[i].len = (uint16_t)ps;
		out[i].codec = USM_CODEC_NONE;
		stored++;
	}
	pthread_mutex_unlock(&f->io_lock);
	if (first_err)
		usm_log(USM_LOG_ERROR, "swap: writing %u of %u pages to %s: %s", n - stored, n,
			d->cfg.path, strerror(-first_err));
	return stored;
}

static int file_load(struct swap_dev *d, const struct usm_swap_loc *locs, void *const *bufs,
		     unsigned n)
{
	struct file_dev *f = d->priv;
	size_t ps = d->page_size;
	int ret = 0;

	pthread_mutex_lock(&f->io_lock);
	for (unsigned i = 0; i < n; i++)
		req_init(&f->reqs[i], io_buf(f, i, bufs[i], ps), locs[i].off);
	io_run(f, n, false, ps);
	for (unsigned i = 0; i < n; i++) {
		if (f->reqs[i].err)
			ret = ret ? ret : f->reqs[i].err;
		else if (f->reqs[i].buf != bufs[i])
			memcpy(bufs[i], f->reqs[i].buf, ps);
	}
	pthread_mutex_unlock(&f->io_lock);
	if (ret)
		usm_log(USM_LOG_ERROR, "swap: reading %u pages from %s: %s", n, d->cfg.path,
			strerror(-ret));
	return ret;
}

/* A regular file: private to its owner, and size bytes reserved. */
static int prepare_file(int fd, const struct stat *st, uint64_t size, char *err,
			size_t errlen)
{
	if ((st->st_mode & 077) && fchmod(fd, 0600))
		return usm_swap_fail(err, errlen, -errno, "fchmod 0600");
	if ((uint64_t)st->st_size >= size)
		return 0;
	if (fallocate(fd, 0, 0, (off_t)size) == 0)
		return 0;
	if (errno != EOPNOTSUPP && errno != ENOSYS)
		return usm_swap_fail(err, errlen, -errno, "fallocate %llu bytes",
				     (unsigned long long)size);
	if (ftruncate(fd, (off_t)size))
		return usm_swap_fail(err, errlen, -errno, "ftruncate to %llu bytes",
				     (unsigned long long)size);
	return 0;
}

/* Bytes of device to use: the configured size, or less for a block device. */
static int device_bytes(int fd, const struct swap_dev *d, uint64_t *bytes, char *err,
			size_t errlen)
{
	struct stat st;
	uint64_t dev_bytes;

	if (fstat(fd, &st))
		return usm_swap_fail(err, errlen, -errno, "fstat");
	*bytes = d->cfg.size;
	if (S_ISREG(st.st_mode))
		return prepare_file(fd, &st, d->cfg.size, err, errlen);
	if (!S_ISBLK(st.st_mode))
		return usm_swap_fail(err, errlen, -EINVAL, "not a regular file or a block "
				     "device");
	if (ioctl(fd, BLKGETSIZE64, &dev_bytes))
		return usm_swap_fail(err, errlen, -errno, "BLKGETSIZE64");
	if (dev_bytes < *bytes)
		*bytes = dev_bytes;
	return 0;
}

static void file_close(void *priv)
{
	struct file_dev *f = priv;

	if (f->have_ring)
		io_uring_queue_exit(&f->ring);
	if (f->wfd >= 0)
		close(f->wfd);
	if (f->rfd >= 0)
		close(f->rfd);
	if (f->bounce)
		raw_unmap(f->bounce, f->bounce_len);
	pthread_mutex_destroy(&f->io_lock);
	free(f);
}

static int open_fds(struct file_dev *f, const struct swap_dev *d, char *err, size_t errlen)
{
	int flags = O_RDWR | O_CREAT | O_CLOEXEC | (d->cfg.direct ? O_DIRECT : 0);

	f->wfd = open(d->cfg.path, flags, 0600);
	if (f->wfd < 0 && errno == EINVAL && d->cfg.direct)
		return usm_swap_fail(err, errlen, -EINVAL, "open with O_DIRECT (does the "
				     "filesystem support direct I/O?)");
	if (f->wfd < 0)
		return usm_swap_fail(err, errlen, -errno, "open");
	f->rfd = open(d->cfg.path, O_RDONLY | O_CLOEXEC);
	if (f->rfd < 0)
		return usm_swap_fail(err, errlen, -errno, "open read-only");
	return 0;
}

static int file_open(struct swap_dev *d, char *err, size_t errlen)
{
	struct file_dev *f;
	uint64_t bytes = 0;
	int ret;

	if (d->private_mem)
		return usm_swap_fail(err, errlen, -ENOTSUP, "not available in the in-process host");
	f = calloc(1, sizeof(*f));
	if (!f)
		return usm_swap_fail(err, errlen, -ENOMEM, "device state");
	pthread_mutex_init(&f->io_lock, NULL);
	f->wfd = f->rfd = -1;
	f->direct = d->cfg.direct;
	ret = open_fds(f, d, err, errlen);
	if (!ret)
		ret = device_bytes(f->wfd, d, &bytes, err, errlen);
	if (!ret && f->direct) {
		f->bounce_len = USM_SWAP_BATCH * d->page_size;
		f->bounce = raw_map(f->bounce_len, PROT_READ | PROT_WRITE);
		if (!f->bounce)
			ret = usm_swap_fail(err, errlen, -ENOMEM, "bounce buffer");
	}
	if (ret) {
		file_close(f);
		return ret;
	}
	ret = io_uring_queue_init(USM_SWAP_BATCH, &f->ring, 0);
	f->have_ring = ret == 0;
	if (ret)
		usm_log(USM_LOG_WARN, "swap: io_uring not available (%s); %s uses "
			"synchronous I/O", strerror(-ret), d->cfg.path);

	usm_swap_dev_opened(d, f, f->rfd, bytes / d->page_size, d->page_size,
			    (uint32_t)d->page_size);
	return 0;
}


const struct swap_dev_ops usm_swap_file_ops = {
	.open = file_open,
	.close = file_close,
	.store = file_store,
	.load = file_load,
	.release = NULL,
};
