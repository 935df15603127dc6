/*
 * fault_bench: cost of one first-touch page fault, per 4 KiB page.
 *
 * Plain C11, no USM headers: the `touch` mode is what runs under `usm run`,
 * so this program must not depend on (or know about) USM at all.
 *
 * Usage: fault_bench MODE [--size-mb N] [--reps R] [--warmup-mb M]
 *
 * Modes
 *   kernel         mmap anonymous private N MiB with MADV_NOHUGEPAGE, write
 *                  one byte per 4 KiB page, time the touch loop, munmap.
 *                  The kernel's 4K anonymous-fault baseline.
 *   uffd-raw       the same mapping registered with userfaultfd (MISSING);
 *                  a handler thread blocks in poll(), read()s up to 64 fault
 *                  messages per call and resolves each with UFFDIO_COPY of
 *                  one 4 KiB page from a zero buffer.  The limit of the
 *                  handler-thread path that USM's daemon uses.
 *   uffd-raw-spin  as uffd-raw, but the handler spins on a non-blocking
 *                  read() instead of sleeping in poll().
 *   uffd-raw-16    as uffd-raw, but each fault is resolved by copying the
 *                  16-page (64 KiB) aligned window around the fault, clipped
 *                  to the mapping.
 *   touch          mmap + touch + time + munmap, like `kernel` but with no
 *                  madvise at all.  Meant to be run under `usm run`, where
 *                  the preload agent registers the mapping and the daemon
 *                  resolves the faults: its timing then measures USM.
 *   warmup         only the warm-up below, no measurement (lets a script
 *                  warm the VM's memory in a separate process).
 *
 * Warm-up: before timing anything, M MiB (default 3072) are touched and
 * unmapped once.  On a VM the first touch of guest memory is several times
 * slower than later ones (the host backs the page then), which would
 * otherwise dominate the first repetition.
 *
 * Output: one machine-readable line per repetition
 *   result mode=<mode> size_mb=<n> rep=<i> ns_per_page=<x>
 * then a human summary line (starting with '#').  Errors go to stderr and
 * the exit status is 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

#define PAGE_SZ     4096UL
#define WINDOW_16   16UL
#define MSG_BATCH   64

enum mode { M_KERNEL, M_UFFD, M_UFFD_SPIN, M_UFFD_16, M_UFFD_SIGBUS, M_TOUCH, M_WARMUP };

static const struct { const char *name; enum mode m; } modes[] = {
	{ "kernel", M_KERNEL },
	{ "uffd-raw", M_UFFD },
	{ "uffd-raw-spin", M_UFFD_SPIN },
	{ "uffd-raw-16", M_UFFD_16 },
	{ "uffd-raw-sigbus", M_UFFD_SIGBUS },
	{ "touch", M_TOUCH },
	{ "warmup", M_WARMUP },
};

static const char *prog = "fault_bench";

static void die(const char *what)
{
	fprintf(stderr, "%s: %s: %s\n", prog, what, strerror(errno));
	exit(1);
}

static void die_err(const char *what, int err)
{
	fprintf(stderr, "%s: %s: %s\n", prog, what, strerror(err));
	exit(1);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s MODE [--size-mb N] [--reps R] [--warmup-mb M]\n"
		"  MODE: kernel | uffd-raw | uffd-raw-spin | uffd-raw-16 | uffd-raw-sigbus | touch | warmup\n"
		"  --size-mb N    size of the touched mapping in MiB (default 1024)\n"
		"  --reps R       repetitions (default 5)\n"
		"  --warmup-mb M  MiB touched and freed once before timing (default 3072, 0 = none)\n",
		prog);
}

static unsigned long parse_ulong(const char *opt, const char *s, unsigned long min,
				 unsigned long max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < min || v > max) {
		fprintf(stderr, "%s: %s expects an integer in [%lu, %lu], got '%s'\n",
			prog, opt, min, max, s);
		exit(2);
	}
	return v;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		die("clock_gettime(CLOCK_MONOTONIC)");
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static char *map_anon(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		char what[96];
		snprintf(what, sizeof(what), "mmap(%zu MiB, anonymous private)", len >> 20);
		die(what);
	}
	return p;
}

static void unmap(void *p, size_t len)
{
	if (munmap(p, len) != 0)
		die("munmap");
}

/* One write per 4 KiB page; volatile so the compiler keeps every store. */
static void touch_pages(char *p, size_t len)
{
	volatile char *v = p;

	for (size_t off = 0; off < len; off += PAGE_SZ)
		v[off] = 1;
}

