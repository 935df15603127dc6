/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for core/config.c: the alloc_policy_assignment_strategy.cfg
 * parser, command-line lines, lookups and the policy check against the
 * registry (first_fit and batch register from libusm's constructors).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"

#define USM_TEXT_MAX 8192
#include "core/registry.h"

#define SRC "t.cfg"

static char err[512];

/* Parse text into a fresh cfg; the test owns cfg afterwards. */
static int parse(struct usm_config *cfg, const char *text)
{
	usm_config_defaults(cfg);
	memset(err, 0, sizeof(err));
	return usm_config_parse(cfg, text, SRC, err, sizeof(err));
}

static void parse_ok(struct usm_config *cfg, const char *text)
{
	int rc = parse(cfg, text);

	if (rc)
		print_error("unexpected parse error: %s\n", err);
	assert_int_equal(rc, 0);
	assert_string_equal(err, "");
}

/* text must fail with exactly "t.cfg:<line>: <msg>". */
static void expect_error(const char *text, int line, const char *msg)
{
	struct usm_config cfg;
	char want[600];

	snprintf(want, sizeof(want), SRC ":%d: %s", line, msg);
	assert_int_equal(parse(&cfg, text), -1);
	assert_string_equal(err, want);
	usm_config_free(&cfg);
}

static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);

	assert_non_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* ---- defaults ------------------------------------------------------ */

static void test_defaults(void **state)
{
	struct usm_config cfg;

	usm_config_defaults(&cfg);
	assert_string_equal(cfg.source, "(defaults)");
	assert_int_equal(cfg.memory_mib, 4096);
	assert_int_equal(cfg.workers, 1);
	assert_int_equal(cfg.page_size, 4096);
	assert_int_equal(cfg.wait_mode, USM_WAIT_HYBRID);
	assert_int_equal(cfg.spin_us, 50);
	assert_int_equal(cfg.oom, USM_OOM_KERNEL);
	assert_string_equal(cfg.default_policy, "first_fit");
	assert_int_equal(cfg.default_policy_line, 0);
	assert_int_equal(cfg.nprocs + cfg.nprios + cfg.nthresh + cfg.nsets + cfg.nplugins, 0);
	assert_null(usm_config_policy_for(&cfg, "x"));
	assert_int_equal(usm_config_priority_for(&cfg, "x"), 0);
	assert_null(usm_config_lookup(&cfg, "x"));
	usm_config_free(&cfg);
	/* free is idempotent */
	usm_config_free(&cfg);
}

static void test_empty_text(void **state)
{
	struct usm_config cfg;

	parse_ok(&cfg, "");
	assert_string_equal(cfg.source, SRC);
	assert_int_equal(cfg.memory_mib, 4096);
	usm_config_free(&cfg);
	parse_ok(&cfg, "\n\n   \n\t\n# only a comment\n   # indented comment\n");
	assert_int_equal(cfg.memory_mib, 4096);
	usm_config_free(&cfg);
}

/* ---- a config using every directive ---------------------------------- */

static const char full_cfg[] =
	"# USM test config\n"
	"\n"
	"memory 512\n"
	"\tworkers\t4   # trailing comment\n"
	"page 4096\n"
	"   \n"
	"mode spinning\n"
	"oom wait\n"
	"policy batch\n"                          /* line 9 */
	"process alloc foo batch\n"               /* line 10 */
	"process swap foo fifo\n"                 /* line 11 */
	"process bar first_fit\r\n"               /* line 12: CRLF */
	"priority foo -5\n"
	"priority bar 7\n"
	"threshold 90 first_fit\n"                /* line 15 */
	"threshold 50 batch\n"                    /* line 16 */
	"threshold 70 first_fit\n"                /* line 17 */
	"plugin /tmp/x.so\n"
	"plugin relative/y.so\n"
	"set batch.pages 16\n"
	"set a.b c\n"
	"set batch.pages 32\n"                    /* overrides line 20 */
	"memory 1024      # later lines override\n"
	"workers 64\n"
	"process foo first_fit\n"                 /* line 25: overrides line 10 */
	"priority foo 3\n"
	"  set   spaced.key    v#comment-glued";  /* no final newline */

