/*
 * swapwork: memory-bound workloads over a working set larger than the
 * memory limit, for the eviction benchmark (bench/swap_bench.sh).
 *
 * Plain C11, no USM headers: it runs alone under a kernel memory limit
 * (cgroup + swap) and, unmodified, under `usm run`.  It never madvises.
 *
 * Usage: swapwork WORKLOAD [--ws-mb N] [--ops N] [--seconds S] [--threads T]
 *                 [--seed S] [--value-size B] [--theta X] [--get-pct P]
 *                 [--corrupt[=flip|stale]]
 *
 * Workloads (the working set is N MiB of anonymous private memory):
 *   gups   random 8-byte read-modify-write updates (HPCC RandomAccess):
 *          word ^= r for a xorshift value r that also picks the word.
 *          Thread t updates only words w with w % T == t (no lost updates
 *          between threads, all words stay reachable).  One op = one update.
 *   scan   sequential sweeps: per page, read one 8-byte word every 64 bytes
 *          (summed) and add 1 to the page's word 1.  Thread t sweeps its own
 *          contiguous slice, wrapping around.  One op = one page.
 *   zipf   key-value mix over N / B values of B bytes: keys drawn from a
 *          Zipfian distribution (YCSB generator, theta 0.99, hot keys
 *          scattered over the array); 90% GET (read the value and check its
 *          checksum), 10% SET (write a new version of the value).  Thread t
 *          owns the keys k with k % T == t.  One op = one GET or SET.
 *
 * Phases: populate (every page written with its known pattern), then the
 * timed phase (until --ops operations in total or --seconds have passed,
 * whichever comes first; default --seconds 10), then verification.
 *
 * Verification, exact (exit status 1 on any mismatch):
 *   gups   the updates are replayed (XOR is its own inverse), which must
 *          give back every page's initial pattern;
 *   scan   word 1 of every page equals its pattern plus the number of times
 *          its thread visited it, every other word its pattern;
 *   zipf   each value holds its key, a version, contents derived from
 *          (key, version) and their sum; the versions add up to the number
 *          of SETs; every GET of the timed phase found a consistent value.
 * --corrupt damages the working set after the timed phase, to test that
 * verification catches it (the run must then exit 1): `flip` flips one bit
 * in the middle, `stale` gives page 0 (gups, scan) or the hottest value
 * (zipf) back its populated content, as if the writes since an eviction
 * had been lost.
 *
 * Latency: one op in 64 per thread is timed with clock_gettime into a
 * log-linear histogram (~6% resolution); p50/p99/max are reported.
 *
 * Output: one line
 *   result workload=<w> ws_mb=<n> threads=<t> ops=<n> seconds=<s>
 *          ops_per_s=<x> majflt=<n> minflt=<n> faults=<n> lat_samples=<n>
 *          lat_p50_ns=<n> lat_p99_ns=<n> lat_max_ns=<n> populate_s=<s>
 *          verify_s=<s> [gets=<n> sets=<n>] checksum=<hex> verify=ok|FAILED
 *          errors=<n>
 * (majflt/minflt: getrusage(RUSAGE_SELF) deltas over the timed phase, all
 * threads; checksum: a digest of the values read in the timed phase).
 * Errors go to stderr; exit status 1 on a failure, 2 on bad usage.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define PAGE_SZ        4096UL
#define WORDS_PER_PAGE (PAGE_SZ / 8)
#define MAX_THR        64
#define SAMPLE_MASK    63           /* time one op in 64 */
#define CHECK_EVERY    256          /* ops between two deadline checks */
#define HIST_SUB_BITS  4
#define HIST_BUCKETS   (64 << HIST_SUB_BITS)
#define MAX_REPORTED   5            /* mismatches printed in full */
#define MAGIC          0x73776170776f726bULL   /* "swapwork" */

