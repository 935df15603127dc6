/* SPDX-License-Identifier: MIT */
/*
 * cli/stat.c - `usm stat`, `usm top`, `usm stop`, `usm policies`.
 */
#include "cli/cli.h"
#include "core/config.h"
#include "core/registry.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REPLY_MAX (sizeof(struct usm_msg_stats_reply) + \
		   USM_STATS_MAX_PROCS * sizeof(struct usm_stat_proc))

int cli_sock_path(const char *instance, char *buf, size_t len)
{
	if (usm_sock_path(instance, buf, len)) {
		fprintf(stderr, "usm: bad instance name '%s' (1-63 of A-Z a-z 0-9 _ - .)\n",
			instance);
		return -1;
	}
	return 0;
}

static int request(const char *sock_path, enum usm_msg_type type, void *reply,
		   size_t cap, char *err, size_t errlen)
{
	struct usm_msg m;
	int s = usm_sock_connect(sock_path);
	ssize_t n;
	const char *bad;

	if (s < 0) {
		snprintf(err, errlen, "no instance at %s: %s", sock_path, strerror(-s));
		return -1;
	}
	usm_msg_init(&m, type, sizeof(m));
	if (usm_sock_send(s, &m, sizeof(m), -1) < 0 ||
	    (n = usm_sock_recv(s, reply, cap, NULL)) <= 0) {
		snprintf(err, errlen, "instance at %s did not answer", sock_path);
		close(s);
		return -1;
	}
	close(s);
	bad = usm_msg_check(reply, (size_t)n);
	if (bad) {
		snprintf(err, errlen, "bad answer from %s: %s", sock_path, bad);
		return -1;
	}
	if (((struct usm_msg *)reply)->type == USM_MSG_ACK &&
	    ((struct usm_msg_ack *)reply)->status) {
		snprintf(err, errlen, "%s", ((struct usm_msg_ack *)reply)->error);
		return -1;
	}
	return 0;
}

struct usm_msg_stats_reply *cli_fetch_stats(const char *sock_path, char *err, size_t errlen)
{
	struct usm_msg_stats_reply *r = calloc(1, REPLY_MAX);

	if (!r) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (request(sock_path, USM_MSG_STATS, r, REPLY_MAX, err, errlen) ||
	    r->h.type != USM_MSG_STATS_REPLY ||
	    r->h.size != sizeof(*r) + r->inst.nprocs * sizeof(struct usm_stat_proc)) {
		if (!err[0])
			snprintf(err, errlen, "malformed statistics from %s", sock_path);
		free(r);
		return NULL;
	}
	return r;
}