static void test_full(void **state)
{
	struct usm_config cfg;

	parse_ok(&cfg, full_cfg);
	assert_string_equal(cfg.source, SRC);
	assert_int_equal(cfg.memory_mib, 1024);
	assert_int_equal(cfg.workers, 64);
	assert_int_equal(cfg.page_size, 4096);
	assert_int_equal(cfg.wait_mode, USM_WAIT_SPINNING);
	assert_int_equal(cfg.oom, USM_OOM_WAIT);
	assert_string_equal(cfg.default_policy, "batch");
	assert_int_equal(cfg.default_policy_line, 9);

	assert_int_equal(cfg.nprocs, 4);
	assert_string_equal(cfg.procs[0].comm, "foo");
	assert_string_equal(cfg.procs[0].policy, "batch");
	assert_false(cfg.procs[0].swap);
	assert_int_equal(cfg.procs[0].line, 10);
	assert_string_equal(cfg.procs[1].comm, "foo");
	assert_string_equal(cfg.procs[1].policy, "fifo");
	assert_true(cfg.procs[1].swap);
	assert_int_equal(cfg.procs[1].line, 11);
	assert_string_equal(cfg.procs[2].comm, "bar");
	assert_string_equal(cfg.procs[2].policy, "first_fit");
	assert_false(cfg.procs[2].swap);
	assert_int_equal(cfg.procs[2].line, 12);
	assert_int_equal(cfg.procs[3].line, 25);

	assert_int_equal(cfg.nprios, 3);
	assert_string_equal(cfg.prios[0].comm, "foo");
	assert_int_equal(cfg.prios[0].priority, -5);
	assert_string_equal(cfg.prios[1].comm, "bar");
	assert_int_equal(cfg.prios[1].priority, 7);

	/* thresholds sorted by pct, each remembering its line */
	assert_int_equal(cfg.nthresh, 3);
	assert_int_equal(cfg.thresh[0].pct, 50);
	assert_string_equal(cfg.thresh[0].policy, "batch");
	assert_int_equal(cfg.thresh[0].line, 16);
	assert_int_equal(cfg.thresh[1].pct, 70);
	assert_string_equal(cfg.thresh[1].policy, "first_fit");
	assert_int_equal(cfg.thresh[1].line, 17);
	assert_int_equal(cfg.thresh[2].pct, 90);
	assert_string_equal(cfg.thresh[2].policy, "first_fit");
	assert_int_equal(cfg.thresh[2].line, 15);

	assert_int_equal(cfg.nplugins, 2);
	assert_string_equal(cfg.plugins[0], "/tmp/x.so");
	assert_string_equal(cfg.plugins[1], "relative/y.so");

	/* `set` with a repeated key replaces the value in place */
	assert_int_equal(cfg.nsets, 3);
	assert_string_equal(cfg.sets[0].key, "batch.pages");
	assert_string_equal(cfg.sets[0].value, "32");
	assert_string_equal(usm_config_lookup(&cfg, "batch.pages"), "32");
	assert_string_equal(usm_config_lookup(&cfg, "a.b"), "c");
	assert_string_equal(usm_config_lookup(&cfg, "spaced.key"), "v");
	assert_null(usm_config_lookup(&cfg, "batch"));
	assert_null(usm_config_lookup(&cfg, "batch.pages.x"));
	assert_null(usm_config_lookup(&cfg, ""));

	/* the last `process` line for a name wins; swap lines never count */
	assert_string_equal(usm_config_policy_for(&cfg, "foo"), "first_fit");
	assert_string_equal(usm_config_policy_for(&cfg, "bar"), "first_fit");
	assert_null(usm_config_policy_for(&cfg, "baz"));
	assert_null(usm_config_policy_for(&cfg, "fo"));
	assert_int_equal(usm_config_priority_for(&cfg, "foo"), 3);
	assert_int_equal(usm_config_priority_for(&cfg, "bar"), 7);
	assert_int_equal(usm_config_priority_for(&cfg, "baz"), 0);

	assert_int_equal(usm_config_check_policies(&cfg, err, sizeof(err)), 0);
	usm_config_free(&cfg);
	assert_null(cfg.procs);
	assert_null(cfg.plugins);
	assert_int_equal(cfg.nprocs + cfg.nprios + cfg.nthresh + cfg.nsets + cfg.nplugins, 0);
}

static void test_values(void **state)
{
	struct usm_config cfg;

	parse_ok(&cfg, "memory 1\nworkers 1\nmode blocking\noom kernel\n");
	assert_int_equal(cfg.memory_mib, 1);
	assert_int_equal(cfg.workers, 1);
	assert_int_equal(cfg.wait_mode, USM_WAIT_BLOCKING);
	assert_int_equal(cfg.oom, USM_OOM_KERNEL);
	usm_config_free(&cfg);

	parse_ok(&cfg, "mode hybrid\n");
	assert_int_equal(cfg.wait_mode, USM_WAIT_HYBRID);
	assert_int_equal(cfg.spin_us, 50);
	usm_config_free(&cfg);
	parse_ok(&cfg, "mode hybrid 200\n");
	assert_int_equal(cfg.wait_mode, USM_WAIT_HYBRID);
	assert_int_equal(cfg.spin_us, 200);
	usm_config_free(&cfg);
	parse_ok(&cfg, "mode colocate 30\n");
	assert_int_equal(cfg.wait_mode, USM_WAIT_COLOCATE);
	assert_int_equal(cfg.spin_us, 30);
	usm_config_free(&cfg);

	/* `oom kill`: usm_oom_default kills a victim and retries */
	parse_ok(&cfg, "memory 1073741824\noom kill\nmode spinning\nmode blocking\n");
	assert_int_equal(cfg.memory_mib, 1ull << 30);
	assert_int_equal(cfg.oom, USM_OOM_RETRY);
	assert_int_equal(cfg.wait_mode, USM_WAIT_BLOCKING);
	usm_config_free(&cfg);

	parse_ok(&cfg, "priority a -2147483648\npriority b 2147483647\npriority c +4\n"
		 "priority d -0\nthreshold 1 a\nthreshold 100 b\n");
	assert_int_equal(usm_config_priority_for(&cfg, "a"), -2147483647 - 1);
	assert_int_equal(usm_config_priority_for(&cfg, "b"), 2147483647);
	assert_int_equal(usm_config_priority_for(&cfg, "c"), 4);
	assert_int_equal(usm_config_priority_for(&cfg, "d"), 0);
	assert_int_equal(cfg.thresh[0].pct, 1);
	assert_int_equal(cfg.thresh[1].pct, 100);
	usm_config_free(&cfg);
}