enum workload { W_GUPS, W_SCAN, W_ZIPF };
enum corrupt { CORRUPT_NONE, CORRUPT_FLIP, CORRUPT_STALE };
static const char *const workload_names[] = { "gups", "scan", "zipf" };

static const char *prog = "swapwork";

struct opts {
	enum workload wl;
	unsigned long ws_mb;
	unsigned long long ops;     /* 0: no limit */
	double seconds;             /* 0: no limit */
	unsigned threads;
	uint64_t seed;
	unsigned long value_size;
	double theta;
	unsigned get_pct;
	enum corrupt corrupt;
};

/* ------------------------------------------------------------ utilities */

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

static uint64_t now_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		die("clock_gettime(CLOCK_MONOTONIC)");
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* splitmix64's finalizer: the pattern generator (a bijection on 64 bits). */
static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* xorshift64*: the operations' random numbers (state never 0). */
static inline uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

static uint64_t thread_seed(uint64_t seed, unsigned tid)
{
	return mix64(seed * 0x9e3779b97f4a7c15ULL + tid + 1) | 1;
}

/* Initial content of word w of page p (gups, scan). */
static inline uint64_t page_pattern(uint64_t p, uint64_t w)
{
	return mix64((p * WORDS_PER_PAGE + w) ^ MAGIC);
}

/* ------------------------------------------------------------ histogram */

struct hist {
	uint64_t n[HIST_BUCKETS];
	uint64_t count, max;
};

/* Log-linear bucket: exact below 16 ns, then 16 buckets per power of 2. */
static unsigned hist_bucket(uint64_t v)
{
	if (v < (1u << HIST_SUB_BITS))
		return (unsigned)v;
	unsigned e = 63u - (unsigned)__builtin_clzll(v);
	unsigned sub = (unsigned)(v >> (e - HIST_SUB_BITS)) & ((1u << HIST_SUB_BITS) - 1);
	return ((e - HIST_SUB_BITS + 1) << HIST_SUB_BITS) + sub;
}

/* Upper bound of a bucket's values (what a percentile reports). */
static uint64_t hist_upper(unsigned b)
{
	if (b < (1u << HIST_SUB_BITS))
		return b;
	unsigned e = (b >> HIST_SUB_BITS) + HIST_SUB_BITS - 1;
	uint64_t sub = b & ((1u << HIST_SUB_BITS) - 1);
	return (((1ULL << HIST_SUB_BITS) + sub + 1) << (e - HIST_SUB_BITS)) - 1;
}

static void hist_add(struct hist *h, uint64_t v)
{
	h->n[hist_bucket(v)]++;
	h->count++;
	if (v > h->max)
		h->max = v;
}

static void hist_merge(struct hist *into, const struct hist *h)
{
	for (unsigned b = 0; b < HIST_BUCKETS; b++)
		into->n[b] += h->n[b];
	into->count += h->count;
	if (h->max > into->max)
		into->max = h->max;
}

static uint64_t hist_percentile(const struct hist *h, double pct)
{
	if (!h->count)
		return 0;
	uint64_t rank = (uint64_t)ceil(pct / 100.0 * (double)h->count), seen = 0;
	for (unsigned b = 0; b < HIST_BUCKETS; b++) {
		seen += h->n[b];
		if (seen >= rank)
			return hist_upper(b) < h->max ? hist_upper(b) : h->max;
	}
	return h->max;
}

/* ------------------------------------------------------- Zipf (YCSB) */

/* The YCSB ZipfianGenerator over ranks [0, n): rank 0 is the hottest. */
struct zipf {
	uint64_t n;
	double theta, alpha, zetan, eta, half_pow_theta;
};

static double zeta(uint64_t n, double theta)
{
	double sum = 0;

	for (uint64_t i = 1; i <= n; i++)
		sum += 1.0 / pow((double)i, theta);
	return sum;
}

