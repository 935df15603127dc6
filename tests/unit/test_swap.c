/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for src/swap/: the swapdev line parser, the file device
 * (buffered and O_DIRECT), the compressed memory device (lz4 and zstd),
 * reference counts, full devices and priorities, space reuse, stats, and
 * the agent's read path (usm_swap_read_loc) on every device's fd.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

#include "swap/swapdev.h"

#define PS 4096u
#define NPAGES 3000u          /* pages per round-trip test */
#define BATCH 100u            /* not a multiple of the layer's 64 */

static char dir[128];
static char err[512];

/* ---- test data -------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

enum page_kind { ZERO, RANDOM, TEXTLIKE };

static enum page_kind kind_of(unsigned i)
{
	return i % 8 == 0 ? ZERO : i % 8 == 1 ? RANDOM : TEXTLIKE;
}

/*
 * Page i of a run: zero; random bytes (incompressible); or runs of random
 * length of bytes from a 16-letter alphabet, with i written at the start
 * so every such page differs (compressible, not trivially).
 */
static void fill_page(unsigned char *p, unsigned i, uint64_t seed)
{
	uint64_t s = seed * 0x9e3779b97f4a7c15ull + i + 1;

	switch (kind_of(i)) {
	case ZERO:
		memset(p, 0, PS);
		break;
	case RANDOM:
		for (unsigned k = 0; k < PS; k += 8) {
			uint64_t v = rng_next(&s);
			memcpy(p + k, &v, 8);
		}
		break;
	case TEXTLIKE:
		for (unsigned k = 0; k < PS;) {
			uint64_t v = rng_next(&s);
			unsigned run = 1 + (unsigned)(v % 24);
			unsigned char c = (unsigned char)('a' + (v >> 8) % 16);

			while (run-- && k < PS)
				p[k++] = c;
		}
		memcpy(p, &i, sizeof(i));
		break;
	}
}

/* n pages, page-aligned (offset by `skew` bytes when asked). */
struct pages {
	unsigned char *mem;
	unsigned char **p;
	unsigned n;
};

static void pages_make(struct pages *pg, unsigned n, uint64_t seed, size_t skew)
{
	pg->n = n;
	pg->mem = aligned_alloc(PS, (size_t)n * PS + PS);
	pg->p = calloc(n, sizeof(*pg->p));
	assert_non_null(pg->mem);
	assert_non_null(pg->p);
	for (unsigned i = 0; i < n; i++) {
		pg->p[i] = pg->mem + skew + (size_t)i * PS;
		if (seed)
			fill_page(pg->p[i], i, seed);
		else
			memset(pg->p[i], 0xa5, PS);
	}
}

static void pages_free(struct pages *pg)
{
	free(pg->mem);
	free(pg->p);
}

/* ---- devices ---------------------------------------------------------- */

static struct usm_swapdev_cfg file_cfg(const char *name, uint64_t size, int prio, bool direct)
{
	struct usm_swapdev_cfg c = { .kind = "file", .size = size, .priority = prio,
				     .direct = direct, .line = 1 };

	snprintf(c.path, sizeof(c.path), "%s/%s", dir, name);
	return c;
}

static struct usm_swapdev_cfg zmem_cfg(uint64_t size, int prio, uint8_t codec)
{
	return (struct usm_swapdev_cfg){ .kind = "zmem", .path = "-", .size = size,
					 .priority = prio, .codec = codec, .line = 2 };
}

static void init_ok(const struct usm_swapdev_cfg *c, unsigned n)
{
	int rc = usm_swap_init(c, n, PS, err, sizeof(err));

	if (rc)
		print_error("usm_swap_init: %s\n", err);
	assert_int_equal(rc, 0);
	assert_true(usm_swap_enabled());
	assert_int_equal(usm_swap_ndevs(), n);
}

static int setup_dir(void **state)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(dir, sizeof(dir), "%s/usm-swap-test.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd);
}

/* After every device test: the layer is closed and its files removed. */
static void finish(void)
{
	char cmd[300];

	assert_int_equal(usm_swap_slots_used(), 0);
	usm_swap_fini();
	assert_false(usm_swap_enabled());
	snprintf(cmd, sizeof(cmd), "rm -f '%s'/*", dir);
	assert_int_equal(system(cmd), 0);
}