/* Names exactly at their limits are accepted. */
static void test_name_limits_ok(void **state)
{
	struct usm_config cfg;
	char *comm = repeat('c', USM_COMM_MAX - 1), *pol = repeat('p', USM_NAME_MAX - 1);
	char *key = repeat('k', 63), *val = repeat('v', 127);
	char text[1024];

	snprintf(text, sizeof(text), "policy %s\nprocess %s %s\npriority %s 1\n"
		 "threshold 5 %s\nset %s %s\n", pol, comm, pol, comm, pol, key, val);
	parse_ok(&cfg, text);
	assert_string_equal(cfg.default_policy, pol);
	assert_string_equal(usm_config_policy_for(&cfg, comm), pol);
	assert_int_equal(usm_config_priority_for(&cfg, comm), 1);
	assert_string_equal(cfg.thresh[0].policy, pol);
	assert_string_equal(usm_config_lookup(&cfg, key), val);
	usm_config_free(&cfg);
	free(comm); free(pol); free(key); free(val);
}

/* Exactly 8 words is the limit of the tokenizer, not an error by itself. */
static void test_eight_words(void **state)
{
	expect_error("process a b c d e f g", 1,
		     "process: expected key=value after the policy, got 'c'");
	expect_error("process a b c d e f g h", 1, "too many words on the line");
	expect_error("\n\nset a b c d e f g h i j k", 3, "too many words on the line");
	/* words after '#' do not count */
	struct usm_config cfg;
	parse_ok(&cfg, "set a b # c d e f g h i j k l m\n");
	assert_string_equal(usm_config_lookup(&cfg, "a"), "b");
	usm_config_free(&cfg);
}

/* ---- errors ---------------------------------------------------------- */

static void test_unknown_directive(void **state)
{
	const char *list = "(expected one of memory, workers, copiers, page, mode, host, oom, policy, "
			   "process, priority, threshold, plugin, set, swapdev, swap_policy, "
			   "watermarks, reclaim, limit, trace)";
	char want[300];

	snprintf(want, sizeof(want), "unknown directive 'bogus' %s", list);
	expect_error("bogus 1", 1, want);
	/* line numbers count comments, blank lines and CRLF lines */
	expect_error("# c\n\nmemory 5\r\n\t\n  bogus\n", 5, want);
	snprintf(want, sizeof(want), "unknown directive 'Memory' %s", list);
	expect_error("memory 5\nMemory 5\n", 2, want);
	snprintf(want, sizeof(want), "unknown directive 'memory=5' %s", list);
	expect_error("memory=5", 1, want);
}

/* ---- eviction directives -------------------------------------------- */

