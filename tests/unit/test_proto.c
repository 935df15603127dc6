/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for ipc/sock.c: message validation, socket paths and
 * instance names, and sending messages with and without a descriptor.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ipc/proto.h"

/* ---- usm_msg_init / usm_msg_check ------------------------------------ */

static const char *check(const void *m, size_t len)
{
	return usm_msg_check(m, len);
}

static void test_msg_init(void **state)
{
	struct usm_msg_hello h;

	memset(&h, 0xa5, sizeof(h));
	usm_msg_init(&h.h, USM_MSG_HELLO, sizeof(h));
	assert_int_equal(h.h.magic, USM_PROTO_MAGIC);
	assert_int_equal(h.h.type, USM_MSG_HELLO);
	assert_int_equal(h.h.version, USM_PROTO_VERSION);
	assert_int_equal(h.h.size, sizeof(h));
	assert_int_equal(h.h.reserved, 0);
	/* the whole message is zeroed, not just the header */
	assert_int_equal(h.pid, 0);
	assert_int_equal(h.features, 0);
	assert_int_equal(h.policy[31], 0);
	assert_null(check(&h, sizeof(h)));
	/* "USM1" in memory order */
	assert_memory_equal(&h.h.magic, "USM1", 4);
}

static void test_msg_check_valid(void **state)
{
	union {
		struct usm_msg m;
		struct usm_msg_hello hello;
		struct usm_msg_ack ack;
		struct usm_msg_stats_reply reply;
		char raw[sizeof(struct usm_msg_stats_reply) + 3 * sizeof(struct usm_stat_proc)];
	} u;
	static const enum usm_msg_type bare[] = {
		USM_MSG_PING, USM_MSG_PONG, USM_MSG_STATS, USM_MSG_SHUTDOWN,
	};

	usm_msg_init(&u.hello.h, USM_MSG_HELLO, sizeof(u.hello));
	assert_null(check(&u, sizeof(u.hello)));
	usm_msg_init(&u.ack.h, USM_MSG_ACK, sizeof(u.ack));
	assert_null(check(&u, sizeof(u.ack)));
	for (size_t i = 0; i < sizeof(bare) / sizeof(bare[0]); i++) {
		usm_msg_init(&u.m, bare[i], sizeof(u.m));
		assert_null(check(&u, sizeof(u.m)));
	}
	/* STATS_REPLY is variable-length: header plus process entries */
	usm_msg_init(&u.reply.h, USM_MSG_STATS_REPLY, sizeof(u.reply));
	assert_null(check(&u, sizeof(u.reply)));
	usm_msg_init(&u.reply.h, USM_MSG_STATS_REPLY, sizeof(u.raw));
	assert_null(check(&u, sizeof(u.raw)));
}