static void store_all(struct pages *pg, struct usm_swap_loc *locs)
{
	for (unsigned i = 0; i < pg->n; i += BATCH) {
		unsigned m = pg->n - i < BATCH ? pg->n - i : BATCH;

		assert_int_equal(usm_swap_store((const void *const *)pg->p + i, m, locs + i), m);
	}
}

static void unref_all(const struct usm_swap_loc *locs, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		usm_swap_unref(&locs[i]);
}

/* Load every loc in batches (back to front) and compare every byte. */
static void load_and_compare(const struct pages *want, const struct usm_swap_loc *locs,
			     size_t skew)
{
	struct pages got;

	pages_make(&got, want->n, 0, skew);
	for (unsigned end = want->n; end > 0;) {
		unsigned m = end < BATCH ? end : BATCH;

		end -= m;
		assert_int_equal(usm_swap_load(locs + end, m, (void *const *)got.p + end), 0);
	}
	for (unsigned i = 0; i < want->n; i++)
		if (memcmp(got.p[i], want->p[i], PS)) {
			print_error("page %u differs after load\n", i);
			fail();
		}
	pages_free(&got);
}

/* What the agent does when the instance is gone: fd + loc only. */
static void read_loc_and_compare(const struct pages *want, const struct usm_swap_loc *locs)
{
	unsigned char page[PS];

	for (unsigned i = 0; i < want->n; i++) {
		int fd = usm_swap_dev_fd(locs[i].dev);

		assert_true(fd >= 0);
		memset(page, 0x5a, PS);
		assert_int_equal(usm_swap_read_loc(fd, &locs[i], page, PS), 0);
		if (memcmp(page, want->p[i], PS)) {
			print_error("page %u differs through usm_swap_read_loc\n", i);
			fail();
		}
	}
}

/* The codec and length each kind of page must get on this device. */
static void check_encoding(const struct pages *pg, const struct usm_swap_loc *locs,
			   uint8_t codec)
{
	for (unsigned i = 0; i < pg->n; i++) {
		assert_int_equal(locs[i].dev, 0);
		if (codec == USM_CODEC_NONE || kind_of(i) == RANDOM) {
			assert_int_equal(locs[i].codec, USM_CODEC_NONE);
			assert_int_equal(locs[i].len, PS);
		} else {
			assert_int_equal(locs[i].codec, codec);
			assert_true(locs[i].len > 0 && locs[i].len < PS * 7 / 8);
		}
	}
}

static void round_trip(const struct usm_swapdev_cfg *c, size_t skew)
{
	struct usm_swap_loc *locs = calloc(NPAGES, sizeof(*locs));
	struct usm_swap_stats st;
	struct pages pg;

	assert_non_null(locs);
	init_ok(c, 1);
	pages_make(&pg, NPAGES, 42, skew);
	store_all(&pg, locs);
	check_encoding(&pg, locs, c->codec);
	assert_int_equal(usm_swap_slots_used(), NPAGES);
	load_and_compare(&pg, locs, skew);
	read_loc_and_compare(&pg, locs);

	usm_swap_stats(0, &st);
	assert_int_equal(st.stored, NPAGES);
	assert_int_equal(st.loaded, NPAGES);
	assert_int_equal(st.slots_used, NPAGES);
	assert_int_equal(st.raw_bytes, (uint64_t)NPAGES * PS);
	assert_int_equal(st.store_errors + st.load_errors, 0);

	unref_all(locs, NPAGES);
	usm_swap_stats(-1, &st);
	assert_int_equal(st.freed, NPAGES);
	assert_int_equal(st.bytes_used, 0);
	assert_int_equal(st.stored_bytes, 0);
	pages_free(&pg);
	free(locs);
	finish();
}

/* ---- parser ----------------------------------------------------------- */

static int parse_line(const char *line, struct usm_swapdev_cfg *out)
{
	char buf[512], *words[16];
	int n = 0;

	snprintf(buf, sizeof(buf), "%s", line);
	for (char *w = strtok(buf, " "); w && n < 16; w = strtok(NULL, " "))
		words[n++] = w;
	memset(err, 0, sizeof(err));
	memset(out, 0, sizeof(*out));
	out->line = 7;
	return usm_swapdev_parse(words, n, out, err, sizeof(err));
}