static void test_eviction_directives(void **state)
{
	struct usm_config cfg;

	parse_ok(&cfg, "");
	assert_int_equal(cfg.nswapdevs, 0);
	assert_int_equal(cfg.wm_low_pct, 2);
	assert_int_equal(cfg.wm_high_pct, 4);
	usm_config_free(&cfg);

	parse_ok(&cfg, "page 4096\nswapdev zmem - 64M codec=zstd priority=5\n"
		       "swapdev file /tmp/x.swap 1G direct\nswap_policy clock\n"
		       "watermarks 1 3\nlimit redis 128\nlimit redis 256\ntrace redis /tmp/t\n");
	assert_int_equal(cfg.nswapdevs, 2);
	assert_string_equal(cfg.swapdevs[0].kind, "zmem");
	assert_int_equal(cfg.swapdevs[0].size, 64ull << 20);
	assert_int_equal(cfg.swapdevs[0].priority, 5);
	assert_int_equal(cfg.swapdevs[0].codec, USM_CODEC_ZSTD);
	assert_int_equal(cfg.swapdevs[0].line, 2);
	assert_string_equal(cfg.swapdevs[1].path, "/tmp/x.swap");
	assert_true(cfg.swapdevs[1].direct);
	assert_string_equal(cfg.swap_policy, "clock");
	assert_int_equal(cfg.swap_policy_line, 4);
	assert_int_equal(cfg.wm_low_pct, 1);
	assert_int_equal(cfg.wm_high_pct, 3);
	/* the last limit line wins; MiB in frames */
	assert_int_equal(usm_config_limit_for(&cfg, "redis"), 256 * 256);
	assert_int_equal(usm_config_limit_for(&cfg, "other"), 0);
	assert_string_equal(usm_config_trace_for(&cfg, "redis"), "/tmp/t");
	assert_null(usm_config_trace_for(&cfg, "other"));
	usm_config_free(&cfg);

	parse_ok(&cfg, "reclaim background\n");
	assert_true(cfg.reclaim_background);
	usm_config_free(&cfg);
	parse_ok(&cfg, "reclaim background\nreclaim direct\n");
	assert_false(cfg.reclaim_background);
	usm_config_free(&cfg);
	expect_error("reclaim sometimes", 1,
		     "reclaim: expected 'direct' or 'background', got 'sometimes'");
	expect_error("reclaim", 1, "expected 'reclaim direct|background'");
	expect_error("watermarks 5 3", 1, "watermarks: high (3%) is below low (5%)");
	expect_error("watermarks 1 51", 1, "watermarks <high%>: 51 is out of range [1, 50]");
	expect_error("watermarks x 3", 1, "watermarks <low%>: expected a whole number, got 'x'");
	expect_error("limit a 0", 1, "limit <name> <MiB>: 0 is out of range [1, 1073741824]");
	expect_error("limit a", 1, "expected 'limit <name> <MiB>'");
	expect_error("trace a", 1, "expected 'trace <name> <file>'");
	expect_error("swap_policy", 1, "expected 'swap_policy <name>'");
	expect_error("swapdev", 1, "expected 'swapdev file|zmem <path|-> <size> [option]...'");
	/* the swap layer's own message, after file:line */
	expect_error("memory 5\nswapdev tape /dev/st0 1G\n", 2,
		     "swapdev: unknown device kind 'tape' (expected file or zmem)");
	expect_error("swapdev zmem - 0\n", 1,
		     "swapdev zmem: size '0' out of range (more than 0, less than 16 EiB)");
	expect_error("swapdev zmem - 1M\nswapdev zmem - 1M\nswapdev zmem - 1M\nswapdev zmem - 1M\n"
		     "swapdev zmem - 1M\nswapdev zmem - 1M\nswapdev zmem - 1M\nswapdev zmem - 1M\n"
		     "swapdev zmem - 1M\n", 9, "swapdev: at most 8 devices");
}

/*
 * What the in-process host is sent: its compressed devices (not the file
 * ones, which it cannot use), the eviction lines and its own limit, and
 * the text parses back to the same settings.
 */
static void test_inline_text(void **state)
{
	struct usm_config cfg, back;
	char text[USM_TEXT_MAX];
	char err[256];

	parse_ok(&cfg, "memory 64\nswapdev file /tmp/x.swap 1G\n"
		       "swapdev zmem - 64M codec=zstd priority=5\nswap_policy clock\n"
		       "watermarks 1 3\nreclaim background\nlimit redis 16\nlimit other 8\n"
		       "set fifo.prefetch 1\n");
	assert_true(usm_config_inline_text(&cfg, "redis", "first_fit", text, sizeof(text)) > 0);
	assert_null(strstr(text, "x.swap"));
	assert_null(strstr(text, "other"));
	usm_config_defaults(&back);
	assert_int_equal(usm_config_parse(&back, text, "sent", err, sizeof(err)), 0);
	assert_int_equal(back.memory_mib, 64);
	assert_int_equal(back.nswapdevs, 1);
	assert_string_equal(back.swapdevs[0].kind, "zmem");
	assert_int_equal(back.swapdevs[0].size, 64ull << 20);
	assert_int_equal(back.swapdevs[0].priority, 5);
	assert_int_equal(back.swapdevs[0].codec, USM_CODEC_ZSTD);
	assert_string_equal(back.swap_policy, "clock");
	assert_int_equal(back.wm_low_pct, 1);
	assert_int_equal(back.wm_high_pct, 3);
	assert_true(back.reclaim_background);
	assert_int_equal(usm_config_limit_for(&back, "redis"), 16 * 256);
	assert_string_equal(usm_config_lookup(&back, "fifo.prefetch"), "1");
	usm_config_free(&back);
	/* No compressed device: nothing about eviction at all. */
	usm_config_free(&cfg);
	parse_ok(&cfg, "swapdev file /tmp/x.swap 1G\nswap_policy clock\n");
	assert_true(usm_config_inline_text(&cfg, "redis", "first_fit", text, sizeof(text)) > 0);
	assert_null(strstr(text, "swap"));
	usm_config_free(&cfg);
}