static void test_msg_check_malformed(void **state)
{
	union {
		struct usm_msg m;
		struct usm_msg_hello hello;
		struct usm_msg_ack ack;
		struct usm_msg_stats_reply reply;
		char raw[sizeof(struct usm_msg_stats_reply) + 64];
	} u;

	/* short: anything under the 16-byte header */
	usm_msg_init(&u.m, USM_MSG_PING, sizeof(u.m));
	for (size_t len = 0; len < sizeof(struct usm_msg); len++)
		assert_string_equal(check(&u, len), "message shorter than its header");

	/* bad magic */
	usm_msg_init(&u.m, USM_MSG_PING, sizeof(u.m));
	u.m.magic = 0x314d5356u;
	assert_string_equal(check(&u, sizeof(u.m)), "bad magic (not a USM client?)");
	u.m.magic = 0;
	assert_string_equal(check(&u, sizeof(u.m)), "bad magic (not a USM client?)");
	u.m.magic = __builtin_bswap32(USM_PROTO_MAGIC);
	assert_string_equal(check(&u, sizeof(u.m)), "bad magic (not a USM client?)");

	/* bad version */
	usm_msg_init(&u.m, USM_MSG_PING, sizeof(u.m));
	u.m.version = USM_PROTO_VERSION + 1;
	assert_string_equal(check(&u, sizeof(u.m)),
			    "protocol version mismatch (agent and daemon from different builds?)");
	u.m.version = 0;
	assert_string_equal(check(&u, sizeof(u.m)),
			    "protocol version mismatch (agent and daemon from different builds?)");

	/* size field vs. the length that arrived */
	usm_msg_init(&u.hello.h, USM_MSG_HELLO, sizeof(u.hello));
	assert_string_equal(check(&u, sizeof(u.hello) - 1),
			    "size field does not match the message length");
	assert_string_equal(check(&u, sizeof(u.hello) + 1),
			    "size field does not match the message length");
	u.hello.h.size = 0;
	assert_string_equal(check(&u, sizeof(u.hello)),
			    "size field does not match the message length");

	/* unknown types, with a consistent size */
	static const uint16_t unknown[] = { 0, USM_MSG_TYPES_END, 100, 0xffff };
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		usm_msg_init(&u.m, USM_MSG_PING, sizeof(u.m));
		u.m.type = unknown[i];
		assert_string_equal(check(&u, sizeof(u.m)), "unknown message type");
	}

	/* wrong size per type (size field consistent with the length) */
	static const struct { uint16_t type; size_t len; } wrong[] = {
		{ USM_MSG_HELLO, sizeof(struct usm_msg) },
		{ USM_MSG_HELLO, sizeof(struct usm_msg_hello) - 1 },
		{ USM_MSG_HELLO, sizeof(struct usm_msg_hello) + 8 },
		{ USM_MSG_ACK, sizeof(struct usm_msg) },
		{ USM_MSG_ACK, sizeof(struct usm_msg_ack) + 1 },
		{ USM_MSG_ACK, sizeof(struct usm_msg_hello) },
		{ USM_MSG_PING, sizeof(struct usm_msg) + 1 },
		{ USM_MSG_PONG, sizeof(struct usm_msg) + 8 },
		{ USM_MSG_STATS, sizeof(struct usm_msg_hello) },
		{ USM_MSG_SHUTDOWN, sizeof(struct usm_msg) + 4 },
		{ USM_MSG_STATS_REPLY, sizeof(struct usm_msg) },
		{ USM_MSG_STATS_REPLY, sizeof(struct usm_msg_stats_reply) - 1 },
		{ USM_MSG_PIN, sizeof(struct usm_msg) },
		{ USM_MSG_PIN, sizeof(struct usm_msg_pin) - 1 },
	};
	for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
		memset(&u, 0, sizeof(u));
		usm_msg_init(&u.m, (enum usm_msg_type)wrong[i].type, wrong[i].len);
		assert_string_equal(check(&u, wrong[i].len), "wrong size for its type");
	}

	/* the checks run in order: magic before version before size */
	usm_msg_init(&u.m, USM_MSG_PING, sizeof(u.m));
	u.m.magic = 1;
	u.m.version = 9;
	u.m.size = 3;
	assert_string_equal(check(&u, sizeof(u.m)), "bad magic (not a USM client?)");
	u.m.magic = USM_PROTO_MAGIC;
	assert_string_equal(check(&u, sizeof(u.m)),
			    "protocol version mismatch (agent and daemon from different builds?)");
}

/* ---- names and paths ------------------------------------------------- */

static void test_instance_names(void **state)
{
	static const char *const good[] = {
		"default", "a", "A", "0", "a.", "a.b", "my-instance_2", "x..y",
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_",  /* 63 */
	};
	static const char *const bad[] = {
		"", ".", "..", ".hidden", "a/b", "/abs", "../up", "a b", "a\tb", "a\nb",
		"caf\xc3\xa9", "a*", "a:b", "a@b", "a$",
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_x",  /* 64 */
	};

	assert_int_equal(strlen(good[8]), 63);
	assert_int_equal(strlen(bad[15]), 64);
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (!usm_instance_name_ok(good[i]))
			print_error("rejected '%s'\n", good[i]);
		assert_true(usm_instance_name_ok(good[i]));
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (usm_instance_name_ok(bad[i]))
			print_error("accepted '%s'\n", bad[i]);
		assert_false(usm_instance_name_ok(bad[i]));
	}
}