static void zipf_init(struct zipf *z, uint64_t n, double theta)
{
	double zeta2 = zeta(2, theta);

	z->n = n;
	z->theta = theta;
	z->alpha = 1.0 / (1.0 - theta);
	z->zetan = zeta(n, theta);
	z->eta = (1.0 - pow(2.0 / (double)n, 1.0 - theta)) / (1.0 - zeta2 / z->zetan);
	z->half_pow_theta = 1.0 + pow(0.5, theta);
}

static uint64_t zipf_next(const struct zipf *z, uint64_t *rng)
{
	double u = (double)(rng_next(rng) >> 11) * 0x1.0p-53;
	double uz = u * z->zetan;

	if (uz < 1.0)
		return 0;
	if (uz < z->half_pow_theta)
		return 1;
	uint64_t r = (uint64_t)((double)z->n * pow(z->eta * u - z->eta + 1.0, z->alpha));
	return r < z->n ? r : z->n - 1;
}

static uint64_t gcd(uint64_t a, uint64_t b)
{
	while (b) {
		uint64_t t = a % b;
		a = b;
		b = t;
	}
	return a;
}

/* A multiplier coprime to n: rank * mult % n scatters the hot ranks over
 * the whole array (like YCSB's hashed keys) and is a bijection. */
static uint64_t scatter_multiplier(uint64_t n)
{
	uint64_t m = (0x9e3779b97f4a7c15ULL % n) | 1;

	while (n > 1 && gcd(m, n) != 1)
		m += 2;
	return m % n ? m % n : 1;
}

/* ------------------------------------------------------------ the run */

struct run;

struct worker {
	pthread_t th;
	unsigned tid;
	struct run *run;
	uint64_t ops_limit;         /* this thread's share of --ops (0: none) */
	uint64_t ops_done;
	uint64_t sets, gets, get_errors;
	uint64_t checksum;
	struct hist hist;
};

struct run {
	const struct opts *o;
	uint64_t *mem;              /* the working set */
	size_t bytes, pages, words;
	/* zipf */
	size_t value_words, nkeys, keys_per_thread;
	uint64_t scatter;
	struct zipf zipf;
	/* timing */
	pthread_barrier_t start;
	uint64_t deadline_ns;       /* 0: none */
	struct worker w[MAX_THR];
};

/* The ops loop shared by the workloads: run op() until the thread's
 * operation share or the deadline is reached, timing one op in 64. */
#define OPS_LOOP(w, op)                                                      \
	do {                                                                 \
		const uint64_t lim_ = (w)->ops_limit;                        \
		const uint64_t dl_ = (w)->run->deadline_ns;                  \
		uint64_t n_ = 0;                                             \
		for (;;) {                                                   \
			if (lim_ && n_ >= lim_)                              \
				break;                                       \
			if (dl_ && n_ % CHECK_EVERY == 0 && now_ns() >= dl_) \
				break;                                       \
			if ((n_ & SAMPLE_MASK) == 0) {                       \
				uint64_t t0_ = now_ns();                     \
				op;                                          \
				hist_add(&(w)->hist, now_ns() - t0_);        \
			} else {                                             \
				op;                                          \
			}                                                    \
			n_++;                                                \
		}                                                            \
		(w)->ops_done = n_;                                          \
	} while (0)

/* ---- gups */

static inline uint64_t gups_word(const struct run *r, unsigned tid, uint64_t rnd)
{
	uint64_t per_thread = r->words / r->o->threads;

	return (rnd >> 7) % per_thread * r->o->threads + tid;
}

static inline void gups_update(struct run *r, struct worker *w, uint64_t *rng)
{
	uint64_t rnd = rng_next(rng);
	uint64_t *p = &r->mem[gups_word(r, w->tid, rnd)];

	w->checksum ^= *p;
	*p ^= rnd;
}

static void gups_ops(struct worker *w)
{
	struct run *r = w->run;
	uint64_t rng = thread_seed(r->o->seed, w->tid);

	OPS_LOOP(w, gups_update(r, w, &rng));
}