static void test_parse_ok(void **state)
{
	struct usm_swapdev_cfg c;

	assert_int_equal(parse_line("file /var/swap.usm 4096", &c), 0);
	assert_string_equal(c.kind, "file");
	assert_string_equal(c.path, "/var/swap.usm");
	assert_int_equal(c.size, 4096);
	assert_int_equal(c.priority, 0);
	assert_int_equal(c.codec, USM_CODEC_NONE);
	assert_false(c.direct);
	assert_int_equal(c.line, 7);

	assert_int_equal(parse_line("file /dev/vdb 2G priority=-3 direct", &c), 0);
	assert_int_equal(c.size, 2ull << 30);
	assert_int_equal(c.priority, -3);
	assert_true(c.direct);

	assert_int_equal(parse_line("zmem - 512M", &c), 0);
	assert_string_equal(c.kind, "zmem");
	assert_int_equal(c.size, 512ull << 20);
	assert_int_equal(c.codec, USM_CODEC_LZ4);

	assert_int_equal(parse_line("zmem - 64k codec=zstd priority=10", &c), 0);
	assert_int_equal(c.size, 64 << 10);
	assert_int_equal(c.codec, USM_CODEC_ZSTD);
	assert_int_equal(c.priority, 10);

	assert_int_equal(parse_line("zmem - 17179869183G", &c), 0);   /* 2^64 - 2^30 */
	assert_int_equal(c.size, 17179869183ull << 30);
}

/* line must fail with a message containing every one of the words. */
static void expect_parse_error(const char *line, const char *w1, const char *w2)
{
	struct usm_swapdev_cfg c;

	assert_int_equal(parse_line(line, &c), -1);
	if (!strstr(err, w1) || (w2 && !strstr(err, w2))) {
		print_error("'%s': message '%s' lacks '%s'%s%s\n", line, err, w1,
			    w2 ? " or " : "", w2 ? w2 : "");
		fail();
	}
}

static void test_parse_errors(void **state)
{
	expect_parse_error("", "expected 'file <path> <size>'", NULL);
	expect_parse_error("swap /x 1M", "unknown device kind 'swap'", NULL);
	expect_parse_error("file", "missing <path>", NULL);
	expect_parse_error("zmem", "missing '-'", NULL);
	expect_parse_error("zmem /x 1M", "expected '-'", "'/x'");
	expect_parse_error("file /x", "missing <size>", "'/x'");
	expect_parse_error("file /x 0", "size '0'", "out of range");
	expect_parse_error("zmem - 0K", "size '0K'", "out of range");
	expect_parse_error("file /x 99999999999999999999", "size '99999999999999999999'",
			   "out of range");
	expect_parse_error("file /x 17179869184G", "size '17179869184G'", "out of range");
	expect_parse_error("file /x 12Q", "bad size '12Q'", NULL);
	expect_parse_error("file /x 1MB", "bad size '1MB'", NULL);
	expect_parse_error("file /x -1", "bad size '-1'", NULL);
	expect_parse_error("file /x M", "bad size 'M'", NULL);
	expect_parse_error("file /x 1M speed=fast", "unknown option 'speed=fast'", NULL);
	expect_parse_error("zmem - 1M compress", "unknown option 'compress'", NULL);
	expect_parse_error("file /x 1M priority=high", "bad priority 'priority=high'", NULL);
	expect_parse_error("file /x 1M priority=", "bad priority 'priority='", NULL);
	expect_parse_error("file /x 1M priority=40000", "bad priority 'priority=40000'", NULL);
	expect_parse_error("file /x 1M priority=1x", "bad priority 'priority=1x'", NULL);
	expect_parse_error("file /x 1M codec=lz4", "option 'codec=lz4'", "only to zmem");
	expect_parse_error("zmem - 1M codec=gzip", "unknown codec 'gzip'", NULL);
	expect_parse_error("zmem - 1M direct", "option 'direct'", "only to file");
}

