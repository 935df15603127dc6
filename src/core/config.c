/* SPDX-License-Identifier: MIT */
#include "core/config.h"
#include "core/registry.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TOKENS 8

struct parse_ctx {
	struct usm_config *cfg;
	const char *source;
	int line;
	char *err;
	size_t errlen;
};

static int fail(struct parse_ctx *pc, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int fail(struct parse_ctx *pc, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(pc->err, pc->errlen, "%s:%d: %s", pc->source, pc->line, msg);
	return -1;
}

void usm_config_defaults(struct usm_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->source, sizeof(cfg->source), "(defaults)");
	cfg->memory_mib = 4096;
	cfg->workers = 1;
	cfg->copiers = 1;
	cfg->wait_mode = USM_WAIT_HYBRID;
	cfg->spin_us = USM_SPIN_US_DEFAULT;
	cfg->page_size = 4096;
	cfg->oom = USM_OOM_KERNEL;
	snprintf(cfg->default_policy, sizeof(cfg->default_policy), "first_fit");
	cfg->wm_low_pct = 2;
	cfg->wm_high_pct = 4;
}

/* Parse a whole decimal number in [min, max]. */
static int parse_num(struct parse_ctx *pc, const char *what, const char *s,
		     long long min, long long max, long long *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno == ERANGE && end != s && !*end)
		return fail(pc, "%s: '%s' is out of range [%lld, %lld]", what, s, min, max);
	if (errno || end == s || *end)
		return fail(pc, "%s: expected a whole number, got '%s'", what, s);
	if (v < min || v > max)
		return fail(pc, "%s: %lld is out of range [%lld, %lld]", what, v, min, max);
	*out = v;
	return 0;
}

static int copy_name(struct parse_ctx *pc, const char *what, char *dst,
		     size_t cap, const char *src)
{
	if (strlen(src) >= cap)
		return fail(pc, "%s '%s' is longer than %zu characters", what, src, cap - 1);
	memcpy(dst, src, strlen(src) + 1);
	return 0;
}

/* Grow a dynamic array by one element; returns the new element, zeroed. */
static void *push(void **arr, size_t *n, size_t elem)
{
	void *p = realloc(*arr, (*n + 1) * elem);

	if (!p)
		return NULL;
	*arr = p;
	memset((char *)p + *n * elem, 0, elem);
	return (char *)p + (*n)++ * elem;
}

#define PUSH(pc, arr, n) ({ \
	void *e_ = push((void **)&(arr), &(n), sizeof(*(arr))); \
	if (!e_) \
		return fail(pc, "out of memory"); \
	e_; })

static int d_memory(struct parse_ctx *pc, int argc, char **argv)
{
	long long v;

	if (parse_num(pc, "memory <MiB>", argv[1], 1, 1LL << 30, &v))
		return -1;
	pc->cfg->memory_mib = (uint64_t)v;
	return 0;
}

static int d_workers(struct parse_ctx *pc, int argc, char **argv)
{
	long long v;

	if (parse_num(pc, "workers <n>", argv[1], 1, 64, &v))
		return -1;
	pc->cfg->workers = (unsigned)v;
	return 0;
}

static int d_copiers(struct parse_ctx *pc, int argc, char **argv)
{
	long long v;

	if (parse_num(pc, "copiers <n>", argv[1], 0, 64, &v))
		return -1;
	pc->cfg->copiers = (unsigned)v;
	return 0;
}

static int d_page(struct parse_ctx *pc, int argc, char **argv)
{
	long long v;

	if (parse_num(pc, "page <bytes>", argv[1], 1, 1LL << 30, &v))
		return -1;
	/* Frames are base pages: larger mappings are built by policies from
	 * several frames (usm_resolve with n > 1), as flexible huge pages. */
	if (v != 4096)
		return fail(pc, "page <bytes>: only 4096 (the base page size) is supported, got %lld", v);
	pc->cfg->page_size = (uint64_t)v;
	return 0;
}