static double ratio_pct(uint64_t part, uint64_t whole)
{
	return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

static void print_swap(FILE *f, const struct usm_stat_instance *i)
{
	const struct usm_swap_stats *s = &i->swap;

	fprintf(f, "  swap     policy %s, %u device(s): %llu pages evicted, %llu swapped out "
		"now, slots %llu/%llu, %.1f MiB stored (ratio %.2f)\n",
		i->swap_policy, i->swap_devs, (unsigned long long)i->c.evicted,
		(unsigned long long)i->c.swapped_now, (unsigned long long)s->slots_used,
		(unsigned long long)s->slots_total, (double)s->bytes_used / 1048576.0,
		s->stored_bytes ? (double)s->raw_bytes / (double)s->stored_bytes : 0.0);
	fprintf(f, "  swap-in  %llu faults, %llu pages (%llu prefetched), %llu from pages "
		"in flight; %llu victims not evictable; %llu frames beyond the budget\n",
		(unsigned long long)i->c.swapin_faults, (unsigned long long)i->c.swapped_in,
		(unsigned long long)(i->c.swapped_in > i->c.swapin_faults ?
				     i->c.swapped_in - i->c.swapin_faults : 0),
		(unsigned long long)i->c.swapcache_hits, (unsigned long long)i->c.evict_failed,
		(unsigned long long)i->c.reserve_frames);
	fprintf(f, "  access   %llu scans (%.1f ms), %llu frames found written\n",
		(unsigned long long)i->access_scans, (double)i->access_scan_ns / 1e6,
		(unsigned long long)i->access_marked);
}

/* "blocking", "spinning" or "hybrid (50 us)". */
static const char *wait_mode_text(const struct usm_stat_instance *i, char *buf, size_t len)
{
	if (i->wait_mode == USM_WAIT_HYBRID || i->wait_mode == USM_WAIT_COLOCATE)
		snprintf(buf, len, "%s (%u us)", usm_wait_mode_name(i->wait_mode), i->spin_us);
	else
		snprintf(buf, len, "%s", usm_wait_mode_name(i->wait_mode));
	return buf;
}

void cli_print_stats(FILE *f, const struct usm_msg_stats_reply *r)
{
	char mode[32];

	const struct usm_stat_instance *i = &r->inst;
	uint64_t used = i->frames_total - i->frames_free;

	fprintf(f, "instance %s (pid %d, up %.1f s): %u worker(s), %s, policy %s (active %s), oom %s\n",
		i->name, i->pid, (double)i->uptime_ns / 1e9, i->workers,
		wait_mode_text(i, mode, sizeof(mode)), i->default_policy, i->active_policy, i->oom);
	fprintf(f, "  budget   %llu frames of %llu B (%llu MiB): %llu in use (%.1f%%), peak %llu\n",
		(unsigned long long)i->frames_total, (unsigned long long)i->page_size,
		(unsigned long long)(i->frames_total * i->page_size >> 20),
		(unsigned long long)used, ratio_pct(used, i->frames_total),
		(unsigned long long)i->c.frames_peak);
	fprintf(f, "  faults   %llu, pages mapped %llu (%llu as 2 MiB pages), latency p50 %llu ns, "
		"p99 %llu ns\n",
		(unsigned long long)i->c.faults, (unsigned long long)i->c.pages_mapped,
		(unsigned long long)i->c.huge_pages * 512,
		(unsigned long long)i->c.lat_p50_ns, (unsigned long long)i->c.lat_p99_ns);
	fprintf(f, "  events   remove %llu, unmap %llu, remap %llu; frames freed %llu; "
		"oom %llu (kernel pages %llu)\n",
		(unsigned long long)i->c.ev_remove, (unsigned long long)i->c.ev_unmap,
		(unsigned long long)i->c.ev_remap, (unsigned long long)i->c.pages_freed,
		(unsigned long long)i->c.oom_events, (unsigned long long)i->c.kernel_pages);
	if (i->swap_devs)
		print_swap(f, i);
	fprintf(f, "  %7s %-15s %-12s %6s %10s %10s %10s %9s %9s %8s %8s\n", "PID", "COMM",
		"POLICY", "STATE", "FAULTS", "MAPPED", "FRAMES", "P50(ns)", "P99(ns)", "MANAGED",
		"BLOAT");
	for (uint32_t k = 0; k < i->nprocs; k++) {
		const struct usm_stat_proc *p = &r->procs[k];
		fprintf(f, "  %7d %-15.15s %-12.12s %6s %10llu %10llu %10llu %9llu %9llu %7.1f%% %7.1f%%\n",
			p->pid, p->comm, p->policy,
			p->alive ? (p->inline_host ? "live/i" : "live") : (p->inline_host ? "exit/i" : "exit"),
			(unsigned long long)p->c.faults, (unsigned long long)p->c.pages_mapped,
			(unsigned long long)p->c.frames_in_use, (unsigned long long)p->c.lat_p50_ns,
			(unsigned long long)p->c.lat_p99_ns,
			ratio_pct(p->c.usm_pages_at_peak, p->c.rss_anon_peak_pages),
			ratio_pct(p->c.bloat_pages, p->c.frames_in_use));
	}
}

static void json_counters(FILE *f, const struct usm_stat_counters *c)
{
	fprintf(f, "\"faults\":%llu,\"pages_mapped\":%llu,\"frames_in_use\":%llu,"
		"\"frames_peak\":%llu,\"oom_events\":%llu,\"kernel_pages\":%llu,"
		"\"pages_freed\":%llu,\"eexist\":%llu,\"huge_pages\":%llu,\"bloat_pages\":%llu,"
		"\"evicted\":%llu,\"swapin_faults\":%llu,\"swapped_in\":%llu,"
		"\"swapcache_hits\":%llu,\"swapped_now\":%llu,\"evict_failed\":%llu,"
		"\"copier_windows\":%llu,\"reserve_frames\":%llu,"
		"\"events\":{\"fault\":%llu,\"remove\":%llu,\"unmap\":%llu,\"remap\":%llu},"
		"\"latency_ns\":{\"p50\":%llu,\"p99\":%llu,\"max\":%llu}",
		(unsigned long long)c->faults, (unsigned long long)c->pages_mapped,
		(unsigned long long)c->frames_in_use, (unsigned long long)c->frames_peak,
		(unsigned long long)c->oom_events, (unsigned long long)c->kernel_pages,
		(unsigned long long)c->pages_freed, (unsigned long long)c->eexist,
		(unsigned long long)c->huge_pages, (unsigned long long)c->bloat_pages,
		(unsigned long long)c->evicted, (unsigned long long)c->swapin_faults,
		(unsigned long long)c->swapped_in, (unsigned long long)c->swapcache_hits,
		(unsigned long long)c->swapped_now, (unsigned long long)c->evict_failed,
		(unsigned long long)c->copier_windows, (unsigned long long)c->reserve_frames,
		(unsigned long long)c->faults, (unsigned long long)c->ev_remove,
		(unsigned long long)c->ev_unmap, (unsigned long long)c->ev_remap,
		(unsigned long long)c->lat_p50_ns, (unsigned long long)c->lat_p99_ns,
		(unsigned long long)c->lat_max_ns);
}

/* Names are [A-Za-z0-9_.-] or a comm; escape what JSON needs anyway. */
static void json_string(FILE *f, const char *s, size_t max)
{
	fputc('"', f);
	for (size_t i = 0; i < max && s[i]; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void json_swap(FILE *f, const struct usm_stat_instance *i)
{
	const struct usm_swap_stats *s = &i->swap;

	fprintf(f, "\"swap\":{\"policy\":");
	json_string(f, i->swap_policy, sizeof(i->swap_policy));
	fprintf(f, ",\"devices\":%u,\"slots_used\":%llu,\"slots_total\":%llu,"
		"\"bytes_used\":%llu,\"bytes_total\":%llu,\"stored\":%llu,\"loaded\":%llu,"
		"\"raw_bytes\":%llu,\"stored_bytes\":%llu,\"store_errors\":%llu,"
		"\"load_errors\":%llu,\"access_scans\":%llu,\"access_marked\":%llu},",
		i->swap_devs,
		(unsigned long long)s->slots_used, (unsigned long long)s->slots_total,
		(unsigned long long)s->bytes_used, (unsigned long long)s->bytes_total,
		(unsigned long long)s->stored, (unsigned long long)s->loaded,
		(unsigned long long)s->raw_bytes, (unsigned long long)s->stored_bytes,
		(unsigned long long)s->store_errors, (unsigned long long)s->load_errors,
		(unsigned long long)i->access_scans, (unsigned long long)i->access_marked);
}

void cli_print_stats_json(FILE *f, const struct usm_msg_stats_reply *r)
{
	const struct usm_stat_instance *i = &r->inst;

	fprintf(f, "{\"instance\":");
	json_string(f, i->name, sizeof(i->name));
	fprintf(f, ",\"pid\":%d,\"uptime_s\":%.3f,\"workers\":%u,\"mode\":\"%s\","
		"\"spin_us\":%u,\"page_size\":%llu,\"memory_frames\":%llu,\"frames_free\":%llu,"
		"\"default_policy\":", i->pid, (double)i->uptime_ns / 1e9, i->workers,
		usm_wait_mode_name(i->wait_mode), i->wait_mode == USM_WAIT_HYBRID || i->wait_mode == USM_WAIT_COLOCATE ? i->spin_us : 0,
		(unsigned long long)i->page_size,
		(unsigned long long)i->frames_total, (unsigned long long)i->frames_free);
	json_string(f, i->default_policy, sizeof(i->default_policy));
	fprintf(f, ",\"active_policy\":");
	json_string(f, i->active_policy, sizeof(i->active_policy));
	fprintf(f, ",\"oom\":\"%s\",", i->oom);
	if (i->swap_devs)
		json_swap(f, i);
	json_counters(f, &i->c);
	fprintf(f, ",\"processes\":[");
	for (uint32_t k = 0; k < i->nprocs; k++) {
		const struct usm_stat_proc *p = &r->procs[k];
		fprintf(f, "%s{\"pid\":%d,\"comm\":", k ? "," : "", p->pid);
		json_string(f, p->comm, sizeof(p->comm));
		fprintf(f, ",\"policy\":");
		json_string(f, p->policy, sizeof(p->policy));
		fprintf(f, ",\"alive\":%s,\"inline\":%s,\"attached_s\":%.3f,\"rss_anon_pages_peak\":%llu,"
			"\"usm_pages_at_peak\":%llu,", p->alive ? "true" : "false",
			p->inline_host ? "true" : "false",
			(double)p->attached_ns / 1e9,
			(unsigned long long)p->c.rss_anon_peak_pages,
			(unsigned long long)p->c.usm_pages_at_peak);
		json_counters(f, &p->c);
		fputc('}', f);
	}
	fprintf(f, "]}\n");
}

/* Live instances in the runtime directory, for `usm stat` with no -i. */
static int for_each_instance(int (*fn)(const char *path, void *), void *arg)
{
	char dir[200], path[320];
	struct dirent *d;
	DIR *dp;
	int found = 0;

	if (usm_sock_dir(dir, sizeof(dir)) || !(dp = opendir(dir)))
		return 0;
	while ((d = readdir(dp))) {
		size_t n = strlen(d->d_name);
		if (n < 6 || strcmp(d->d_name + n - 5, ".sock"))
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", dir, d->d_name) >= (int)sizeof(path))
			continue;
		found += fn(path, arg) == 0;
	}
	closedir(dp);
	return found;
}

struct stat_opts {
	const char *instance;
	int json;
	double interval;
	long count;
};

static int show_one(const char *path, void *arg)
{
	struct stat_opts *o = arg;
	char err[256] = "";
	struct usm_msg_stats_reply *r = cli_fetch_stats(path, err, sizeof(err));

	if (!r)
		return -1;
	if (o->json)
		cli_print_stats_json(stdout, r);
	else
		cli_print_stats(stdout, r);
	free(r);
	return 0;
}

static int parse_stat_opts(int argc, char **argv, struct stat_opts *o, const char *cmd)
{
	static const struct option longopts[] = {
		{ "instance", required_argument, NULL, 'i' },
		{ "json", no_argument, NULL, 'j' },
		{ "delay", required_argument, NULL, 'd' },
		{ "count", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	char *end;

	optind = 1;
	while ((c = getopt_long(argc, argv, "i:jd:n:", longopts, NULL)) != -1) {
		switch (c) {
		case 'i': o->instance = optarg; break;
		case 'j': o->json = 1; break;
		case 'd':
			o->interval = strtod(optarg, &end);
			if (*end || o->interval <= 0) {
				fprintf(stderr, "usm %s: -d wants seconds > 0, got '%s'\n", cmd, optarg);
				return -1;
			}
			break;
		case 'n':
			o->count = strtol(optarg, &end, 10);
			if (*end || o->count <= 0) {
				fprintf(stderr, "usm %s: -n wants a count > 0, got '%s'\n", cmd, optarg);
				return -1;
			}
			break;
		default:
			fprintf(stderr, "usage: usm %s [-i NAME]%s\n", cmd,
				!strcmp(cmd, "top") ? " [-d SECONDS] [-n COUNT]" : " [--json]");
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "usm %s: unexpected argument '%s'\n", cmd, argv[optind]);
		return -1;
	}
	return 0;
}

int cmd_stat(int argc, char **argv)
{
	struct stat_opts o = { 0 };
	char path[256], err[256] = "";
	struct usm_msg_stats_reply *r;

	if (parse_stat_opts(argc, argv, &o, "stat"))
		return 2;
	if (!o.instance) {
		if (for_each_instance(show_one, &o))
			return 0;
		fprintf(stderr, "usm stat: no instance is running\n");
		return 1;
	}
	if (cli_sock_path(o.instance, path, sizeof(path)))
		return 2;
	r = cli_fetch_stats(path, err, sizeof(err));
	if (!r) {
		fprintf(stderr, "usm stat: %s\n", err);
		return 1;
	}
	if (o.json)
		cli_print_stats_json(stdout, r);
	else
		cli_print_stats(stdout, r);
	free(r);
	return 0;
}

int cmd_top(int argc, char **argv)
{
	struct stat_opts o = { .instance = "default", .interval = 1.0 };
	char path[256], err[256] = "";

	if (parse_stat_opts(argc, argv, &o, "top") || cli_sock_path(o.instance, path, sizeof(path)))
		return 2;
	for (long n = 0; !o.count || n < o.count; n++) {
		struct usm_msg_stats_reply *r = cli_fetch_stats(path, err, sizeof(err));

		if (!r) {
			fprintf(stderr, "usm top: %s\n", err);
			return 1;
		}
		if (isatty(STDOUT_FILENO))
			fputs("\033[H\033[2J", stdout);
		cli_print_stats(stdout, r);
		fflush(stdout);
		free(r);
		if (!o.count || n + 1 < o.count)
			usleep((useconds_t)(o.interval * 1e6));
	}
	return 0;
}

int cmd_stop(int argc, char **argv)
{
	struct stat_opts o = { .instance = "default" };
	char path[256], err[256] = "";
	struct usm_msg_ack ack;

	if (parse_stat_opts(argc, argv, &o, "stop") || cli_sock_path(o.instance, path, sizeof(path)))
		return 2;
	if (request(path, USM_MSG_SHUTDOWN, &ack, sizeof(ack), err, sizeof(err))) {
		fprintf(stderr, "usm stop: %s\n", err);
		return 1;
	}
	return 0;
}

int cmd_policies(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	char swap[512];

	for (size_t i = 0; i < usm_registry_count(); i++) {
		struct usm_policy *p = usm_registry_at(i);
		printf("%s%s\n", p->name, p == usm_registry_default_alloc() ? " (default)" : "");
	}
	usm_registry_swap_names(swap, sizeof(swap));
	printf("eviction (swap_policy): %s (default fifo)\n", swap);
	return 0;
}