static char *saved_runtime, *saved_xdg;

static int save_env(void **state)
{
	const char *r = getenv("USM_RUNTIME_DIR"), *x = getenv("XDG_RUNTIME_DIR");

	saved_runtime = r ? strdup(r) : NULL;
	saved_xdg = x ? strdup(x) : NULL;
	return 0;
}

static int restore_env(void **state)
{
	if (saved_runtime)
		setenv("USM_RUNTIME_DIR", saved_runtime, 1);
	else
		unsetenv("USM_RUNTIME_DIR");
	if (saved_xdg)
		setenv("XDG_RUNTIME_DIR", saved_xdg, 1);
	else
		unsetenv("XDG_RUNTIME_DIR");
	free(saved_runtime);
	free(saved_xdg);
	return 0;
}

static void test_sock_path(void **state)
{
	char buf[256], want[400], dir[300];

	setenv("USM_RUNTIME_DIR", "/tmp/usm-unit", 1);
	assert_int_equal(usm_sock_dir(buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/tmp/usm-unit");
	assert_int_equal(usm_sock_path("default", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/tmp/usm-unit/default.sock");
	assert_int_equal(usm_sock_path("a.b-c_d", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/tmp/usm-unit/a.b-c_d.sock");

	/* bad names never make a path */
	assert_int_equal(usm_sock_path("", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(usm_sock_path(".x", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(usm_sock_path("../etc/x", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(usm_sock_path("a/b", buf, sizeof(buf)), -EINVAL);

	/* the caller's buffer is too small */
	assert_int_equal(usm_sock_path("default", buf, 10), -ENAMETOOLONG);
	assert_int_equal(usm_sock_path("default", buf, strlen("/tmp/usm-unit/default.sock")),
			 -ENAMETOOLONG);
	assert_int_equal(usm_sock_path("default", buf, strlen("/tmp/usm-unit/default.sock") + 1),
			 0);

	/* sun_path is 108 bytes: a 107-character path fits, 108 does not */
	assert_int_equal(sizeof(((struct sockaddr_un *)0)->sun_path), 108);
	memset(dir, 'd', 91);
	dir[0] = '/';
	dir[91] = '\0';
	setenv("USM_RUNTIME_DIR", dir, 1);
	assert_int_equal(usm_sock_path("0123456789", buf, sizeof(buf)), 0);
	assert_int_equal(strlen(buf), 107);
	snprintf(want, sizeof(want), "%s/0123456789.sock", dir);
	assert_string_equal(buf, want);
	assert_int_equal(usm_sock_path("0123456789a", buf, sizeof(buf)), -ENAMETOOLONG);
	/* a directory longer than usm_sock_path's own buffer */
	memset(dir, 'd', 250);
	dir[0] = '/';
	dir[250] = '\0';
	setenv("USM_RUNTIME_DIR", dir, 1);
	assert_int_equal(usm_sock_dir(buf, sizeof(buf)), 0);
	assert_int_equal(usm_sock_dir(buf, 100), -ENAMETOOLONG);
	assert_int_equal(usm_sock_path("x", buf, sizeof(buf)), -ENAMETOOLONG);

	/* empty USM_RUNTIME_DIR is ignored; then root / XDG / /tmp */
	setenv("USM_RUNTIME_DIR", "", 1);
	setenv("XDG_RUNTIME_DIR", "/run/user/4242", 1);
	assert_int_equal(usm_sock_path("i", buf, sizeof(buf)), 0);
	assert_string_equal(buf, geteuid() == 0 ? "/run/usm/i.sock" : "/run/user/4242/usm/i.sock");
	unsetenv("USM_RUNTIME_DIR");
	unsetenv("XDG_RUNTIME_DIR");
	assert_int_equal(usm_sock_path("i", buf, sizeof(buf)), 0);
	if (geteuid() == 0)
		snprintf(want, sizeof(want), "/run/usm/i.sock");
	else
		snprintf(want, sizeof(want), "/tmp/usm-%u/i.sock", (unsigned)geteuid());
	assert_string_equal(buf, want);
}

static void test_connect_errors(void **state)
{
	char longp[200];

	assert_int_equal(usm_sock_connect("/nonexistent/usm-unit.sock"), -ENOENT);
	memset(longp, 'p', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = '\0';
	assert_int_equal(usm_sock_connect(longp), -ENAMETOOLONG);
}

/* ---- send / recv over a socketpair ----------------------------------- */

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;           /* the DIR's own descriptor */
}

static void pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
}

static void test_roundtrip_no_fd(void **state)
{
	int sv[2], fd = 1234, before = count_fds();
	struct usm_msg_hello h, got;
	ssize_t n;

	pair(sv);
	usm_msg_init(&h.h, USM_MSG_HELLO, sizeof(h));
	h.pid = 4321;
	h.ppid = 1;
	h.features = 0x1ffff;
	snprintf(h.comm, sizeof(h.comm), "torture");
	snprintf(h.policy, sizeof(h.policy), "batch");
	assert_int_equal(usm_sock_send(sv[0], &h, sizeof(h), -1), 0);
	memset(&got, 0, sizeof(got));
	n = usm_sock_recv(sv[1], &got, sizeof(got), &fd);
	assert_int_equal(n, sizeof(h));
	assert_int_equal(fd, -1);
	assert_memory_equal(&got, &h, sizeof(h));
	assert_null(usm_msg_check(&got, (size_t)n));

	/* fd pointer may be NULL */
	assert_int_equal(usm_sock_send(sv[1], &h, sizeof(h.h), -1), 0);
	assert_int_equal(usm_sock_recv(sv[0], &got, sizeof(got), NULL), sizeof(h.h));

	/* SEQPACKET keeps boundaries: two messages arrive as two */
	struct usm_msg a, b;
	usm_msg_init(&a, USM_MSG_PING, sizeof(a));
	usm_msg_init(&b, USM_MSG_PONG, sizeof(b));
	assert_int_equal(usm_sock_send(sv[0], &a, sizeof(a), -1), 0);
	assert_int_equal(usm_sock_send(sv[0], &b, sizeof(b), -1), 0);
	assert_int_equal(usm_sock_recv(sv[1], &got, sizeof(got), &fd), sizeof(a));
	assert_int_equal(got.h.type, USM_MSG_PING);
	assert_int_equal(usm_sock_recv(sv[1], &got, sizeof(got), &fd), sizeof(b));
	assert_int_equal(got.h.type, USM_MSG_PONG);

	/* a message larger than the buffer is an error, not a silent cut */
	assert_int_equal(usm_sock_send(sv[0], &h, sizeof(h), -1), 0);
	assert_int_equal(usm_sock_recv(sv[1], &got, sizeof(struct usm_msg), &fd), -EMSGSIZE);
	assert_int_equal(fd, -1);

	/* EOF */
	close(sv[0]);
	assert_int_equal(usm_sock_recv(sv[1], &got, sizeof(got), &fd), 0);
	assert_int_equal(fd, -1);
	/* sending to a closed peer: an error, and no SIGPIPE */
	assert_int_equal(usm_sock_send(sv[1], &h, sizeof(h), -1), -EPIPE);
	close(sv[1]);
	assert_int_equal(count_fds(), before);
}

static void test_roundtrip_fd(void **state)
{
	int sv[2], pfd[2], fd = -1, before = count_fds();
	struct usm_msg_hello h, got;
	char buf[16];

	pair(sv);
	assert_int_equal(pipe2(pfd, O_NONBLOCK), 0);
	usm_msg_init(&h.h, USM_MSG_HELLO, sizeof(h));
	h.pid = 77;
	assert_int_equal(usm_sock_send(sv[0], &h, sizeof(h), pfd[1]), 0);
	close(pfd[1]);                          /* only the copy in flight remains */
	assert_int_equal(usm_sock_recv(sv[1], &got, sizeof(got), &fd), sizeof(h));
	assert_int_equal(got.pid, 77);
	assert_true(fd >= 0);
	/* received with close-on-exec */
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	/* usable: it is the pipe's write end */
	assert_int_equal(write(fd, "hello", 5), 5);
	assert_int_equal(read(pfd[0], buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "hello", 5);
	/* and the only one: closing it ends the pipe */
	close(fd);
	assert_int_equal(read(pfd[0], buf, sizeof(buf)), 0);
	close(pfd[0]);

	/* an fd that came with a message nobody asked for is closed */
	assert_int_equal(pipe2(pfd, O_NONBLOCK), 0);
	assert_int_equal(usm_sock_send(sv[0], &h, sizeof(h), pfd[1]), 0);
	close(pfd[1]);
	assert_int_equal(usm_sock_recv(sv[1], &got, sizeof(got), NULL), sizeof(h));
	assert_int_equal(read(pfd[0], buf, sizeof(buf)), 0);
	close(pfd[0]);

	/* an fd with a truncated message: error, and the caller gets the fd
	 * to close (as serve_client/answer_agent do) */
	assert_int_equal(pipe2(pfd, O_NONBLOCK), 0);
	assert_int_equal(usm_sock_send(sv[0], &h, sizeof(h), pfd[1]), 0);
	close(pfd[1]);
	fd = -1;
	assert_int_equal(usm_sock_recv(sv[1], &got, sizeof(got.h), &fd), -EMSGSIZE);
	if (fd >= 0)
		close(fd);
	assert_int_equal(read(pfd[0], buf, sizeof(buf)), 0);
	close(pfd[0]);

	/* a bad fd is refused by the kernel: the send fails */
	assert_int_equal(usm_sock_send(sv[0], &h, sizeof(h), 987), -EBADF);

	close(sv[0]);
	close(sv[1]);
	assert_int_equal(count_fds(), before);
}

/* Several fds in one message: the first is handed over, the rest closed. */
static void test_extra_fds_closed(void **state)
{
	int sv[2], p[3][2], fd = -1, before = count_fds();
	struct usm_msg m, got;
	char buf[8];
	union {
		char buf[CMSG_SPACE(3 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = &m, .iov_len = sizeof(m) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c;
	int fds[3];

	pair(sv);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(pipe2(p[i], O_NONBLOCK), 0);
		fds[i] = p[i][1];
	}
	usm_msg_init(&m, USM_MSG_PING, sizeof(m));
	memset(&u, 0, sizeof(u));
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(c), fds, sizeof(fds));
	assert_int_equal(sendmsg(sv[0], &mh, 0), sizeof(m));
	for (int i = 0; i < 3; i++)
		close(p[i][1]);

	assert_int_equal(usm_sock_recv(sv[1], &got, sizeof(got), &fd), sizeof(m));
	assert_true(fd >= 0);
	/* the first is ours and works */
	assert_int_equal(write(fd, "x", 1), 1);
	assert_int_equal(read(p[0][0], buf, sizeof(buf)), 1);
	/* the others were closed by usm_sock_recv: EOF, not EAGAIN */
	assert_int_equal(read(p[1][0], buf, sizeof(buf)), 0);
	assert_int_equal(read(p[2][0], buf, sizeof(buf)), 0);
	close(fd);
	assert_int_equal(read(p[0][0], buf, sizeof(buf)), 0);
	for (int i = 0; i < 3; i++)
		close(p[i][0]);
	close(sv[0]);
	close(sv[1]);
	assert_int_equal(count_fds(), before);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_msg_init),
		cmocka_unit_test(test_msg_check_valid),
		cmocka_unit_test(test_msg_check_malformed),
		cmocka_unit_test(test_instance_names),
		cmocka_unit_test_setup_teardown(test_sock_path, save_env, restore_env),
		cmocka_unit_test(test_connect_errors),
		cmocka_unit_test(test_roundtrip_no_fd),
		cmocka_unit_test(test_roundtrip_fd),
		cmocka_unit_test(test_extra_fds_closed),
	};

	/* SIGPIPE stays at its default: usm_sock_send must use MSG_NOSIGNAL. */
	return cmocka_run_group_tests_name("proto", tests, NULL, NULL);
}