static void check_touched(const char *p, size_t len)
{
	/* Cheap sanity check outside the timed region. */
	if (p[0] != 1 || p[len - PAGE_SZ] != 1 || p[len / 2 & ~(PAGE_SZ - 1)] != 1) {
		fprintf(stderr, "%s: touched pages do not read back as written\n", prog);
		exit(1);
	}
}

static void warmup(unsigned long mb)
{
	if (!mb)
		return;
	size_t len = (size_t)mb << 20;
	char *p = map_anon(len);
	touch_pages(p, len);
	unmap(p, len);
}

/* ---------------------------------------------------------------- uffd */

struct handler {
	int uffd;
	int stopfd;             /* eventfd: wakes the poll()ing handler to stop */
	enum mode mode;
	uintptr_t start, end;   /* registered range */
	char *zero;             /* WINDOW_16 zero pages, source of every COPY */
	atomic_int stop;
	unsigned long faults;
	int err;                /* errno of a failed call, 0 if none */
	const char *err_what;
};

static int open_uffd(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	int err1 = fd < 0 ? errno : 0;

	if (fd >= 0)
		return fd;
	/* Unprivileged with vm.unprivileged_userfaultfd = 0: /dev/userfaultfd
	 * if accessible, else user-mode-only faults (enough here: every fault
	 * comes from the main thread's user-space stores). */
	int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	int err2 = dev < 0 ? errno : 0;
	if (dev >= 0) {
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
		err2 = fd < 0 ? errno : 0;
		close(dev);
		if (fd >= 0)
			return fd;
	}
	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (fd >= 0)
		return fd;
	fprintf(stderr,
		"%s: cannot create a userfaultfd: userfaultfd(2): %s; "
		"/dev/userfaultfd: %s; userfaultfd(UFFD_USER_MODE_ONLY): %s "
		"(see vm.unprivileged_userfaultfd)\n",
		prog, strerror(err1), strerror(err2), strerror(errno));
	exit(1);
}

static void uffd_setup(struct handler *h, char *p, size_t len)
{
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)p, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};

	h->uffd = open_uffd();
	if (ioctl(h->uffd, UFFDIO_API, &api) != 0)
		die("ioctl(UFFDIO_API)");
	if (ioctl(h->uffd, UFFDIO_REGISTER, &reg) != 0)
		die("ioctl(UFFDIO_REGISTER, MISSING)");
	if (!(reg.ioctls & (1ULL << _UFFDIO_COPY))) {
		fprintf(stderr, "%s: UFFDIO_COPY not available on this range\n", prog);
		exit(1);
	}
	h->start = (uintptr_t)p;
	h->end = (uintptr_t)p + len;
	h->stopfd = eventfd(0, EFD_CLOEXEC);
	if (h->stopfd < 0)
		die("eventfd");
}

/* Fill [start, start+len) from the zero buffer.  Pages that are already
 * present (EEXIST) are skipped: cannot happen with one sequential toucher,
 * but a benchmark that hangs on it would be worse.  Returns 0 or errno. */