static void test_arg_count(void **state)
{
	static const struct { const char *line, *usage; } c[] = {
		{ "memory", "memory <MiB>" },
		{ "memory 1 2", "memory <MiB>" },
		{ "workers", "workers <n>" },
		{ "workers 1 # 2\nworkers 1 2", "workers <n>" },
		{ "page", "page <bytes>" },
		{ "page 4096 4096", "page <bytes>" },
		{ "mode", "mode blocking|spinning|hybrid [us]|colocate [us]" },
		{ "mode hybrid 50 60", "mode blocking|spinning|hybrid [us]|colocate [us]" },
		{ "oom", "oom kernel|kill|wait" },
		{ "oom kill wait", "oom kernel|kill|wait" },
		{ "policy", "policy <name>" },
		{ "policy a b", "policy <name>" },
		{ "process", "process [alloc|swap] <name> <policy> [key=value]..." },
		{ "process foo", "process [alloc|swap] <name> <policy> [key=value]..." },
		{ "process alloc foo", "process [alloc|swap] <name> <policy> [key=value]..." },
		{ "priority foo", "priority <name> <n>" },
		{ "priority foo 1 2", "priority <name> <n>" },
		{ "threshold 50", "threshold <pct> <policy>" },
		{ "threshold 50 a b", "threshold <pct> <policy>" },
		{ "plugin", "plugin <path.so>" },
		{ "plugin a.so b.so", "plugin <path.so>" },
		{ "set k", "set <key> <value>" },
		{ "set k v w", "set <key> <value>" },
	};

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		char want[128];
		int line = strchr(c[i].line, '\n') ? 2 : 1;

		snprintf(want, sizeof(want), "expected '%s'", c[i].usage);
		expect_error(c[i].line, line, want);
	}
}

static void test_not_a_number(void **state)
{
	expect_error("memory 12abc", 1, "memory <MiB>: expected a whole number, got '12abc'");
	expect_error("memory 0x10", 1, "memory <MiB>: expected a whole number, got '0x10'");
	expect_error("memory 1.5", 1, "memory <MiB>: expected a whole number, got '1.5'");
	expect_error("memory 1k", 1, "memory <MiB>: expected a whole number, got '1k'");
	expect_error("\nworkers two", 2, "workers <n>: expected a whole number, got 'two'");
	expect_error("page -", 1, "page <bytes>: expected a whole number, got '-'");
	expect_error("priority foo high", 1,
		     "priority <name> <n>: expected a whole number, got 'high'");
	expect_error("threshold 50% batch", 1,
		     "threshold <pct> <policy>: expected a whole number, got '50%'");
}

static void test_out_of_range(void **state)
{
	expect_error("memory 0", 1, "memory <MiB>: 0 is out of range [1, 1073741824]");
	expect_error("memory -1", 1, "memory <MiB>: -1 is out of range [1, 1073741824]");
	expect_error("memory 1073741825", 1,
		     "memory <MiB>: 1073741825 is out of range [1, 1073741824]");
	expect_error("workers 0", 1, "workers <n>: 0 is out of range [1, 64]");
	expect_error("workers 65", 1, "workers <n>: 65 is out of range [1, 64]");
	expect_error("mode hybrid 0", 1, "mode hybrid <us>: 0 is out of range [1, 100000]");
	expect_error("mode hybrid 5us", 1, "mode hybrid <us>: expected a whole number, got '5us'");
	expect_error("mode colocate 0", 1, "mode colocate <us>: 0 is out of range [1, 100000]");
	expect_error("threshold 0 batch", 1,
		     "threshold <pct> <policy>: 0 is out of range [1, 100]");
	expect_error("threshold 101 batch", 1,
		     "threshold <pct> <policy>: 101 is out of range [1, 100]");
	expect_error("priority foo 2147483648", 1, "priority <name> <n>: 2147483648 is "
		     "out of range [-2147483648, 2147483647]");
	expect_error("priority foo -2147483649", 1, "priority <name> <n>: -2147483649 is "
		     "out of range [-2147483648, 2147483647]");
	expect_error("page 0", 1, "page <bytes>: 0 is out of range [1, 1073741824]");
	/* beyond long long: still reported as out of range, not "not a number" */
	expect_error("memory 99999999999999999999", 1,
		     "memory <MiB>: '99999999999999999999' is out of range [1, 1073741824]");
	expect_error("priority x -99999999999999999999", 1,
		     "priority <name> <n>: '-99999999999999999999' is out of range "
		     "[-2147483648, 2147483647]");
}

static void test_page(void **state)
{
	expect_error("page 8192", 1,
		     "page <bytes>: only 4096 (the base page size) is supported, got 8192");
	expect_error("page 2097152", 1,
		     "page <bytes>: only 4096 (the base page size) is supported, got 2097152");
	expect_error("page 4095", 1,
		     "page <bytes>: only 4096 (the base page size) is supported, got 4095");
}

static void test_bad_words(void **state)
{
	expect_error("mode fast", 1,
		     "mode: expected 'blocking', 'spinning', 'hybrid' or 'colocate', got 'fast'");
	expect_error("mode Blocking", 1,
		     "mode: expected 'blocking', 'spinning', 'hybrid' or 'colocate', got 'Blocking'");
	expect_error("mode blocking spinning", 1,
		     "mode blocking takes no argument (only 'hybrid <us>' and 'colocate <us>' do), got 'spinning'");
	expect_error("mode spinning 50", 1,
		     "mode spinning takes no argument (only 'hybrid <us>' and 'colocate <us>' do), got '50'");
	expect_error("oom panic", 1, "oom: expected 'kernel', 'kill' or 'wait', got 'panic'");
	expect_error("oom retry", 1, "oom: expected 'kernel', 'kill' or 'wait', got 'retry'");
	expect_error("process heap foo batch", 1,
		     "process: expected 'alloc' or 'swap', got 'heap'");
}