const char *usm_wait_mode_name(enum usm_wait_mode m)
{
	switch (m) {
	case USM_WAIT_BLOCKING: return "blocking";
	case USM_WAIT_SPINNING: return "spinning";
	case USM_WAIT_HYBRID:   return "hybrid";
	case USM_WAIT_COLOCATE: return "colocate";
	}
	return "?";
}

static int d_mode(struct parse_ctx *pc, int argc, char **argv)
{
	long long us = USM_SPIN_US_DEFAULT;
	enum usm_wait_mode m;

	if (!strcmp(argv[1], "blocking"))
		m = USM_WAIT_BLOCKING;
	else if (!strcmp(argv[1], "spinning"))
		m = USM_WAIT_SPINNING;
	else if (!strcmp(argv[1], "hybrid"))
		m = USM_WAIT_HYBRID;
	else if (!strcmp(argv[1], "colocate"))
		m = USM_WAIT_COLOCATE;
	else
		return fail(pc, "mode: expected 'blocking', 'spinning', 'hybrid' or 'colocate', "
			    "got '%s'", argv[1]);
	if (argc > 2 && m != USM_WAIT_HYBRID && m != USM_WAIT_COLOCATE)
		return fail(pc, "mode %s takes no argument (only 'hybrid <us>' and "
			    "'colocate <us>' do), got '%s'", argv[1], argv[2]);
	if (argc > 2 && parse_num(pc, m == USM_WAIT_HYBRID ? "mode hybrid <us>" :
				  "mode colocate <us>", argv[2], 1, USM_SPIN_US_MAX, &us))
		return -1;
	pc->cfg->wait_mode = m;
	pc->cfg->spin_us = (unsigned)us;
	return 0;
}

static int d_host(struct parse_ctx *pc, int argc, char **argv)
{
	if (!strcmp(argv[1], "daemon"))
		pc->cfg->inline_host = false;
	else if (!strcmp(argv[1], "inline"))
		pc->cfg->inline_host = true;
	else
		return fail(pc, "host: expected 'daemon' or 'inline', got '%s'", argv[1]);
	return 0;
}

static int d_reclaim(struct parse_ctx *pc, int argc, char **argv)
{
	if (!strcmp(argv[1], "direct"))
		pc->cfg->reclaim_background = false;
	else if (!strcmp(argv[1], "background"))
		pc->cfg->reclaim_background = true;
	else
		return fail(pc, "reclaim: expected 'direct' or 'background', got '%s'", argv[1]);
	return 0;
}

static int d_oom(struct parse_ctx *pc, int argc, char **argv)
{
	if (!strcmp(argv[1], "kernel"))
		pc->cfg->oom = USM_OOM_KERNEL;
	else if (!strcmp(argv[1], "kill"))
		pc->cfg->oom = USM_OOM_RETRY;
	else if (!strcmp(argv[1], "wait"))
		pc->cfg->oom = USM_OOM_WAIT;
	else
		return fail(pc, "oom: expected 'kernel', 'kill' or 'wait', got '%s'", argv[1]);
	return 0;
}

/* The line to name in later messages (the policy check): -1 for a line
 * given on the command line, whose number means nothing. */
static int where(const struct parse_ctx *pc)
{
	return strcmp(pc->source, "command line") ? pc->line : -1;
}

static int d_policy(struct parse_ctx *pc, int argc, char **argv)
{
	pc->cfg->default_policy_line = where(pc);
	return copy_name(pc, "policy name", pc->cfg->default_policy,
			 sizeof(pc->cfg->default_policy), argv[1]);
}