/* Apply the same updates again: XOR undoes them. */
static void gups_undo(struct worker *w)
{
	struct run *r = w->run;
	uint64_t rng = thread_seed(r->o->seed, w->tid);

	for (uint64_t i = 0; i < w->ops_done; i++) {
		uint64_t rnd = rng_next(&rng);
		r->mem[gups_word(r, w->tid, rnd)] ^= rnd;
	}
}

/* ---- scan */

static void scan_slice(const struct run *r, unsigned tid, size_t *first, size_t *len)
{
	size_t per = r->pages / r->o->threads;

	*first = per * tid;
	*len = tid + 1 == r->o->threads ? r->pages - *first : per;
}

static inline void scan_page(struct run *r, struct worker *w, size_t page)
{
	uint64_t *p = &r->mem[page * WORDS_PER_PAGE];
	uint64_t sum = 0;

	for (size_t i = 0; i < WORDS_PER_PAGE; i += 8)
		sum += *(volatile uint64_t *)&p[i];
	w->checksum += sum;
	p[1] += 1;
}

static void scan_ops(struct worker *w)
{
	struct run *r = w->run;
	size_t first, len, i = 0;

	scan_slice(r, w->tid, &first, &len);
	OPS_LOOP(w, (scan_page(r, w, first + i), i = i + 1 == len ? 0 : i + 1));
}

/* How often page `page` was visited by its thread. */
static uint64_t scan_visits(const struct run *r, size_t page)
{
	unsigned tid = (unsigned)(page / (r->pages / r->o->threads));
	if (tid >= r->o->threads)
		tid = r->o->threads - 1;
	size_t first, len;
	scan_slice(r, tid, &first, &len);
	uint64_t done = r->w[tid].ops_done;
	return done / len + (page - first < done % len);
}

/* ---- zipf: value layout [key, version, sum of the rest, contents...] */

static inline uint64_t value_fill(uint64_t key, uint64_t version, size_t j)
{
	return mix64(mix64(key ^ MAGIC) + version * 0x9e3779b97f4a7c15ULL + j);
}

static void value_write(uint64_t *v, size_t nwords, uint64_t key, uint64_t version)
{
	uint64_t sum = 0;

	for (size_t j = 3; j < nwords; j++) {
		v[j] = value_fill(key, version, j);
		sum += v[j];
	}
	v[0] = key;
	v[1] = version;
	v[2] = sum;
}

/* A value is consistent when it holds its key and the sum of its contents. */
static inline bool value_get(const uint64_t *v, size_t nwords, uint64_t key, uint64_t *sum_out)
{
	uint64_t sum = 0;

	for (size_t j = 3; j < nwords; j++)
		sum += v[j];
	*sum_out = sum;
	return v[0] == key && v[2] == sum;
}

static inline void zipf_op(struct run *r, struct worker *w, uint64_t *rng)
{
	uint64_t rank = zipf_next(&r->zipf, rng);
	uint64_t key = rank * r->scatter % r->keys_per_thread * r->o->threads + w->tid;
	uint64_t *v = &r->mem[key * r->value_words];
	bool is_set = rng_next(rng) % 100 >= r->o->get_pct;
	uint64_t sum;

	if (is_set) {
		value_write(v, r->value_words, key, v[1] + 1);
		w->sets++;
		return;
	}
	w->gets++;
	if (!value_get(v, r->value_words, key, &sum)) {
		if (w->get_errors++ < MAX_REPORTED)
			fprintf(stderr, "%s: GET key %llu: inconsistent value (key word %llu, "
				"stored sum %llx, computed %llx)\n", prog,
				(unsigned long long)key, (unsigned long long)v[0],
				(unsigned long long)v[2], (unsigned long long)sum);
	}
	w->checksum += sum;
}