static void test_duplicate_threshold(void **state)
{
	expect_error("threshold 50 batch\n# x\nthreshold 50 first_fit\n", 3,
		     "threshold 50% is already set on line 1");
	expect_error("threshold 90 a\nthreshold 10 b\nthreshold 50 c\nthreshold 10 d", 4,
		     "threshold 10% is already set on line 2");
}

static void test_too_long(void **state)
{
	char *comm = repeat('c', USM_COMM_MAX), *pol = repeat('p', USM_NAME_MAX);
	char *key = repeat('k', 64), *val = repeat('v', 128);
	char text[600], want[600];

	snprintf(text, sizeof(text), "\npolicy %s", pol);
	snprintf(want, sizeof(want), "policy name '%s' is longer than 31 characters", pol);
	expect_error(text, 2, want);

	snprintf(text, sizeof(text), "process %s batch", comm);
	snprintf(want, sizeof(want), "process name '%s' is longer than 15 characters", comm);
	expect_error(text, 1, want);

	snprintf(text, sizeof(text), "process swap foo %s", pol);
	snprintf(want, sizeof(want), "policy name '%s' is longer than 31 characters", pol);
	expect_error(text, 1, want);

	snprintf(text, sizeof(text), "priority %s 1", comm);
	snprintf(want, sizeof(want), "process name '%s' is longer than 15 characters", comm);
	expect_error(text, 1, want);

	snprintf(text, sizeof(text), "threshold 40 %s", pol);
	snprintf(want, sizeof(want), "policy name '%s' is longer than 31 characters", pol);
	expect_error(text, 1, want);

	snprintf(text, sizeof(text), "set %s 1", key);
	snprintf(want, sizeof(want), "set key '%s' is longer than 63 characters", key);
	expect_error(text, 1, want);

	snprintf(text, sizeof(text), "set k %s", val);
	snprintf(want, sizeof(want), "set value '%s' is longer than 127 characters", val);
	expect_error(text, 1, want);

	free(comm); free(pol); free(key); free(val);
}

/* The first bad line stops the parse; earlier lines were applied. */
static void test_stops_at_first_error(void **state)
{
	struct usm_config cfg;

	assert_int_equal(parse(&cfg, "memory 7\nworkers 99\nmemory 8\nbogus\n"), -1);
	assert_string_equal(err, SRC ":2: workers <n>: 99 is out of range [1, 64]");
	assert_int_equal(cfg.memory_mib, 7);
	assert_int_equal(cfg.workers, 1);
	usm_config_free(&cfg);

	/* partly filled arrays are still released by usm_config_free (LSan) */
	assert_int_equal(parse(&cfg, "plugin a.so\nset k v\nprocess a b\npriority a 1\n"
			       "threshold 5 x\nprocess abcdefghijklmnopq b\n"), -1);
	assert_string_equal(err, SRC ":6: process name 'abcdefghijklmnopq' is longer than "
			    "15 characters");
	usm_config_free(&cfg);
}

/* A short error buffer truncates, still NUL-terminated. */
static void test_short_err_buffer(void **state)
{
	struct usm_config cfg;
	char small[12];

	memset(small, 'x', sizeof(small));
	usm_config_defaults(&cfg);
	assert_int_equal(usm_config_parse(&cfg, "\n\n\nworkers 0", "file.cfg", small,
					  sizeof(small)), -1);
	assert_string_equal(small, "file.cfg:4:");
	usm_config_free(&cfg);
}

/* ---- command-line lines ---------------------------------------------- */

static void test_apply_line(void **state)
{
	struct usm_config cfg;

	parse_ok(&cfg, "memory 64\nset k v\n");
	assert_int_equal(usm_config_apply_line(&cfg, "memory 128", err, sizeof(err)), 0);
	assert_int_equal(cfg.memory_mib, 128);
	assert_int_equal(usm_config_apply_line(&cfg, "  workers\t2  # c", err, sizeof(err)), 0);
	assert_int_equal(cfg.workers, 2);
	assert_int_equal(usm_config_apply_line(&cfg, "set k w", err, sizeof(err)), 0);
	assert_string_equal(usm_config_lookup(&cfg, "k"), "w");
	assert_int_equal(cfg.nsets, 1);
	assert_int_equal(usm_config_apply_line(&cfg, "plugin /p.so", err, sizeof(err)), 0);
	assert_int_equal(cfg.nplugins, 1);
	assert_int_equal(usm_config_apply_line(&cfg, "", err, sizeof(err)), 0);
	assert_int_equal(usm_config_apply_line(&cfg, "# nothing", err, sizeof(err)), 0);
	/* the source of the config is kept */
	assert_string_equal(cfg.source, SRC);

	assert_int_equal(usm_config_apply_line(&cfg, "workers 0", err, sizeof(err)), -1);
	assert_string_equal(err, "command line:1: workers <n>: 0 is out of range [1, 64]");
	assert_int_equal(usm_config_apply_line(&cfg, "memory", err, sizeof(err)), -1);
	assert_string_equal(err, "command line:1: expected 'memory <MiB>'");
	assert_int_equal(usm_config_apply_line(&cfg, "nope", err, sizeof(err)), -1);
	assert_true(!strncmp(err, "command line:1: unknown directive 'nope' ", 40));
	/* the line is not modified (it is a const string) */
	const char line[] = "set x y # z";
	assert_int_equal(usm_config_apply_line(&cfg, line, err, sizeof(err)), 0);
	assert_string_equal(line, "set x y # z");
	assert_string_equal(usm_config_lookup(&cfg, "x"), "y");
	/* a duplicate threshold: twice on the command line ... */
	assert_int_equal(usm_config_apply_line(&cfg, "threshold 60 batch", err, sizeof(err)), 0);
	assert_int_equal(usm_config_apply_line(&cfg, "threshold 60 batch", err, sizeof(err)), -1);
	assert_string_equal(err, "command line:1: threshold 60% is already set on the "
			    "command line");
	usm_config_free(&cfg);

	/* ... and in the file, then on the command line */
	parse_ok(&cfg, "# c\nthreshold 40 batch\n");
	assert_int_equal(usm_config_apply_line(&cfg, "threshold 40 first_fit", err,
					       sizeof(err)), -1);
	assert_string_equal(err, "command line:1: threshold 40% is already set on line 2");
	usm_config_free(&cfg);
}