/* key=value after the policy name: a parameter for that process only. */
static int parse_param(struct parse_ctx *pc, struct usm_cfg_process *p, const char *tok)
{
	const char *eq = strchr(tok, '=');
	struct usm_cfg_param *prm;

	if (!eq || eq == tok)
		return fail(pc, "process: expected key=value after the policy, got '%s'", tok);
	if (p->nparams == USM_PARAMS_MAX)
		return fail(pc, "process: at most %d key=value parameters", USM_PARAMS_MAX);
	prm = &p->params[p->nparams++];
	if ((size_t)(eq - tok) >= sizeof(prm->key))
		return fail(pc, "parameter name '%.*s' is longer than %zu characters",
			    (int)(eq - tok), tok, sizeof(prm->key) - 1);
	memcpy(prm->key, tok, (size_t)(eq - tok));
	prm->key[eq - tok] = '\0';
	return copy_name(pc, "parameter value", prm->value, sizeof(prm->value), eq + 1);
}

static int d_process(struct parse_ctx *pc, int argc, char **argv)
{
	struct usm_cfg_process *p;
	int i = 1;
	bool swap = false;

	if (!strcmp(argv[1], "alloc") || !strcmp(argv[1], "swap")) {
		swap = !strcmp(argv[1], "swap");
		i = 2;
	} else if (argc == 4 && !strchr(argv[3], '=')) {
		return fail(pc, "process: expected 'alloc' or 'swap', got '%s'", argv[1]);
	}
	if (argc - i < 2)
		return fail(pc, "expected 'process [alloc|swap] <name> <policy> [key=value]...'");
	p = PUSH(pc, pc->cfg->procs, pc->cfg->nprocs);
	p->swap = swap;
	p->line = where(pc);
	if (copy_name(pc, "process name", p->comm, sizeof(p->comm), argv[i]) ||
	    copy_name(pc, "policy name", p->policy, sizeof(p->policy), argv[i + 1]))
		return -1;
	for (int k = i + 2; k < argc; k++)
		if (parse_param(pc, p, argv[k]))
			return -1;
	return 0;
}

static int d_priority(struct parse_ctx *pc, int argc, char **argv)
{
	struct usm_cfg_priority *p;
	long long v;

	if (parse_num(pc, "priority <name> <n>", argv[2], INT_MIN, INT_MAX, &v))
		return -1;
	p = PUSH(pc, pc->cfg->prios, pc->cfg->nprios);
	p->priority = (int)v;
	return copy_name(pc, "process name", p->comm, sizeof(p->comm), argv[1]);
}

static int cmp_threshold(const void *a, const void *b)
{
	const struct usm_cfg_threshold *x = a, *y = b;

	return (int)x->pct - (int)y->pct;
}

static int d_threshold(struct parse_ctx *pc, int argc, char **argv)
{
	struct usm_cfg_threshold *t;
	long long v;

	if (parse_num(pc, "threshold <pct> <policy>", argv[1], 1, 100, &v))
		return -1;
	for (size_t i = 0; i < pc->cfg->nthresh; i++)
		if (pc->cfg->thresh[i].pct == (unsigned)v)
			return pc->cfg->thresh[i].line < 0 ?
			       fail(pc, "threshold %lld%% is already set on the command line", v) :
			       fail(pc, "threshold %lld%% is already set on line %d",
				    v, pc->cfg->thresh[i].line);
	t = PUSH(pc, pc->cfg->thresh, pc->cfg->nthresh);
	t->pct = (unsigned)v;
	t->line = where(pc);
	if (copy_name(pc, "policy name", t->policy, sizeof(t->policy), argv[2]))
		return -1;
	qsort(pc->cfg->thresh, pc->cfg->nthresh, sizeof(*t), cmp_threshold);
	return 0;
}

static int d_plugin(struct parse_ctx *pc, int argc, char **argv)
{
	char **slot = PUSH(pc, pc->cfg->plugins, pc->cfg->nplugins);

	*slot = strdup(argv[1]);
	return *slot ? 0 : fail(pc, "out of memory");
}

