/* SPDX-License-Identifier: MIT */
/*
 * agent/maps.c - parse /proc/self/maps (or smaps) into entries, with a
 * static buffer: it runs in the monitor thread while the instance may be
 * gone, and must not touch memory that could be registered (the heap).
 */
#include "agent/agent.h"
#include "mech/procfile.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#define CHUNK 65536

static char buf[CHUNK + 1];
static atomic_flag buf_lock = ATOMIC_FLAG_INIT;

static uint64_t hex(const char **p)
{
	uint64_t v = 0;

	for (;; (*p)++) {
		char c = **p;
		if (c >= '0' && c <= '9')
			v = v * 16 + (uint64_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v * 16 + (uint64_t)(c - 'a' + 10);
		else
			return v;
	}
}

/* "start-end perms offset dev inode   path" */
static void parse_header(const char *l, struct maps_entry *e)
{
	const char *p = l, *path;
	int field = 0;

	memset(e, 0, sizeof(*e));
	e->start = hex(&p);
	p++;
	e->end = hex(&p);
	p++;
	memcpy(e->perms, p, 4);
	/* skip perms, offset, dev, inode */
	for (path = p; *path && field < 4; field++) {
		while (*path && *path != ' ')
			path++;
		while (*path == ' ')
			path++;
	}
	e->heap = !strncmp(path, "[heap]", 6);
	e->stack = !strncmp(path, "[stack", 6);
	e->anon = *path == '\0' || e->heap;
}

static bool is_header(const char *l)
{
	const char *p = l;

	while ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))
		p++;
	return p != l && *p == '-';
}

struct walker {
	bool smaps, have;
	struct maps_entry cur;
	int (*fn)(const struct maps_entry *, void *);
	void *arg;
};

static int flush(struct walker *w)
{
	int rc = 0;

	if (w->have)
		rc = w->fn(&w->cur, w->arg);
	w->have = false;
	return rc;
}

static int line(struct walker *w, const char *l)
{
	if (is_header(l)) {
		int rc = flush(w);
		parse_header(l, &w->cur);
		w->have = true;
		return rc;
	}
	if (w->smaps && w->have && !strncmp(l, "VmFlags:", 8))
		w->cur.uffd_missing = strstr(l, " um") != NULL;
	return 0;
}

static int walk_line(char *l, void *arg)
{
	return line(arg, l);
}

int agent_maps_walk(bool smaps, int (*fn)(const struct maps_entry *, void *), void *arg)
{
	struct walker w = { .smaps = smaps, .fn = fn, .arg = arg };
	int rc;

	while (atomic_flag_test_and_set(&buf_lock))
		;
	rc = usm_proc_lines(smaps ? "/proc/self/smaps" : "/proc/self/maps", buf, sizeof(buf),
			    walk_line, &w);
	if (!rc)
		rc = flush(&w);
	atomic_flag_clear(&buf_lock);
	return rc < 0 ? -1 : rc;
}