static int resolve(struct handler *h, uintptr_t start, size_t len, uintptr_t fault_page)
{
	while (len) {
		struct uffdio_copy c = {
			.dst = start, .src = (uintptr_t)h->zero, .len = len, .mode = 0,
		};
		if (ioctl(h->uffd, UFFDIO_COPY, &c) == 0)
			return 0;
		int err = errno;
		if (c.copy > 0) {               /* partial copy: continue after it */
			start += (uintptr_t)c.copy;
			len -= (size_t)c.copy;
			continue;
		}
		if (err == EAGAIN)              /* mapping changing: retry */
			continue;
		if (err == EEXIST) {            /* first page present: skip it */
			start += PAGE_SZ;
			len -= PAGE_SZ;
			continue;
		}
		h->err_what = "ioctl(UFFDIO_COPY)";
		return err;
	}
	/* Some page was skipped as present, so the faulting thread may not have
	 * been woken by a COPY: wake it explicitly. */
	struct uffdio_range r = { .start = fault_page, .len = PAGE_SZ };
	if (ioctl(h->uffd, UFFDIO_WAKE, &r) != 0) {
		h->err_what = "ioctl(UFFDIO_WAKE)";
		return errno;
	}
	return 0;
}

static int handle_msgs(struct handler *h, const struct uffd_msg *msgs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (msgs[i].event != UFFD_EVENT_PAGEFAULT) {
			fprintf(stderr, "%s: unexpected userfaultfd event %u\n", prog,
				msgs[i].event);
			h->err_what = "read(userfaultfd): unexpected event";
			return EPROTO;
		}
		uintptr_t page = (uintptr_t)msgs[i].arg.pagefault.address & ~(PAGE_SZ - 1);
		uintptr_t start = page, end = page + PAGE_SZ;
		if (h->mode == M_UFFD_16) {
			start = page & ~(WINDOW_16 * PAGE_SZ - 1);
			end = start + WINDOW_16 * PAGE_SZ;
			if (start < h->start)
				start = h->start;
			if (end > h->end)
				end = h->end;
		}
		int err = resolve(h, start, end - start, page);
		if (err)
			return err;
		h->faults++;
	}
	return 0;
}

static void *handler_main(void *arg)
{
	struct handler *h = arg;
	struct uffd_msg msgs[MSG_BATCH];
	struct pollfd pfd[2] = {
		{ .fd = h->uffd, .events = POLLIN },
		{ .fd = h->stopfd, .events = POLLIN },
	};

	while (!atomic_load_explicit(&h->stop, memory_order_relaxed)) {
		if (h->mode != M_UFFD_SPIN) {
			int r = poll(pfd, 2, -1);
			if (r < 0) {
				if (errno == EINTR)
					continue;
				h->err = errno;
				h->err_what = "poll(userfaultfd)";
				return NULL;
			}
			if (pfd[0].revents & (POLLERR | POLLHUP | POLLNVAL)) {
				h->err = EPIPE;
				h->err_what = "poll(userfaultfd): error/hang-up";
				return NULL;
			}
			if (!(pfd[0].revents & POLLIN))
				continue;       /* stop requested */
		}
		ssize_t n = read(h->uffd, msgs, sizeof(msgs));
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;       /* spin mode: nothing yet, read again */
			h->err = errno;
			h->err_what = "read(userfaultfd)";
			return NULL;
		}
		if (n == 0 || (size_t)n % sizeof(msgs[0])) {
			h->err = EPROTO;
			h->err_what = "read(userfaultfd): short message";
			return NULL;
		}
		int err = handle_msgs(h, msgs, (size_t)n / sizeof(msgs[0]));
		if (err) {
			h->err = err;
			return NULL;
		}
	}
	return NULL;
}

/* ------------------------------------------------------------- one rep */

/*
 * uffd-raw-sigbus: the limit for in-thread fault handling (usm run
 * --inline): UFFD_FEATURE_SIGBUS, and the faulting thread resolves its own
 * fault with UFFDIO_COPY of one zero page in its SIGBUS handler.
 */
static int sigbus_uffd = -1;
static const char *sigbus_zero;
static volatile unsigned long sigbus_faults;