static int d_set(struct parse_ctx *pc, int argc, char **argv)
{
	struct usm_cfg_set *s = NULL;

	for (size_t i = 0; i < pc->cfg->nsets; i++)
		if (!strcmp(pc->cfg->sets[i].key, argv[1]))
			s = &pc->cfg->sets[i];
	if (!s)
		s = PUSH(pc, pc->cfg->sets, pc->cfg->nsets);
	if (copy_name(pc, "set key", s->key, sizeof(s->key), argv[1]))
		return -1;
	return copy_name(pc, "set value", s->value, sizeof(s->value), argv[2]);
}

static int d_swapdev(struct parse_ctx *pc, int argc, char **argv)
{
	struct usm_swapdev_cfg *d;
	char why[192];

	if (pc->cfg->nswapdevs == USM_SWAP_MAX_DEVS)
		return fail(pc, "swapdev: at most %d devices", USM_SWAP_MAX_DEVS);
	d = &pc->cfg->swapdevs[pc->cfg->nswapdevs];
	if (usm_swapdev_parse(argv + 1, argc - 1, d, why, sizeof(why)))
		return fail(pc, "%s", why);
	d->line = where(pc);
	pc->cfg->nswapdevs++;
	return 0;
}

static int d_swap_policy(struct parse_ctx *pc, int argc, char **argv)
{
	pc->cfg->swap_policy_line = where(pc);
	return copy_name(pc, "swap policy name", pc->cfg->swap_policy,
			 sizeof(pc->cfg->swap_policy), argv[1]);
}

static int d_watermarks(struct parse_ctx *pc, int argc, char **argv)
{
	long long lo, hi;

	if (parse_num(pc, "watermarks <low%>", argv[1], 0, 50, &lo) ||
	    parse_num(pc, "watermarks <high%>", argv[2], 1, 50, &hi))
		return -1;
	if (hi < lo)
		return fail(pc, "watermarks: high (%lld%%) is below low (%lld%%)", hi, lo);
	pc->cfg->wm_low_pct = (unsigned)lo;
	pc->cfg->wm_high_pct = (unsigned)hi;
	return 0;
}

static int d_limit(struct parse_ctx *pc, int argc, char **argv)
{
	struct usm_cfg_limit *l;
	long long v;

	if (parse_num(pc, "limit <name> <MiB>", argv[2], 1, 1LL << 30, &v))
		return -1;
	l = PUSH(pc, pc->cfg->limits, pc->cfg->nlimits);
	l->mib = (uint64_t)v;
	return copy_name(pc, "process name", l->comm, sizeof(l->comm), argv[1]);
}

static int d_trace(struct parse_ctx *pc, int argc, char **argv)
{
	struct usm_cfg_trace *t = PUSH(pc, pc->cfg->traces, pc->cfg->ntraces);

	if (copy_name(pc, "process name", t->comm, sizeof(t->comm), argv[1]))
		return -1;
	return copy_name(pc, "trace file", t->path, sizeof(t->path), argv[2]);
}

struct directive {
	const char *name;
	int min_args, max_args;       /* not counting the name itself */
	const char *usage;
	int (*fn)(struct parse_ctx *, int, char **);
};

static const struct directive directives[] = {
	{ "memory",    1, 1, "memory <MiB>", d_memory },
	{ "workers",   1, 1, "workers <n>", d_workers },
	{ "copiers",   1, 1, "copiers <n>", d_copiers },
	{ "page",      1, 1, "page <bytes>", d_page },
	{ "mode",      1, 2, "mode blocking|spinning|hybrid [us]|colocate [us]", d_mode },
	{ "oom",       1, 1, "oom kernel|kill|wait", d_oom },
	{ "host",      1, 1, "host daemon|inline", d_host },
	{ "policy",    1, 1, "policy <name>", d_policy },
	{ "process",   2, 7, "process [alloc|swap] <name> <policy> [key=value]...", d_process },
	{ "priority",  2, 2, "priority <name> <n>", d_priority },
	{ "threshold", 2, 2, "threshold <pct> <policy>", d_threshold },
	{ "plugin",    1, 1, "plugin <path.so>", d_plugin },
	{ "set",       2, 2, "set <key> <value>", d_set },
	{ "swapdev",   2, 6, "swapdev file|zmem <path|-> <size> [option]...", d_swapdev },
	{ "swap_policy", 1, 1, "swap_policy <name>", d_swap_policy },
	{ "watermarks", 2, 2, "watermarks <low%> <high%>", d_watermarks },
	{ "reclaim",   1, 1, "reclaim direct|background", d_reclaim },
	{ "limit",     2, 2, "limit <name> <MiB>", d_limit },
	{ "trace",     2, 2, "trace <name> <file>", d_trace },
};