static void zipf_ops(struct worker *w)
{
	struct run *r = w->run;
	uint64_t rng = thread_seed(r->o->seed, w->tid);

	OPS_LOOP(w, zipf_op(r, w, &rng));
}

/* ------------------------------------------------------------ phases */

static void populate(struct run *r)
{
	if (r->o->wl == W_ZIPF) {
		for (size_t k = 0; k < r->nkeys; k++)
			value_write(&r->mem[k * r->value_words], r->value_words, k, 0);
		return;
	}
	for (size_t p = 0; p < r->pages; p++)
		for (size_t w = 0; w < WORDS_PER_PAGE; w++)
			r->mem[p * WORDS_PER_PAGE + w] = page_pattern(p, w);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	int err = pthread_barrier_wait(&w->run->start);

	if (err && err != PTHREAD_BARRIER_SERIAL_THREAD)
		die_err("pthread_barrier_wait", err);
	switch (w->run->o->wl) {
	case W_GUPS: gups_ops(w); break;
	case W_SCAN: scan_ops(w); break;
	case W_ZIPF: zipf_ops(w); break;
	}
	return NULL;
}

static void *undo_main(void *arg)
{
	gups_undo(arg);
	return NULL;
}

static void start_threads(struct run *r, void *(*fn)(void *))
{
	for (unsigned t = 0; t < r->o->threads; t++) {
		int err = pthread_create(&r->w[t].th, NULL, fn, &r->w[t]);
		if (err)
			die_err("pthread_create", err);
	}
}

static void join_threads(struct run *r)
{
	for (unsigned t = 0; t < r->o->threads; t++) {
		int err = pthread_join(r->w[t].th, NULL);
		if (err)
			die_err("pthread_join", err);
	}
}

static uint64_t rusage_faults(uint64_t *maj, uint64_t *min)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		die("getrusage(RUSAGE_SELF)");
	*maj = (uint64_t)ru.ru_majflt;
	*min = (uint64_t)ru.ru_minflt;
	return *maj + *min;
}

struct timed {
	double seconds;
	uint64_t majflt, minflt;
};

static struct timed timed_phase(struct run *r)
{
	const struct opts *o = r->o;
	uint64_t maj0, min0, maj1, min1, t0, t1;
	int err;

	for (unsigned t = 0; t < o->threads; t++) {
		struct worker *w = &r->w[t];
		w->tid = t;
		w->run = r;
		w->ops_limit = o->ops ? o->ops / o->threads + (t < o->ops % o->threads) : 0;
	}
	if ((err = pthread_barrier_init(&r->start, NULL, o->threads + 1)) != 0)
		die_err("pthread_barrier_init", err);
	start_threads(r, worker_main);
	rusage_faults(&maj0, &min0);
	t0 = now_ns();
	r->deadline_ns = o->seconds > 0 ? t0 + (uint64_t)(o->seconds * 1e9) : 0;
	err = pthread_barrier_wait(&r->start);
	if (err && err != PTHREAD_BARRIER_SERIAL_THREAD)
		die_err("pthread_barrier_wait", err);
	join_threads(r);
	t1 = now_ns();
	rusage_faults(&maj1, &min1);
	pthread_barrier_destroy(&r->start);
	return (struct timed){ (double)(t1 - t0) / 1e9, maj1 - maj0, min1 - min0 };
}

/* --corrupt flip: flip one bit of a content word in the middle of the
 * working set (what a device returning a damaged page would do). */
static void corrupt_flip(struct run *r)
{
	size_t off = (r->pages / 2) * PAGE_SZ + 3 * 8 + 5;
	unsigned char *b = (unsigned char *)r->mem + off;

	*b ^= 0x40;
	fprintf(stderr, "%s: --corrupt flip: flipped bit 6 of byte %zu (page %zu)\n",
		prog, off, off / PAGE_SZ);
}