static void on_sigbus(int sig, siginfo_t *si, void *ctx)
{
	struct uffdio_copy c = {
		.dst = (uintptr_t)si->si_addr & ~(PAGE_SZ - 1),
		.src = (uintptr_t)sigbus_zero, .len = PAGE_SZ, .mode = 0,
	};

	(void)sig;
	(void)ctx;
	if (ioctl(sigbus_uffd, UFFDIO_COPY, &c) != 0 && errno != EEXIST) {
		static const char msg[] = "fault_bench: UFFDIO_COPY in the SIGBUS handler failed\n";
		if (write(2, msg, sizeof(msg) - 1) < 0)
			_exit(1);
		_exit(1);
	}
	sigbus_faults++;
}

static double run_sigbus(char *p, size_t len, char *zero)
{
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_SIGBUS };
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)p, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	struct sigaction sa = { .sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO };
	uint64_t t0, t1;

	static char zpage[PAGE_SZ] __attribute__((aligned(4096)));

	sigbus_uffd = open_uffd();
	sigbus_zero = zero ? zero : zpage;
	sigbus_faults = 0;
	if (ioctl(sigbus_uffd, UFFDIO_API, &api) != 0)
		die("ioctl(UFFDIO_API, SIGBUS)");
	if (ioctl(sigbus_uffd, UFFDIO_REGISTER, &reg) != 0)
		die("ioctl(UFFDIO_REGISTER, MISSING)");
	if (sigaction(SIGBUS, &sa, NULL) != 0)
		die("sigaction(SIGBUS)");
	t0 = now_ns();
	touch_pages(p, len);
	t1 = now_ns();
	if (sigbus_faults != len / PAGE_SZ)
		fprintf(stderr, "# %s: %lu faults handled for %zu pages\n", prog, sigbus_faults,
			len / PAGE_SZ);
	check_touched(p, len);
	if (close(sigbus_uffd) != 0)
		die("close(userfaultfd)");
	unmap(p, len);
	return (double)(t1 - t0) / (double)(len / PAGE_SZ);
}

