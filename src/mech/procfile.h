/* SPDX-License-Identifier: MIT */
/*
 * mech/procfile.h - read a /proc file line by line without allocating.
 *
 * The agent walks /proc/self/maps from its monitor thread and the
 * in-process host reads smaps from inside the managed process, where the
 * heap is registered memory: neither may call malloc (nor stdio, which
 * does).  The caller provides the buffer.
 */
#ifndef USM_MECH_PROCFILE_H
#define USM_MECH_PROCFILE_H

#include <stddef.h>

/*
 * Call fn on each line of path (without its '\n'), reading through buf of
 * cap bytes; stop early when fn returns non-zero and return that.  A line
 * longer than cap - 1 ends the walk.  Returns 0, fn's value, or -errno.
 */
int usm_proc_lines(const char *path, char *buf, size_t cap,
		   int (*fn)(char *line, void *arg), void *arg);

#endif /* USM_MECH_PROCFILE_H */
