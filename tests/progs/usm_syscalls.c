/* SPDX-License-Identifier: MIT */
/*
 * usm_syscalls - system calls on memory that is swapped out.
 *
 *   usm_syscalls MB DIR
 *
 * Fills MB MiB with a pattern (give it twice the budget), then hands the
 * kernel pieces of its first half, each right after reading through the
 * second half has pushed the first out: write(2) and pwrite(2) of
 * buffers, writev and sendmsg with the iovecs and buffers there, read(2)
 * and recvmsg into such pages, open(2)/stat(2)/rename(2)/unlink(2) with
 * the paths there, nanosleep with its timespec there, execve of /bin/sh
 * with its argument strings and vector there.  Each result is checked
 * byte for byte, and at the end the whole area once more.  Prints
 * "syscalls: OK N calls checked, M on memory swapped out" (M: calls whose
 * memory mincore showed out just before) or "syscalls: FAIL ..." (exit 1).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096ul
#define PIECE (3 * PAGE + 123)         /* spans pages, unaligned end */

static unsigned char *area;
static size_t npages;
static unsigned calls, outs;

static void die(const char *what)
{
	printf("syscalls: FAIL %s: %s\n", what, strerror(errno));
	fflush(stdout);
	exit(1);
}

static void fail(const char *what, size_t page)
{
	printf("syscalls: FAIL %s (page %zu)\n", what, page);
	fflush(stdout);
	exit(1);
}

static unsigned char byte_of(size_t off)
{
	return (unsigned char)((off * 2654435761u) >> 13);
}

static void fill(void)
{
	for (size_t off = 0; off < npages * PAGE; off++)
		area[off] = byte_of(off);
}

/* The byte range [off, off + len) of the area still holds the pattern. */
static int intact(size_t off, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (area[off + i] != byte_of(off + i))
			return 0;
	return 1;
}

/* A piece of the first half (17 bytes into a page, so it spans pages). */
static size_t piece(unsigned k)
{
	return ((size_t)(k * 7919u) % (npages / 2 - 8)) * PAGE + 17;
}

/* Read through the second half: under a budget of half the area, the
 * first half is what leaves memory meanwhile. */
static void push_out(void)
{
	for (size_t p = npages / 2; p < npages; p++)
		(void)*(volatile unsigned char *)(area + p * PAGE);
}

/* Push the first half out; count the call if addr's page is out now. */
static void push_out_before(const void *addr)
{
	unsigned char in = 1;

	push_out();
	if (!mincore((void *)((uintptr_t)addr & ~(PAGE - 1)), PAGE, &in) && !(in & 1))
		outs++;
}

/* A scratch copy of the pattern at off, compared against the area. */
static void check_file(int fd, size_t off, size_t len, const char *what)
{
	unsigned char buf[PIECE];

	if (pread(fd, buf, len, 0) != (ssize_t)len)
		die(what);
	for (size_t i = 0; i < len; i++)
		if (buf[i] != byte_of(off + i))
			fail(what, off / PAGE);
	calls++;
}

static void test_write(const char *dir, unsigned k)
{
	char path[512];
	size_t off = piece(k);
	int fd;

	snprintf(path, sizeof(path), "%s/w.%u", dir, k);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		die("open for write");
	push_out_before(area + off);
	if (write(fd, area + off, PIECE) != (ssize_t)PIECE)
		die("write from swapped-out memory");
	check_file(fd, off, PIECE, "write(2) from swapped-out memory");
	push_out_before(area + off + PAGE);
	if (pwrite(fd, area + off + PAGE, PAGE, 0) != (ssize_t)PAGE)
		die("pwrite");
	check_file(fd, off + PAGE, PAGE, "pwrite(2) from swapped-out memory");
	close(fd);
	unlink(path);
}

/* writev with the iovec array itself in swapped-out memory. */
static void test_writev(const char *dir, unsigned k)
{
	char path[512];
	size_t off = piece(k), ioff = piece(k + 1000);
	struct iovec *iov = (struct iovec *)(area + (ioff & ~(PAGE - 1)));
	struct iovec saved[2];
	int fd;

	memcpy(saved, iov, sizeof(saved));
	iov[0] = (struct iovec){ area + off, PAGE };
	iov[1] = (struct iovec){ area + off + PAGE, PAGE };
	snprintf(path, sizeof(path), "%s/v.%u", dir, k);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		die("open for writev");
	push_out_before(iov);
	if (writev(fd, iov, 2) != (ssize_t)(2 * PAGE))
		die("writev");
	check_file(fd, off, 2 * PAGE, "writev(2) with iovecs in swapped-out memory");
	memcpy(iov, saved, sizeof(saved));
	close(fd);
	unlink(path);
}

