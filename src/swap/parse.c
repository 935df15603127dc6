/* SPDX-License-Identifier: MIT */
/*
 * swap/parse.c - the words of one `swapdev` config line:
 *
 *   file <path> <size> [priority=N] [direct]
 *   zmem - <size> [priority=N] [codec=lz4|zstd]
 *
 * Sizes are bytes, or a number with a K, M or G suffix (powers of 1024).
 * Every error message quotes the word that was wrong; the config parser
 * puts "file:line: " in front.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "swap/swapdev.h"

#define PRIORITY_MIN (-32768)
#define PRIORITY_MAX 32767

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* "123", "64K", "512M", "2G" -> bytes; -EINVAL on junk, -ERANGE on 0 or
 * overflow. */
static int parse_size(const char *s, uint64_t *out)
{
	unsigned shift = 0;
	unsigned long long v;
	char *end;

	if (*s < '0' || *s > '9')      /* strtoull would take "-1" and " 1" */
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	switch (*end) {
	case '\0':
		break;
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	default:
		return -EINVAL;
	}
	if (*end)
		return -EINVAL;
	if (errno || v == 0 || v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = (uint64_t)v << shift;
	return 0;
}

static int parse_priority(const char *s, int *out)
{
	long v;
	char *end;

	if (!*s)
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < PRIORITY_MIN || v > PRIORITY_MAX)
		return -1;
	*out = (int)v;
	return 0;
}

static int parse_option(const char *w, struct usm_swapdev_cfg *out, bool zmem, char *err,
			size_t errlen)
{
	if (!strncmp(w, "priority=", 9)) {
		if (parse_priority(w + 9, &out->priority))
			return fail(err, errlen, "swapdev: bad priority '%s' (expected an integer "
				    "from %d to %d)", w, PRIORITY_MIN, PRIORITY_MAX);
		return 0;
	}
	if (!strncmp(w, "codec=", 6)) {
		if (!zmem)
			return fail(err, errlen, "swapdev file: option '%s' applies only to "
				    "zmem devices", w);
		if (!strcmp(w + 6, "lz4"))
			out->codec = USM_CODEC_LZ4;
		else if (!strcmp(w + 6, "zstd"))
			out->codec = USM_CODEC_ZSTD;
		else
			return fail(err, errlen, "swapdev zmem: unknown codec '%s' "
				    "(expected lz4 or zstd)", w + 6);
		return 0;
	}
	if (!strcmp(w, "direct")) {
		if (zmem)
			return fail(err, errlen, "swapdev zmem: option 'direct' applies only "
				    "to file devices");
		out->direct = true;
		return 0;
	}
	return fail(err, errlen, "swapdev %s: unknown option '%s' (expected priority=N%s)",
		    out->kind, w, zmem ? " or codec=lz4|zstd" : " or direct");
}

int usm_swapdev_parse(char *const *words, int nwords, struct usm_swapdev_cfg *out,
		      char *err, size_t errlen)
{
	int line = out->line;     /* the caller may have set it already */
	bool zmem;

	memset(out, 0, sizeof(*out));
	out->line = line;
	if (nwords < 1)
		return fail(err, errlen, "swapdev: expected 'file <path> <size>' or "
			    "'zmem - <size>'");
	if (strcmp(words[0], "file") && strcmp(words[0], "zmem"))
		return fail(err, errlen, "swapdev: unknown device kind '%s' (expected file "
			    "or zmem)", words[0]);
	zmem = !strcmp(words[0], "zmem");
	snprintf(out->kind, sizeof(out->kind), "%s", words[0]);
	out->codec = zmem ? USM_CODEC_LZ4 : USM_CODEC_NONE;

	if (nwords < 2)
		return fail(err, errlen, "swapdev %s: missing %s", out->kind,
			    zmem ? "'-' before the size" : "<path>");
	if (zmem && strcmp(words[1], "-"))
		return fail(err, errlen, "swapdev zmem: expected '-' where a file device "
			    "has its path, got '%s'", words[1]);
	if (!zmem && !words[1][0])
		return fail(err, errlen, "swapdev file: empty <path>");
	if (strlen(words[1]) >= sizeof(out->path))
		return fail(err, errlen, "swapdev file: path '%.40s...' is longer than %zu "
			    "bytes", words[1], sizeof(out->path) - 1);
	snprintf(out->path, sizeof(out->path), "%s", words[1]);

	if (nwords < 3)
		return fail(err, errlen, "swapdev %s: missing <size> after '%s'", out->kind,
			    words[1]);
	switch (parse_size(words[2], &out->size)) {
	case 0:
		break;
	case -ERANGE:
		return fail(err, errlen, "swapdev %s: size '%s' out of range (more than 0, "
			    "less than 16 EiB)", out->kind, words[2]);
	default:
		return fail(err, errlen, "swapdev %s: bad size '%s' (expected bytes, or a "
			    "number with K, M or G)", out->kind, words[2]);
	}

	for (int i = 3; i < nwords; i++)
		if (parse_option(words[i], out, zmem, err, errlen))
			return -1;
	return 0;
}