static int tokenize(char *line, char **tok)
{
	int n = 0;
	char *hash = strchr(line, '#'), *save = NULL;

	if (hash)
		*hash = '\0';
	for (char *s = strtok_r(line, " \t\r\n", &save); s;
	     s = strtok_r(NULL, " \t\r\n", &save)) {
		if (n == MAX_TOKENS)
			return MAX_TOKENS + 1;
		tok[n++] = s;
	}
	return n;
}

static int parse_line(struct parse_ctx *pc, char *line)
{
	char *tok[MAX_TOKENS];
	int n = tokenize(line, tok);

	if (n == 0)
		return 0;
	if (n > MAX_TOKENS)
		return fail(pc, "too many words on the line");
	for (size_t i = 0; i < sizeof(directives) / sizeof(directives[0]); i++) {
		const struct directive *d = &directives[i];

		if (strcmp(tok[0], d->name))
			continue;
		if (n - 1 < d->min_args || n - 1 > d->max_args)
			return fail(pc, "expected '%s'", d->usage);
		return d->fn(pc, n, tok);
	}
	return fail(pc, "unknown directive '%s' (expected one of memory, workers, copiers, page, "
		    "mode, host, oom, policy, process, priority, threshold, plugin, set, swapdev, "
		    "swap_policy, watermarks, reclaim, limit, trace)", tok[0]);
}

int usm_config_parse(struct usm_config *cfg, const char *text, const char *source,
		     char *err, size_t errlen)
{
	struct parse_ctx pc = { cfg, source, 0, err, errlen };
	char *copy = strdup(text), *save = NULL;
	int ret = 0;

	if (!copy)
		return fail(&pc, "out of memory");
	snprintf(cfg->source, sizeof(cfg->source), "%s", source);
	/* strtok_r on "\n" would merge empty lines and break line numbers. */
	for (char *line = copy; line && !ret; line = save) {
		save = strchr(line, '\n');
		if (save)
			*save++ = '\0';
		pc.line++;
		ret = parse_line(&pc, line);
	}
	free(copy);
	return ret;
}

int usm_config_apply_line(struct usm_config *cfg, const char *line,
			  char *err, size_t errlen)
{
	struct parse_ctx pc = { cfg, "command line", 1, err, errlen };
	char *copy = strdup(line);
	int ret;

	if (!copy)
		return fail(&pc, "out of memory");
	ret = parse_line(&pc, copy);
	free(copy);
	return ret;
}

int usm_config_load(struct usm_config *cfg, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char *text = NULL;
	size_t cap = 0;
	ssize_t len;
	int ret;

	if (!f) {
		snprintf(err, errlen, "%s: cannot open config: %s", path, strerror(errno));
		return -1;
	}
	len = getdelim(&text, &cap, '\0', f);
	if (len < 0 && ferror(f)) {
		snprintf(err, errlen, "%s: cannot read config: %s", path, strerror(errno));
		fclose(f);
		free(text);
		return -1;
	}
	fclose(f);
	/* At EOF (an empty file) getdelim returns -1 but may have allocated
	 * text without writing to it: parse "" then, never the buffer. */
	ret = usm_config_parse(cfg, len > 0 ? text : "", path, err, errlen);
	free(text);
	return ret;
}