/* read(2) over a piece, then the data written back is the pattern again. */
static void test_read(const char *dir, unsigned k)
{
	char path[512];
	size_t off = piece(k);
	int fd;

	snprintf(path, sizeof(path), "%s/r.%u", dir, k);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		die("open for read");
	for (size_t i = 0; i < PIECE; i++) {
		unsigned char b = byte_of(off + i);
		if (write(fd, &b, 1) != 1)
			die("write of the expected bytes");
	}
	memset(area + off, 0, 1);               /* one byte off, on purpose */
	push_out_before(area + off + PAGE);
	if (pread(fd, area + off, PIECE, 0) != (ssize_t)PIECE)
		die("read into swapped-out memory");
	if (!intact(off, PIECE))
		fail("read(2) into swapped-out memory", off / PAGE);
	calls++;
	close(fd);
	unlink(path);
}

static void test_socket(unsigned k)
{
	size_t off = piece(k), roff = piece(k + 2000);
	unsigned char save[PAGE];
	struct iovec out = { area + off, PAGE }, in = { area + roff, PAGE };
	struct msghdr mo = { .msg_iov = &out, .msg_iovlen = 1 };
	struct msghdr mi = { .msg_iov = &in, .msg_iovlen = 1 };
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv))
		die("socketpair");
	memcpy(save, area + roff, PAGE);
	push_out_before(area + off);
	if (sendmsg(sv[0], &mo, 0) != (ssize_t)PAGE)
		die("sendmsg from swapped-out memory");
	if (recvmsg(sv[1], &mi, 0) != (ssize_t)PAGE)
		die("recvmsg into swapped-out memory");
	if (memcmp(area + roff, area + off, PAGE))
		fail("sendmsg/recvmsg through swapped-out memory", roff / PAGE);
	memcpy(area + roff, save, PAGE);
	calls++;
	close(sv[0]);
	close(sv[1]);
}

/* Paths kept in swapped-out memory. */
static void test_paths(const char *dir, unsigned k)
{
	size_t poff = piece(k + 3000), qoff = poff + PAGE;
	char *p = (char *)area + poff, *q = (char *)area + qoff;
	unsigned char save[2 * PAGE];
	struct stat st;
	int fd;

	memcpy(save, area + poff, sizeof(save));
	snprintf(p, PAGE - 64, "%s/p.%u", dir, k);
	snprintf(q, PAGE - 64, "%s/q.%u", dir, k);
	push_out_before(p);
	fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		die("open(2) of a path in swapped-out memory");
	close(fd);
	if (stat(p, &st) || rename(p, q) || access(q, F_OK) || unlink(q))
		die("stat/rename/access/unlink of paths in swapped-out memory");
	calls++;
	memcpy(area + poff, save, sizeof(save));
}

static void test_sleep(unsigned k)
{
	size_t off = piece(k + 4000) & ~(PAGE - 1);
	struct timespec *ts = (struct timespec *)(area + off);
	struct timespec save = *ts;

	*ts = (struct timespec){ 0, 1000 };
	push_out_before(ts);
	if (nanosleep(ts, NULL))
		die("nanosleep with its timespec in swapped-out memory");
	*ts = save;
	calls++;
}

/* execve with its argument strings and vector in swapped-out memory. */
static void test_exec(unsigned k)
{
	size_t off = piece(k + 5000) & ~(PAGE - 1);
	char *base = (char *)area + off, **argv = (char **)(base + 1024);
	int st;
	pid_t pid;

	strcpy(base, "/bin/sh");
	strcpy(base + 64, "-c");
	strcpy(base + 128, "exit 7");
	argv[0] = base;
	argv[1] = base + 64;
	argv[2] = base + 128;
	argv[3] = NULL;
	push_out_before(argv);
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		execve(argv[0], argv, (char *[]){ NULL });
		_exit(99);
	}
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 7) {
		printf("syscalls: FAIL execve with arguments in swapped-out memory: status 0x%x\n", st);
		exit(1);
	}
	calls++;
	fill();                              /* the parent's strings go away */
}

int main(int argc, char **argv)
{
	unsigned rounds = 16;

	if (argc != 3) {
		fprintf(stderr, "usage: %s MB DIR\n", argv[0]);
		return 2;
	}
	npages = (size_t)atoi(argv[1]) * 256;
	area = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		    -1, 0);
	if (area == MAP_FAILED || npages < 64)
		die("mmap");
	fill();
	for (unsigned k = 0; k < rounds; k++) {
		test_write(argv[2], k);
		test_writev(argv[2], k);
		test_read(argv[2], k);
		test_socket(k);
		test_paths(argv[2], k);
		test_sleep(k);
		if (k % 4 == 0)
			test_exec(k);
	}
	for (size_t p = 0; p < npages; p++)
		if (!intact(p * PAGE, PAGE))
			fail("the area after all calls", p);
	printf("syscalls: OK %u calls checked, %u on memory swapped out\n", calls, outs);
	return 0;
}
