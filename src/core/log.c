/* SPDX-License-Identifier: MIT */
/*
 * core/log.c - one line per message on stderr: "usmd[instance] level: ...".
 * USM_LOG=error|warn|info|debug sets the level (default warn).
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <usm/usm.h>

static _Atomic int level = -1;   /* -1: USM_LOG not read yet */
static char tag[80] = "usm";

void usm_log_set_tag(const char *t)
{
	snprintf(tag, sizeof(tag), "%s", t);
}

static int current_level(void)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };
	const char *env;
	int lv = atomic_load_explicit(&level, memory_order_relaxed);

	if (lv >= 0)
		return lv;
	/* Any thread may get here first, several at once: each computes the
	 * same value and stores it once. */
	lv = USM_LOG_WARN;
	env = getenv("USM_LOG");
	for (int i = 0; env && i < 4; i++)
		if (!strcmp(env, names[i]))
			lv = i;
	atomic_store_explicit(&level, lv, memory_order_relaxed);
	return lv;
}

void usm_log(enum usm_log_level lvl, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	char buf[512];
	va_list ap;
	int n;

	if ((int)lvl > current_level())
		return;
	n = snprintf(buf, sizeof(buf), "%s %s: ", tag, names[lvl]);
	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
	va_end(ap);
	/* One write per line, so lines from several threads do not mix. */
	fprintf(stderr, "%s\n", buf);
}