static double run_once(enum mode mode, size_t len, char *zero)
{
	size_t pages = len / PAGE_SZ;
	char *p = map_anon(len);
	uint64_t t0, t1;

	if (mode == M_TOUCH) {
		t0 = now_ns();
		touch_pages(p, len);
		t1 = now_ns();
		check_touched(p, len);
		unmap(p, len);
		return (double)(t1 - t0) / (double)pages;
	}

	/* The kernel 4K baseline must not get THP (nor mTHP) pages; for the
	 * uffd modes it keeps khugepaged off the range. */
	if (madvise(p, len, MADV_NOHUGEPAGE) != 0)
		die("madvise(MADV_NOHUGEPAGE)");

	if (mode == M_UFFD_SIGBUS)
		return run_sigbus(p, len, zero);
	if (mode == M_KERNEL) {
		t0 = now_ns();
		touch_pages(p, len);
		t1 = now_ns();
		check_touched(p, len);
		unmap(p, len);
		return (double)(t1 - t0) / (double)pages;
	}

	struct handler h = { .mode = mode, .zero = zero };
	pthread_t th;
	int err;

	atomic_init(&h.stop, 0);
	uffd_setup(&h, p, len);
	if ((err = pthread_create(&th, NULL, handler_main, &h)) != 0)
		die_err("pthread_create(handler)", err);

	t0 = now_ns();
	touch_pages(p, len);
	t1 = now_ns();

	atomic_store(&h.stop, 1);
	uint64_t one = 1;
	if (write(h.stopfd, &one, sizeof(one)) != (ssize_t)sizeof(one))
		die("write(eventfd)");
	if ((err = pthread_join(th, NULL)) != 0)
		die_err("pthread_join(handler)", err);
	if (h.err)
		die_err(h.err_what, h.err);

	/* One fault per page, or per 64 KiB-aligned window the mapping meets. */
	uintptr_t w = WINDOW_16 * PAGE_SZ;
	unsigned long expect = mode != M_UFFD_16 ? pages :
		(unsigned long)((((uintptr_t)p + len + w - 1) & ~(w - 1)) -
				((uintptr_t)p & ~(w - 1))) / w;
	if (h.faults != expect)
		fprintf(stderr, "# %s: %lu faults handled for %zu pages (expected %lu)\n",
			prog, h.faults, pages, expect);
	check_touched(p, len);
	if (close(h.uffd) != 0)
		die("close(userfaultfd)");
	if (close(h.stopfd) != 0)
		die("close(eventfd)");
	unmap(p, len);
	return (double)(t1 - t0) / (double)pages;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	unsigned long size_mb = 1024, reps = 5, warmup_mb = 3072;
	const char *mode_name = NULL;
	enum mode mode = M_KERNEL;

	if (argc > 0 && argv[0][0])
		prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		}
		if (!strcmp(a, "--size-mb") || !strcmp(a, "--reps") || !strcmp(a, "--warmup-mb")) {
			if (i + 1 >= argc) {
				fprintf(stderr, "%s: %s needs a value\n", prog, a);
				return 2;
			}
			const char *v = argv[++i];
			if (!strcmp(a, "--size-mb"))
				size_mb = parse_ulong(a, v, 1, 1UL << 22);
			else if (!strcmp(a, "--reps"))
				reps = parse_ulong(a, v, 1, 100000);
			else
				warmup_mb = parse_ulong(a, v, 0, 1UL << 22);
			continue;
		}
		if (a[0] == '-' || mode_name) {
			fprintf(stderr, "%s: unexpected argument '%s'\n", prog, a);
			usage(stderr);
			return 2;
		}
		mode_name = a;
	}
	if (!mode_name) {
		usage(stderr);
		return 2;
	}
	size_t k;
	for (k = 0; k < sizeof(modes) / sizeof(modes[0]); k++)
		if (!strcmp(modes[k].name, mode_name))
			break;
	if (k == sizeof(modes) / sizeof(modes[0])) {
		fprintf(stderr, "%s: unknown mode '%s'\n", prog, mode_name);
		usage(stderr);
		return 2;
	}
	mode = modes[k].m;

	/* Source of every UFFDIO_COPY: WINDOW_16 zeroed, populated pages. */
	char *zero = NULL;
	if (mode == M_UFFD || mode == M_UFFD_SPIN || mode == M_UFFD_16) {
		zero = map_anon(WINDOW_16 * PAGE_SZ);
		memset(zero, 0, WINDOW_16 * PAGE_SZ);
	}

	warmup(warmup_mb);
	if (mode == M_WARMUP) {
		printf("# %s: warmed up %lu MiB\n", prog, warmup_mb);
		return 0;
	}

	size_t len = (size_t)size_mb << 20;
	double *res = calloc(reps, sizeof(*res));
	if (!res)
		die("calloc");
	for (unsigned long r = 0; r < reps; r++) {
		res[r] = run_once(mode, len, zero);
		printf("result mode=%s size_mb=%lu rep=%lu ns_per_page=%.1f\n",
		       mode_name, size_mb, r, res[r]);
		fflush(stdout);
	}
	qsort(res, reps, sizeof(*res), cmp_double);
	double med = reps % 2 ? res[reps / 2] : (res[reps / 2 - 1] + res[reps / 2]) / 2;
	printf("# %s: mode=%s size=%lu MiB (%zu pages) reps=%lu warmup=%lu MiB: "
	       "median %.0f ns/page (min %.0f, max %.0f)\n",
	       prog, mode_name, size_mb, len / PAGE_SZ, reps, warmup_mb, med,
	       res[0], res[reps - 1]);
	if (zero)
		unmap(zero, WINDOW_16 * PAGE_SZ);
	free(res);
	return 0;
}