/* --corrupt stale: give the first page (gups, scan) or the hottest value
 * (zipf) back its populated content, self-consistent but old (what losing
 * the writes since an eviction would do). */
static void corrupt_stale(struct run *r)
{
	if (r->o->wl == W_ZIPF) {
		value_write(r->mem, r->value_words, 0, 0);
		fprintf(stderr, "%s: --corrupt stale: value of key 0 reset to version 0\n", prog);
		return;
	}
	for (size_t w = 0; w < WORDS_PER_PAGE; w++)
		r->mem[w] = page_pattern(0, w);
	fprintf(stderr, "%s: --corrupt stale: page 0 reset to its populated content\n", prog);
}

/* Report the mismatch at word index `at` of the working set. */
static uint64_t report_mismatch(uint64_t errors, const char *what, size_t at, uint64_t want,
				uint64_t got)
{
	if (errors < MAX_REPORTED)
		fprintf(stderr, "%s: verify: %s: page %zu word %zu: expected %016llx, found %016llx\n",
			prog, what, at / WORDS_PER_PAGE, at % WORDS_PER_PAGE,
			(unsigned long long)want, (unsigned long long)got);
	return errors + 1;
}

static uint64_t verify_pages(struct run *r)
{
	uint64_t errors = 0;

	for (size_t p = 0; p < r->pages; p++) {
		const uint64_t *pg = &r->mem[p * WORDS_PER_PAGE];
		for (size_t w = 0; w < WORDS_PER_PAGE; w++) {
			uint64_t want = page_pattern(p, w);
			if (r->o->wl == W_SCAN && w == 1)
				want += scan_visits(r, p);
			if (pg[w] != want)
				errors = report_mismatch(errors, workload_names[r->o->wl],
							 p * WORDS_PER_PAGE + w, want, pg[w]);
		}
	}
	return errors;
}

static uint64_t verify_values(struct run *r, uint64_t total_sets)
{
	uint64_t errors = 0, versions = 0;

	for (size_t k = 0; k < r->nkeys; k++) {
		size_t at = k * r->value_words;
		const uint64_t *v = &r->mem[at];
		uint64_t sum = 0;
		versions += v[1];
		if (v[0] != k)
			errors = report_mismatch(errors, "zipf key", at, k, v[0]);
		for (size_t j = 3; j < r->value_words; j++) {
			uint64_t want = value_fill(k, v[1], j);
			if (v[j] != want)
				errors = report_mismatch(errors, "zipf value", at + j, want, v[j]);
			sum += v[j];
		}
		if (v[2] != sum)
			errors = report_mismatch(errors, "zipf value sum", at + 2, sum, v[2]);
	}
	if (versions != total_sets) {
		fprintf(stderr, "%s: verify: zipf: the versions add up to %llu, but %llu SETs were made\n",
			prog, (unsigned long long)versions, (unsigned long long)total_sets);
		errors++;
	}
	return errors;
}

static uint64_t verify(struct run *r, uint64_t total_sets)
{
	if (r->o->wl == W_GUPS) {
		start_threads(r, undo_main);
		join_threads(r);
	}
	return r->o->wl == W_ZIPF ? verify_values(r, total_sets) : verify_pages(r);
}

/* ------------------------------------------------------------ options */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s WORKLOAD [--ws-mb N] [--ops N] [--seconds S] [--threads T]\n"
		"                [--seed S] [--value-size B] [--theta X] [--get-pct P]\n"
		"                [--corrupt[=flip|stale]]\n"
		"  WORKLOAD: gups | scan | zipf\n"
		"  --ws-mb N        working set in MiB (default 512)\n"
		"  --ops N          stop after N operations in total\n"
		"  --seconds S      stop after S seconds (default 10 when --ops is not given)\n"
		"  --threads T      threads (default 1, at most %d)\n"
		"  --seed S         seed of the random numbers (default 1)\n"
		"  --value-size B   zipf: bytes per value, a power of 2 in [64, 65536] (default 1024)\n"
		"  --theta X        zipf: skew, in (0, 1) (default 0.99)\n"
		"  --get-pct P      zipf: percentage of GETs (default 90)\n"
		"  --corrupt[=flip|stale]  after the timed phase, flip one bit in the middle\n"
		"                   (flip, the default) or give page 0 / key 0 back its\n"
		"                   populated content (stale): verification must then fail\n",
		prog, MAX_THR);
}

