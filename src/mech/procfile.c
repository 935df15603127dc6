/* SPDX-License-Identifier: MIT */
#include "mech/procfile.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

int usm_proc_lines(const char *path, char *buf, size_t cap,
		   int (*fn)(char *line, void *arg), void *arg)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;
	size_t have = 0;

	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n = read(fd, buf + have, cap - 1 - have);
		char *start = buf, *nl;

		if (n <= 0)
			break;
		have += (size_t)n;
		buf[have] = '\0';
		while (!rc && (nl = memchr(start, '\n', have - (size_t)(start - buf)))) {
			*nl = '\0';
			rc = fn(start, arg);
			start = nl + 1;
		}
		have -= (size_t)(start - buf);
		memmove(buf, start, have);
		if (rc || have == cap - 1)
			break;
	}
	close(fd);
	return rc;
}