/* Policy names from -o lines are reported as from the command line, not
 * as a line of the config file. */
static void test_apply_line_policy_check(void **state)
{
	struct usm_config cfg;
	char known[256], want[600];

	usm_registry_names(known, sizeof(known));
	parse_ok(&cfg, "\n\npolicy batch\n");
	assert_int_equal(usm_config_apply_line(&cfg, "policy nosuch", err, sizeof(err)), 0);
	assert_int_equal(usm_config_check_policies(&cfg, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "command line: unknown policy 'nosuch' (registered: %s)",
		 known);
	assert_string_equal(err, want);
	usm_config_free(&cfg);

	usm_config_defaults(&cfg);
	assert_int_equal(usm_config_apply_line(&cfg, "process swap x none", err, sizeof(err)), 0);
	assert_int_equal(usm_config_apply_line(&cfg, "process x nope", err, sizeof(err)), 0);
	assert_int_equal(usm_config_check_policies(&cfg, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "command line: unknown policy 'nope' (registered: %s)",
		 known);
	assert_string_equal(err, want);
	usm_config_free(&cfg);

	usm_config_defaults(&cfg);
	assert_int_equal(usm_config_apply_line(&cfg, "threshold 10 gone", err, sizeof(err)), 0);
	assert_int_equal(usm_config_check_policies(&cfg, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "command line: unknown policy 'gone' (registered: %s)",
		 known);
	assert_string_equal(err, want);
	usm_config_free(&cfg);

	/* a good -o policy passes, and a file line after it keeps its number */
	parse_ok(&cfg, "policy batch\n");
	assert_int_equal(usm_config_apply_line(&cfg, "policy first_fit", err, sizeof(err)), 0);
	assert_int_equal(usm_config_check_policies(&cfg, err, sizeof(err)), 0);
	usm_config_free(&cfg);
}

/* ---- usm_config_load ------------------------------------------------- */

static void test_load(void **state)
{
	struct usm_config cfg;
	char path[] = "/tmp/usm-test-config-XXXXXX";
	int fd = mkstemp(path);
	const char text[] = "memory 32\n\nworkers 3\nmode spinning\n";
	char want[600];

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)sizeof(text) - 1);
	close(fd);
	usm_config_defaults(&cfg);
	assert_int_equal(usm_config_load(&cfg, path, err, sizeof(err)), 0);
	assert_string_equal(cfg.source, path);
	assert_int_equal(cfg.memory_mib, 32);
	assert_int_equal(cfg.workers, 3);
	assert_int_equal(cfg.wait_mode, USM_WAIT_SPINNING);
	usm_config_free(&cfg);

	/* an error names the file */
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "memory 1\noom never\n", 19), 19);
	close(fd);
	usm_config_defaults(&cfg);
	assert_int_equal(usm_config_load(&cfg, path, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:2: oom: expected 'kernel', 'kill' or 'wait', got 'never'",
		 path);
	assert_string_equal(err, want);
	usm_config_free(&cfg);

	/* an empty file is the defaults */
	fd = open(path, O_WRONLY | O_TRUNC);
	close(fd);
	usm_config_defaults(&cfg);
	assert_int_equal(usm_config_load(&cfg, path, err, sizeof(err)), 0);
	assert_int_equal(cfg.memory_mib, 4096);
	usm_config_free(&cfg);
	unlink(path);

	usm_config_defaults(&cfg);
	assert_int_equal(usm_config_load(&cfg, "/nonexistent/usm.cfg", err, sizeof(err)), -1);
	assert_string_equal(err, "/nonexistent/usm.cfg: cannot open config: "
			    "No such file or directory");
	usm_config_free(&cfg);
}

/* ---- policies against the registry ----------------------------------- */