static unsigned long long parse_ull(const char *opt, const char *s, unsigned long long min,
				    unsigned long long max)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < min || v > max) {
		fprintf(stderr, "%s: %s expects an integer in [%llu, %llu], got '%s'\n",
			prog, opt, min, max, s);
		exit(2);
	}
	return v;
}

static double parse_double(const char *opt, const char *s, double min, double max)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v > min && v < max)) {
		fprintf(stderr, "%s: %s expects a number in (%g, %g), got '%s'\n", prog, opt, min,
			max, s);
		exit(2);
	}
	return v;
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
	*o = (struct opts){ .ws_mb = 512, .threads = 1, .seed = 1, .value_size = 1024,
			    .theta = 0.99, .get_pct = 90 };
	if (argc < 2) {
		usage(stderr);
		exit(2);
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(stdout);
		exit(0);
	}
	unsigned i;
	for (i = 0; i < sizeof(workload_names) / sizeof(workload_names[0]); i++)
		if (!strcmp(argv[1], workload_names[i]))
			break;
	if (i == sizeof(workload_names) / sizeof(workload_names[0])) {
		fprintf(stderr, "%s: unknown workload '%s' (gups, scan or zipf)\n", prog, argv[1]);
		exit(2);
	}
	o->wl = (enum workload)i;
	for (int a = 2; a < argc; a++) {
		const char *opt = argv[a];
		if (!strcmp(opt, "--corrupt") || !strcmp(opt, "--corrupt=flip")) {
			o->corrupt = CORRUPT_FLIP;
			continue;
		}
		if (!strcmp(opt, "--corrupt=stale")) {
			o->corrupt = CORRUPT_STALE;
			continue;
		}
		if (!strcmp(opt, "-h") || !strcmp(opt, "--help")) {
			usage(stdout);
			exit(0);
		}
		if (a + 1 >= argc) {
			fprintf(stderr, "%s: %s: unknown option or missing value\n", prog, opt);
			exit(2);
		}
		const char *val = argv[++a];
		if (!strcmp(opt, "--ws-mb"))
			o->ws_mb = (unsigned long)parse_ull(opt, val, 1, 1UL << 20);
		else if (!strcmp(opt, "--ops"))
			o->ops = parse_ull(opt, val, 1, 1ULL << 50);
		else if (!strcmp(opt, "--seconds"))
			o->seconds = parse_double(opt, val, 0, 86400);
		else if (!strcmp(opt, "--threads"))
			o->threads = (unsigned)parse_ull(opt, val, 1, MAX_THR);
		else if (!strcmp(opt, "--seed"))
			o->seed = parse_ull(opt, val, 0, ~0ULL);
		else if (!strcmp(opt, "--value-size"))
			o->value_size = (unsigned long)parse_ull(opt, val, 64, 65536);
		else if (!strcmp(opt, "--theta"))
			o->theta = parse_double(opt, val, 0, 1);
		else if (!strcmp(opt, "--get-pct"))
			o->get_pct = (unsigned)parse_ull(opt, val, 0, 100);
		else {
			fprintf(stderr, "%s: unknown option '%s' (see --help)\n", prog, opt);
			exit(2);
		}
	}
	if (o->value_size & (o->value_size - 1)) {
		fprintf(stderr, "%s: --value-size expects a power of 2, got %lu\n", prog,
			o->value_size);
		exit(2);
	}
	if (!o->ops && o->seconds == 0)
		o->seconds = 10;
}