static int check_policy(const struct usm_config *cfg, const char *name, int line,
			char *err, size_t errlen)
{
	char known[256];

	if (usm_registry_find_alloc(name))
		return 0;
	usm_registry_names(known, sizeof(known));
	if (line > 0)
		snprintf(err, errlen, "%s:%d: unknown policy '%s' (registered: %s)",
			 cfg->source, line, name, known);
	else if (line < 0)
		snprintf(err, errlen, "command line: unknown policy '%s' (registered: %s)",
			 name, known);
	else
		snprintf(err, errlen, "unknown policy '%s' (registered: %s)", name, known);
	return -1;
}

int usm_config_check_policies(const struct usm_config *cfg, char *err, size_t errlen)
{
	if (check_policy(cfg, cfg->default_policy, cfg->default_policy_line, err, errlen))
		return -1;
	for (size_t i = 0; i < cfg->nprocs; i++) {
		/* Swap policies are accepted and reported; eviction is not
		 * part of this instance yet, so they are not looked up. */
		if (!cfg->procs[i].swap &&
		    check_policy(cfg, cfg->procs[i].policy, cfg->procs[i].line, err, errlen))
			return -1;
	}
	for (size_t i = 0; i < cfg->nthresh; i++)
		if (check_policy(cfg, cfg->thresh[i].policy, cfg->thresh[i].line, err, errlen))
			return -1;
	return 0;
}

const struct usm_cfg_process *usm_config_process_for(const struct usm_config *cfg,
						     const char *comm)
{
	/* The last matching line wins, like a later assignment overriding. */
	const struct usm_cfg_process *found = NULL;

	for (size_t i = 0; i < cfg->nprocs; i++)
		if (!cfg->procs[i].swap && !strcmp(cfg->procs[i].comm, comm))
			found = &cfg->procs[i];
	return found;
}

const char *usm_config_policy_for(const struct usm_config *cfg, const char *comm)
{
	const struct usm_cfg_process *p = usm_config_process_for(cfg, comm);

	return p ? p->policy : NULL;
}

int usm_config_priority_for(const struct usm_config *cfg, const char *comm)
{
	int prio = 0;

	for (size_t i = 0; i < cfg->nprios; i++)
		if (!strcmp(cfg->prios[i].comm, comm))
			prio = cfg->prios[i].priority;
	return prio;
}

uint64_t usm_config_limit_for(const struct usm_config *cfg, const char *comm)
{
	uint64_t mib = 0;

	for (size_t i = 0; i < cfg->nlimits; i++)
		if (!strcmp(cfg->limits[i].comm, comm))
			mib = cfg->limits[i].mib;
	return mib * (1024 * 1024 / cfg->page_size);
}

const char *usm_config_trace_for(const struct usm_config *cfg, const char *comm)
{
	const char *path = NULL;

	for (size_t i = 0; i < cfg->ntraces; i++)
		if (!strcmp(cfg->traces[i].comm, comm))
			path = cfg->traces[i].path;
	return path;
}

const char *usm_config_lookup(const struct usm_config *cfg, const char *key)
{
	for (size_t i = 0; i < cfg->nsets; i++)
		if (!strcmp(cfg->sets[i].key, key))
			return cfg->sets[i].value;
	return NULL;
}

void usm_config_free(struct usm_config *cfg)
{
	for (size_t i = 0; i < cfg->nplugins; i++)
		free(cfg->plugins[i]);
	free(cfg->plugins);
	free(cfg->procs);
	free(cfg->prios);
	free(cfg->thresh);
	free(cfg->sets);
	free(cfg->limits);
	free(cfg->traces);
	cfg->limits = NULL;
	cfg->traces = NULL;
	cfg->nlimits = cfg->ntraces = 0;
	cfg->plugins = NULL;
	cfg->procs = NULL;
	cfg->prios = NULL;
	cfg->thresh = NULL;
	cfg->sets = NULL;
	cfg->nplugins = cfg->nprocs = cfg->nprios = cfg->nthresh = cfg->nsets = 0;
}