static void test_parse_long_path(void **state)
{
	char line[400] = "file /";
	struct usm_swapdev_cfg c;

	memset(line + 6, 'p', 300);
	strcpy(line + 306, " 1M");
	expect_parse_error(line, "path '/ppp", "longer than 255 bytes");
	memset(line + 6, 'p', 300);
	line[6 + 254] = '\0';            /* "/" + 254 letters: 255 bytes, fits */
	strcat(line, " 1M");
	assert_int_equal(parse_line(line, &c), 0);
	assert_int_equal(strlen(c.path), 255);
}

/* ---- round trips ------------------------------------------------------- */

static void test_file_buffered(void **state)
{
	struct usm_swapdev_cfg c = file_cfg("buffered.swap", (uint64_t)NPAGES * PS, 0, false);

	round_trip(&c, 0);
}

static void test_file_created_private(void **state)
{
	struct usm_swapdev_cfg c = file_cfg("new.swap", 1 << 20, 0, false);
	struct stat st;

	init_ok(&c, 1);
	assert_int_equal(stat(c.path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_size, 1 << 20);
	finish();
}

static void test_file_direct_aligned(void **state)
{
	struct usm_swapdev_cfg c = file_cfg("direct.swap", (uint64_t)NPAGES * PS, 0, true);

	round_trip(&c, 0);
}

/* O_DIRECT with buffers 8 bytes off a page: through the bounce buffer. */
static void test_file_direct_unaligned(void **state)
{
	struct usm_swapdev_cfg c = file_cfg("direct-u.swap", (uint64_t)NPAGES * PS, 0, true);

	round_trip(&c, 8);
}

static void test_zmem_lz4(void **state)
{
	struct usm_swapdev_cfg c = zmem_cfg((uint64_t)NPAGES * PS, 0, USM_CODEC_LZ4);

	round_trip(&c, 0);
}

static void test_zmem_zstd(void **state)
{
	struct usm_swapdev_cfg c = zmem_cfg((uint64_t)NPAGES * PS, 0, USM_CODEC_ZSTD);

	round_trip(&c, 0);
}

/*
 * PRIVATE (the in-process host): no fd to share, and a fork child keeps a
 * copy-on-write snapshot of the device, whatever the parent stores over
 * it afterwards.
 */
static void test_zmem_private_fork(void **state)
{
	struct usm_swapdev_cfg c = zmem_cfg((uint64_t)NPAGES * PS, 0, USM_CODEC_LZ4);
	struct usm_swap_loc *locs = calloc(NPAGES, sizeof(*locs));
	struct usm_swap_loc *again = calloc(NPAGES, sizeof(*again));
	struct pages pg, other;
	int status = 0;
	pid_t child;

	assert_non_null(locs);
	assert_non_null(again);
	assert_int_equal(usm_swap_init_mode(&c, 1, PS, USM_SWAP_PRIVATE, err, sizeof(err)), 0);
	assert_int_equal(usm_swap_dev_fd(0), -1);
	pages_make(&pg, NPAGES, 42, 0);
	pages_make(&other, NPAGES, 7, 0);
	store_all(&pg, locs);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {                /* no cmocka asserts in here */
		static unsigned char page[PS];
		usleep(100000);              /* let the parent overwrite first */
		for (unsigned i = 0; i < NPAGES; i++) {
			void *b[1] = { page };
			if (usm_swap_load(&locs[i], 1, b) || memcmp(page, pg.p[i], PS))
				_exit(1);
		}
		_exit(0);
	}
	/* The parent frees every slot and fills the space with other pages:
	 * in its own copy only. */
	unref_all(locs, NPAGES);
	store_all(&other, again);
	load_and_compare(&other, again, 0);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	unref_all(again, NPAGES);
	pages_free(&pg);
	pages_free(&other);
	free(locs);
	free(again);
	finish();
}

static void test_file_private_refused(void **state)
{
	struct usm_swapdev_cfg c = file_cfg("private.swap", 16 * PS, 0, false);

	assert_int_equal(usm_swap_init_mode(&c, 1, PS, USM_SWAP_PRIVATE, err, sizeof(err)),
			 -ENOTSUP);
	assert_non_null(strstr(err, "not available in the in-process host"));
	assert_false(usm_swap_enabled());
}

/* ---- references -------------------------------------------------------- */

static void test_refcount(void **state)
{
	struct usm_swapdev_cfg c = file_cfg("ref.swap", 16 * PS, 0, false);
	struct usm_swap_loc loc, again;
	struct pages pg, got;

	init_ok(&c, 1);
	pages_make(&pg, 1, 7, 0);
	pages_make(&got, 1, 0, 0);
	assert_int_equal(usm_swap_store((const void *const *)pg.p, 1, &loc), 1);
	usm_swap_ref(&loc);
	usm_swap_ref(&loc);
	usm_swap_unref(&loc);
	usm_swap_unref(&loc);
	assert_int_equal(usm_swap_slots_used(), 1);
	assert_int_equal(usm_swap_load(&loc, 1, (void *const *)got.p), 0);
	assert_memory_equal(got.p[0], pg.p[0], PS);

	usm_swap_unref(&loc);
	assert_int_equal(usm_swap_slots_used(), 0);
	assert_int_equal(usm_swap_load(&loc, 1, (void *const *)got.p), -EINVAL);
	usm_swap_unref(&loc);            /* a fourth one is ignored */
	assert_int_equal(usm_swap_slots_used(), 0);

	/* the freed slot is the next one handed out */
	assert_int_equal(usm_swap_store((const void *const *)pg.p, 1, &again), 1);
	assert_int_equal(again.slot, loc.slot);
	assert_int_equal(again.off, loc.off);
	usm_swap_unref(&again);
	pages_free(&pg);
	pages_free(&got);
	finish();
}

/* ---- full devices, priorities ------------------------------------------ */

static void test_full_and_fallthrough(void **state)
{
	struct usm_swapdev_cfg c[2] = {
		zmem_cfg(16 * PS, 0, USM_CODEC_LZ4),                 /* dev 0, low */
		file_cfg("prio.swap", 10 * PS, 5, false),            /* dev 1, high */
	};
	struct usm_swap_loc locs[30];
	struct usm_swap_stats st;
	struct pages pg;

	init_ok(c, 2);
	pages_make(&pg, 30, 9, 0);
	for (unsigned i = 0; i < 30; i++)          /* all incompressible */
		fill_page(pg.p[i], i * 8 + 1, 9);

	assert_int_equal(usm_swap_store((const void *const *)pg.p, 30, locs), 26);
	for (unsigned i = 0; i < 10; i++)
		assert_int_equal(locs[i].dev, 1);
	for (unsigned i = 10; i < 26; i++) {
		assert_int_equal(locs[i].dev, 0);
		assert_int_equal(locs[i].codec, USM_CODEC_NONE);
	}
	for (unsigned i = 26; i < 30; i++)
		assert_int_equal(locs[i].len, 0);

	usm_swap_stats(1, &st);
	assert_int_equal(st.slots_used, 10);
	assert_int_equal(st.slots_total, 10);
	usm_swap_stats(0, &st);
	assert_int_equal(st.bytes_used, 16 * PS);
	assert_int_equal(st.bytes_total, 16 * PS);
	assert_int_equal(usm_swap_slots_used(), 26);

	/* both full: nothing more goes in */
	assert_int_equal(usm_swap_store((const void *const *)pg.p + 26, 4, locs + 26), 0);

	pg.n = 26;
	load_and_compare(&pg, locs, 0);
	read_loc_and_compare(&pg, locs);
	unref_all(locs, 26);
	unref_all(locs + 26, 4);         /* len 0: nothing to drop */
	pages_free(&pg);
	finish();
}

static void test_round_robin(void **state)
{
	struct usm_swapdev_cfg c[3] = {
		file_cfg("rr-a.swap", 64 * PS, 1, false),
		file_cfg("rr-low.swap", 64 * PS, 0, false),
		file_cfg("rr-b.swap", 64 * PS, 1, false),
	};
	struct usm_swap_loc locs[8];
	struct usm_swap_stats st;
	struct pages pg;

	init_ok(c, 3);
	pages_make(&pg, 8, 11, 0);
	for (unsigned i = 0; i < 8; i++)
		assert_int_equal(usm_swap_store((const void *const *)pg.p + i, 1, locs + i), 1);
	for (unsigned i = 0; i < 8; i++) {
		assert_true(locs[i].dev == 0 || locs[i].dev == 2);
		if (i)
			assert_int_not_equal(locs[i].dev, locs[i - 1].dev);
	}
	usm_swap_stats(1, &st);
	assert_int_equal(st.stored, 0);
	load_and_compare(&pg, locs, 0);
	unref_all(locs, 8);
	pages_free(&pg);
	finish();
}

/* ---- zmem space --------------------------------------------------------- */

/* Drop the references of locs[0..n) in a shuffled order, except every
 * keep_every-th one (0: none kept). */
static void unref_shuffled(struct usm_swap_loc *locs, unsigned n, unsigned keep_every,
			   uint64_t seed)
{
	unsigned order[512];

	assert_true(n <= 512);
	for (unsigned i = 0; i < n; i++)
		order[i] = i;
	for (unsigned i = n; i > 1; i--) {
		unsigned j = (unsigned)(rng_next(&seed) % i), t = order[i - 1];

		order[i - 1] = order[j];
		order[j] = t;
	}
	for (unsigned i = 0; i < n; i++)
		if (!keep_every || order[i] % keep_every)
			usm_swap_unref(&locs[order[i]]);
}

/*
 * A 64 KiB device through 200 store/free cycles alternating 14 raw pages
 * (56 KiB) and 300 small compressed ones (128-byte chunks), freed in a
 * shuffled order, with a few raw pages living on through the next cycle:
 * without reuse the second cycle would fail, and without merging freed
 * chunks the raw pages would not find 4 KiB pieces after a small cycle.
 */
static void test_zmem_reuse(void **state)
{
	struct usm_swapdev_cfg c = zmem_cfg(16 * PS, 0, USM_CODEC_LZ4);
	struct usm_swap_loc raw_locs[16], small_locs[300];
	struct usm_swap_stats st;
	struct pages raw, small;

	init_ok(&c, 1);
	pages_make(&raw, 14, 0, 0);
	pages_make(&small, 300, 0, 0);
	for (unsigned round = 0; round < 200; round += 2) {
		for (unsigned i = 0; i < raw.n; i++)
			fill_page(raw.p[i], i * 8 + 1, round + 1);
		assert_int_equal(usm_swap_store((const void *const *)raw.p, raw.n, raw_locs),
				 raw.n);
		load_and_compare(&raw, raw_locs, 0);
		unref_shuffled(raw_locs, raw.n, 7, round + 1);      /* keeps 0 and 7 */

		for (unsigned i = 0; i < small.n; i++) {
			fill_page(small.p[i], i * 8 + 2, round + 2);
			memset(small.p[i] + 64, 'z', PS - 64);
		}
		assert_int_equal(usm_swap_store((const void *const *)small.p, small.n,
						small_locs), small.n);
		for (unsigned i = 0; i < small.n; i++)
			assert_int_equal(small_locs[i].len <= 128, true);
		load_and_compare(&small, small_locs, 0);
		unref_shuffled(small_locs, small.n, 0, round + 2);
		usm_swap_unref(&raw_locs[0]);
		usm_swap_unref(&raw_locs[7]);
		usm_swap_stats(0, &st);
		assert_int_equal(st.bytes_used, 0);
	}
	/* everything merged back: the whole device takes 16 raw pages */
	pages_free(&raw);
	pages_make(&raw, 16, 3, 0);
	for (unsigned i = 0; i < raw.n; i++)
		fill_page(raw.p[i], i * 8 + 1, 3);
	assert_int_equal(usm_swap_store((const void *const *)raw.p, raw.n, raw_locs), 16);
	load_and_compare(&raw, raw_locs, 0);
	unref_shuffled(raw_locs, raw.n, 0, 3);
	pages_free(&raw);
	pages_free(&small);
	finish();
}

/* ---- stats -------------------------------------------------------------- */

static void test_stats_ratio(void **state)
{
	struct usm_swapdev_cfg c[2] = {
		zmem_cfg(1 << 20, 1, USM_CODEC_LZ4),
		zmem_cfg(1 << 20, 0, USM_CODEC_ZSTD),
	};
	struct usm_swap_loc locs[128];
	struct usm_swap_stats st, sum;
	uint64_t used = 0, stored_bytes = 0;
	struct pages pg;

	init_ok(c, 2);
	pages_make(&pg, 128, 5, 0);
	for (unsigned i = 0; i < 128; i++)          /* all text-like: compressible */
		fill_page(pg.p[i], i * 8 + 3, 5);
	assert_int_equal(usm_swap_store((const void *const *)pg.p, 128, locs), 128);
	for (unsigned i = 0; i < 128; i++) {
		assert_int_equal(locs[i].dev, 0);
		stored_bytes += locs[i].len;
		used += (locs[i].len + 63u) / 64 * 64;
	}
	usm_swap_stats(0, &st);
	assert_int_equal(st.stored, 128);
	assert_int_equal(st.slots_used, 128);
	assert_int_equal(st.raw_bytes, 128 * PS);
	assert_int_equal(st.stored_bytes, stored_bytes);
	assert_int_equal(st.bytes_used, used);
	assert_int_equal(st.bytes_total, 1 << 20);
	assert_true(st.raw_bytes > 2 * st.stored_bytes);    /* ratio > 2 */
	print_message("lz4 ratio on text-like pages: %.2f\n",
		      (double)st.raw_bytes / (double)st.stored_bytes);

	load_and_compare(&pg, locs, 0);
	usm_swap_stats(-1, &sum);
	assert_int_equal(sum.loaded, 128);
	assert_int_equal(sum.stored, 128);
	assert_int_equal(sum.bytes_total, 2 << 20);
	unref_all(locs, 64);
	usm_swap_stats(-1, &sum);
	assert_int_equal(sum.freed, 64);
	assert_int_equal(sum.slots_used, 64);
	unref_all(locs + 64, 64);
	pages_free(&pg);
	finish();
}

/* ---- threads ------------------------------------------------------------ */

#define THREADS 4
#define T_ROUNDS 30
#define T_PAGES 50

/* One thread's life: store, take a second reference, load and compare,
 * drop both references; all while the others do the same. */
static void *thread_body(void *arg)
{
	unsigned t = (unsigned)(uintptr_t)arg;
	struct usm_swap_loc locs[T_PAGES];
	unsigned char *got = aligned_alloc(PS, PS);
	struct pages pg;
	uintptr_t bad = 0;

	pages_make(&pg, T_PAGES, 0, 0);
	for (unsigned r = 0; r < T_ROUNDS && !bad; r++) {
		for (unsigned i = 0; i < T_PAGES; i++)
			fill_page(pg.p[i], i, 1000 * t + r + 1);
		if (usm_swap_store((const void *const *)pg.p, T_PAGES, locs) != T_PAGES)
			bad = 1;
		for (unsigned i = 0; i < T_PAGES && !bad; i++) {
			usm_swap_ref(&locs[i]);
			if (usm_swap_load(&locs[i], 1, (void *const *)&got) ||
			    memcmp(got, pg.p[i], PS))
				bad = 2;
		}
		for (unsigned i = 0; i < T_PAGES; i++) {
			usm_swap_unref(&locs[i]);
			usm_swap_unref(&locs[i]);
		}
	}
	pages_free(&pg);
	free(got);
	return (void *)bad;
}

static void test_threads(void **state)
{
	struct usm_swapdev_cfg c[2] = {
		file_cfg("threads.swap", THREADS * T_PAGES * PS, 0, true),
		zmem_cfg(THREADS * T_PAGES * PS, 0, USM_CODEC_ZSTD),
	};
	pthread_t th[THREADS];
	struct usm_swap_stats st;

	init_ok(c, 2);
	for (unsigned t = 0; t < THREADS; t++)
		assert_int_equal(pthread_create(&th[t], NULL, thread_body, (void *)(uintptr_t)t), 0);
	for (unsigned t = 0; t < THREADS; t++) {
		void *bad;

		assert_int_equal(pthread_join(th[t], &bad), 0);
		assert_int_equal((uintptr_t)bad, 0);
	}
	usm_swap_stats(-1, &st);
	assert_int_equal(st.stored, THREADS * T_ROUNDS * T_PAGES);
	assert_int_equal(st.freed, THREADS * T_ROUNDS * T_PAGES);
	usm_swap_stats(0, &st);             /* round robin used both devices */
	assert_true(st.stored > 0);
	usm_swap_stats(1, &st);
	assert_true(st.stored > 0);
	finish();
}

/* ---- errors ------------------------------------------------------------- */

static void test_init_errors(void **state)
{
	struct usm_swapdev_cfg c = file_cfg("nodir/x.swap", 1 << 20, 0, false);
	struct usm_swapdev_cfg tiny = zmem_cfg(100, 0, USM_CODEC_LZ4);
	struct usm_swapdev_cfg ok = zmem_cfg(1 << 20, 0, USM_CODEC_LZ4);
	struct usm_swapdev_cfg two[2] = { ok, c };

	assert_int_equal(usm_swap_init(&c, 1, PS, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "nodir/x.swap"));
	assert_non_null(strstr(err, "No such file"));
	assert_false(usm_swap_enabled());

	assert_int_equal(usm_swap_init(&tiny, 1, PS, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "less than a page"));

	assert_int_equal(usm_swap_init(&ok, 1, 3000, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "page size 3000"));

	/* the second device fails: the first is closed again */
	assert_int_equal(usm_swap_init(two, 2, PS, err, sizeof(err)), -ENOENT);
	assert_false(usm_swap_enabled());
	assert_int_equal(usm_swap_ndevs(), 0);

	init_ok(&ok, 1);
	assert_int_equal(usm_swap_init(&ok, 1, PS, err, sizeof(err)), -EBUSY);
	finish();
}

static void test_read_loc_rejects(void **state)
{
	unsigned char page[PS];
	struct usm_swap_loc none = { 0 };
	struct usm_swap_loc raw_short = { .len = 100, .codec = USM_CODEC_NONE };
	struct usm_swap_loc bad_codec = { .len = 100, .codec = 9 };
	struct usm_swap_loc past_end = { .off = 1 << 20, .len = PS, .codec = USM_CODEC_NONE };
	struct usm_swap_loc garbage = { .off = 0, .len = 200, .codec = USM_CODEC_LZ4 };
	struct usm_swap_loc garbage_zstd = { .off = 0, .len = 200, .codec = USM_CODEC_ZSTD };
	char path[300];
	int fd;

	snprintf(path, sizeof(path), "%s/junk", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	memset(page, 0xff, PS);
	assert_int_equal(write(fd, page, PS), PS);

	assert_int_equal(usm_swap_read_loc(fd, &none, page, PS), -ENODATA);
	assert_int_equal(usm_swap_read_loc(fd, &raw_short, page, PS), -EINVAL);
	assert_int_equal(usm_swap_read_loc(fd, &bad_codec, page, PS), -EINVAL);
	assert_int_equal(usm_swap_read_loc(fd, &past_end, page, PS), -EIO);
	assert_int_equal(usm_swap_read_loc(fd, &garbage, page, PS), -EIO);
	assert_int_equal(usm_swap_read_loc(fd, &garbage_zstd, page, PS), -EIO);
	assert_int_equal(usm_swap_read_loc(-1, &garbage, page, PS), -EBADF);
	close(fd);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_ok),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_parse_long_path),
		cmocka_unit_test(test_file_buffered),
		cmocka_unit_test(test_file_created_private),
		cmocka_unit_test(test_file_direct_aligned),
		cmocka_unit_test(test_file_direct_unaligned),
		cmocka_unit_test(test_zmem_lz4),
		cmocka_unit_test(test_zmem_zstd),
		cmocka_unit_test(test_zmem_private_fork),
		cmocka_unit_test(test_file_private_refused),
		cmocka_unit_test(test_refcount),
		cmocka_unit_test(test_full_and_fallthrough),
		cmocka_unit_test(test_round_robin),
		cmocka_unit_test(test_zmem_reuse),
		cmocka_unit_test(test_stats_ratio),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_init_errors),
		cmocka_unit_test(test_read_loc_rejects),
	};

	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