static void setup(struct run *r, const struct opts *o)
{
	r->o = o;
	r->bytes = (size_t)o->ws_mb << 20;
	r->pages = r->bytes / PAGE_SZ;
	r->words = r->bytes / 8;
	if (r->pages < o->threads) {
		fprintf(stderr, "%s: --ws-mb %lu has fewer pages than --threads %u\n", prog,
			o->ws_mb, o->threads);
		exit(2);
	}
	if (o->wl == W_ZIPF) {
		r->value_words = o->value_size / 8;
		r->nkeys = r->bytes / o->value_size;
		r->keys_per_thread = r->nkeys / o->threads;
		if (r->keys_per_thread < 2) {
			fprintf(stderr, "%s: zipf needs at least 2 values per thread\n", prog);
			exit(2);
		}
		r->scatter = scatter_multiplier(r->keys_per_thread);
		zipf_init(&r->zipf, r->keys_per_thread, o->theta);
	}
	r->mem = mmap(NULL, r->bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (r->mem == MAP_FAILED) {
		char msg[96];
		snprintf(msg, sizeof(msg), "mmap(%lu MiB, anonymous private)", o->ws_mb);
		die(msg);
	}
}

int main(int argc, char **argv)
{
	static struct run r;        /* large (histograms): not on the stack */
	struct opts o;
	struct hist all = { 0 };
	uint64_t ops = 0, sets = 0, gets = 0, get_errors = 0, checksum = 0, errors;

	parse_opts(argc, argv, &o);
	setup(&r, &o);

	uint64_t t0 = now_ns();
	populate(&r);
	double populate_s = (double)(now_ns() - t0) / 1e9;

	struct timed tm = timed_phase(&r);
	for (unsigned t = 0; t < o.threads; t++) {
		const struct worker *w = &r.w[t];
		ops += w->ops_done;
		sets += w->sets;
		gets += w->gets;
		get_errors += w->get_errors;
		checksum = mix64(checksum ^ w->checksum);
		hist_merge(&all, &w->hist);
	}

	if (o.corrupt == CORRUPT_FLIP)
		corrupt_flip(&r);
	else if (o.corrupt == CORRUPT_STALE)
		corrupt_stale(&r);
	t0 = now_ns();
	errors = verify(&r, sets) + get_errors;
	double verify_s = (double)(now_ns() - t0) / 1e9;
	if (errors > MAX_REPORTED)
		fprintf(stderr, "%s: verify: %llu mismatches in all\n", prog,
			(unsigned long long)errors);

	printf("result workload=%s ws_mb=%lu threads=%u ops=%llu seconds=%.3f ops_per_s=%.0f "
	       "majflt=%llu minflt=%llu faults=%llu lat_samples=%llu lat_p50_ns=%llu "
	       "lat_p99_ns=%llu lat_max_ns=%llu populate_s=%.3f verify_s=%.3f",
	       workload_names[o.wl], o.ws_mb, o.threads, (unsigned long long)ops, tm.seconds,
	       tm.seconds > 0 ? (double)ops / tm.seconds : 0.0, (unsigned long long)tm.majflt,
	       (unsigned long long)tm.minflt, (unsigned long long)(tm.majflt + tm.minflt),
	       (unsigned long long)all.count, (unsigned long long)hist_percentile(&all, 50),
	       (unsigned long long)hist_percentile(&all, 99), (unsigned long long)all.max,
	       populate_s, verify_s);
	if (o.wl == W_ZIPF)
		printf(" gets=%llu sets=%llu", (unsigned long long)gets, (unsigned long long)sets);
	printf(" checksum=%016llx verify=%s errors=%llu\n", (unsigned long long)checksum,
	       errors ? "FAILED" : "ok", (unsigned long long)errors);
	if (fflush(stdout) != 0)
		die("stdout");
	return errors ? 1 : 0;
}