bool usm_config_inline_for(const struct usm_config *cfg, const char *comm)
{
	const struct usm_cfg_process *p = usm_config_process_for(cfg, comm);

	for (unsigned i = 0; p && i < p->nparams; i++)
		if (!strcmp(p->params[i].key, "host"))
			return !strcmp(p->params[i].value, "inline");
	return cfg->inline_host;
}

/* Append a formatted line; false when it does not fit. */
static bool append(char *buf, size_t len, size_t *off, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static bool append(char *buf, size_t len, size_t *off, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf + *off, len - *off, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len - *off)
		return false;
	*off += (size_t)n;
	return true;
}

/*
 * What the in-process host needs to evict: its compressed devices (it
 * keeps them in its own memory; file devices serve the daemon host only),
 * the swap policy, the watermarks and comm's limit.
 */
static bool inline_evict_text(const struct usm_config *cfg, const char *comm, char *buf,
			      size_t len, size_t *off)
{
	bool ok = true;
	unsigned zmem = 0;
	uint64_t limit;

	for (unsigned i = 0; ok && i < cfg->nswapdevs; i++) {
		const struct usm_swapdev_cfg *d = &cfg->swapdevs[i];
		if (strcmp(d->kind, "zmem"))
			continue;
		ok = append(buf, len, off, "swapdev zmem - %llu priority=%d codec=%s\n",
			    (unsigned long long)d->size, d->priority,
			    d->codec == USM_CODEC_ZSTD ? "zstd" : "lz4");
		zmem++;
	}
	if (!zmem)
		return ok;
	if (ok && cfg->swap_policy[0])
		ok = append(buf, len, off, "swap_policy %s\n", cfg->swap_policy);
	if (ok)
		ok = append(buf, len, off, "watermarks %u %u\nreclaim %s\n", cfg->wm_low_pct,
			    cfg->wm_high_pct, cfg->reclaim_background ? "background" : "direct");
	limit = usm_config_limit_for(cfg, comm) * cfg->page_size / (1024 * 1024);
	if (ok && limit)
		ok = append(buf, len, off, "limit %s %llu\n", comm, (unsigned long long)limit);
	return ok;
}

int usm_config_inline_text(const struct usm_config *cfg, const char *comm,
			   const char *policy, char *buf, size_t len)
{
	const struct usm_cfg_process *p = usm_config_process_for(cfg, comm);
	size_t off = 0;
	bool ok;

	ok = append(buf, len, &off, "memory %llu\npage %llu\noom %s\npolicy %s\n",
		    (unsigned long long)cfg->memory_mib, (unsigned long long)cfg->page_size,
		    cfg->oom == USM_OOM_KERNEL ? "kernel" : cfg->oom == USM_OOM_RETRY ? "kill" : "wait",
		    policy);
	for (size_t i = 0; ok && i < cfg->nplugins; i++)
		ok = append(buf, len, &off, "plugin %s\n", cfg->plugins[i]);
	for (size_t i = 0; ok && i < cfg->nsets; i++)
		ok = append(buf, len, &off, "set %s %s\n", cfg->sets[i].key, cfg->sets[i].value);
	if (ok && p) {
		ok = append(buf, len, &off, "process alloc %s %s", p->comm, p->policy);
		for (unsigned i = 0; ok && i < p->nparams; i++)
			ok = append(buf, len, &off, " %s=%s", p->params[i].key, p->params[i].value);
		ok = ok && append(buf, len, &off, "\n");
	}
	return ok && inline_evict_text(cfg, comm, buf, len, &off) ? (int)off : -1;
}

long long usm_config_int_value(const char *v, const char *what, long long def, int *err)
{
	char *end;
	long long n;

	if (err)
		*err = 0;
	if (!v)
		return def;
	errno = 0;
	n = strtoll(v, &end, 0);
	if (errno || end == v || *end) {
		usm_log(USM_LOG_ERROR, "%s: '%s' is not a whole number", what, v);
		if (err)
			*err = 1;
		return def;
	}
	return n;
}