static void unknown_msg(char *buf, size_t len, const char *where, const char *name)
{
	char known[256];

	usm_registry_names(known, sizeof(known));
	snprintf(buf, len, "%s%sunknown policy '%s' (registered: %s)", where,
		 *where ? " " : "", name, known);
}

static void test_check_policies(void **state)
{
	struct usm_config cfg;
	char want[600], known[256];

	/* the built-in policies are registered by libusm's constructors */
	assert_non_null(usm_registry_find_alloc("first_fit"));
	assert_non_null(usm_registry_find_alloc("batch"));
	usm_registry_names(known, sizeof(known));
	assert_non_null(strstr(known, "first_fit"));
	assert_non_null(strstr(known, "batch"));

	usm_config_defaults(&cfg);
	assert_int_equal(usm_config_check_policies(&cfg, err, sizeof(err)), 0);
	usm_config_free(&cfg);

	parse_ok(&cfg, "policy batch\nprocess a first_fit\nprocess swap a no_such_swap\n"
		 "threshold 80 first_fit\n");
	assert_int_equal(usm_config_check_policies(&cfg, err, sizeof(err)), 0);
	usm_config_free(&cfg);

	parse_ok(&cfg, "# x\n\npolicy nosuch\n");
	assert_int_equal(usm_config_check_policies(&cfg, err, sizeof(err)), -1);
	unknown_msg(want, sizeof(want), SRC ":3:", "nosuch");
	assert_string_equal(err, want);
	usm_config_free(&cfg);

	parse_ok(&cfg, "policy batch\nprocess alloc x first_fit\nprocess y nope\n");
	assert_int_equal(usm_config_check_policies(&cfg, err, sizeof(err)), -1);
	unknown_msg(want, sizeof(want), SRC ":3:", "nope");
	assert_string_equal(err, want);
	usm_config_free(&cfg);

	/* thresholds are checked in pct order: line 2 (pct 20) first */
	parse_ok(&cfg, "threshold 90 bad90\nthreshold 20 bad20\n");
	assert_int_equal(usm_config_check_policies(&cfg, err, sizeof(err)), -1);
	unknown_msg(want, sizeof(want), SRC ":2:", "bad20");
	assert_string_equal(err, want);
	usm_config_free(&cfg);

	/* a default policy that came from no line has no location */
	usm_config_defaults(&cfg);
	snprintf(cfg.default_policy, sizeof(cfg.default_policy), "ghost");
	assert_int_equal(usm_config_check_policies(&cfg, err, sizeof(err)), -1);
	unknown_msg(want, sizeof(want), "", "ghost");
	assert_string_equal(err, want);
	usm_config_free(&cfg);

	/* names are case-sensitive */
	parse_ok(&cfg, "policy First_Fit\n");
	assert_int_equal(usm_config_check_policies(&cfg, err, sizeof(err)), -1);
	usm_config_free(&cfg);
}

/* Randomised lines must never crash, overflow or leak (ASan/LSan). */
static void test_fuzz_lines(void **state)
{
	static const char *const words[] = {
		"memory", "workers", "page", "mode", "oom", "policy", "process",
		"priority", "threshold", "plugin", "set", "alloc", "swap", "kill",
		"spinning", "4096", "0", "-1", "64", "100", "#", "\t", "\r",
		"first_fit", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "9999999999999999999999",
		"\n", " ", "x",
	};
	uint64_t s = 0x9e3779b97f4a7c15ull;

	for (int iter = 0; iter < 2000; iter++) {
		char text[512] = "";
		size_t len = 0;
		struct usm_config cfg;
		int nw = 1 + (int)(s % 24);

		for (int i = 0; i < nw; i++) {
			s ^= s << 13; s ^= s >> 7; s ^= s << 17;
			const char *w = words[s % (sizeof(words) / sizeof(words[0]))];
			len += (size_t)snprintf(text + len, sizeof(text) - len, "%s%s", w,
						(s >> 32) % 3 ? " " : "");
			if (len >= sizeof(text) - 1)
				break;
		}
		int rc = parse(&cfg, text);
		if (rc) {
			assert_int_equal(rc, -1);
			assert_true(!strncmp(err, SRC ":", strlen(SRC ":")));
		}
		usm_config_free(&cfg);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_empty_text),
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_name_limits_ok),
		cmocka_unit_test(test_eight_words),
		cmocka_unit_test(test_unknown_directive),
		cmocka_unit_test(test_eviction_directives),
		cmocka_unit_test(test_inline_text),
		cmocka_unit_test(test_arg_count),
		cmocka_unit_test(test_not_a_number),
		cmocka_unit_test(test_out_of_range),
		cmocka_unit_test(test_page),
		cmocka_unit_test(test_bad_words),
		cmocka_unit_test(test_duplicate_threshold),
		cmocka_unit_test(test_too_long),
		cmocka_unit_test(test_stops_at_first_error),
		cmocka_unit_test(test_short_err_buffer),
		cmocka_unit_test(test_apply_line),
		cmocka_unit_test(test_apply_line_policy_check),
		cmocka_unit_test(test_load),
		cmocka_unit_test(test_check_policies),
		cmocka_unit_test(test_fuzz_lines),
	};

	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
