/* SPDX-License-Identifier: MIT */
#include "ipc/proto.h"

#include <stdatomic.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int usm_sock_dir(char *buf, size_t len)
{
	const char *env = getenv("USM_RUNTIME_DIR");
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	int n;

	if (env && *env)
		n = snprintf(buf, len, "%s", env);
	else if (geteuid() == 0)
		n = snprintf(buf, len, "/run/usm");
	else if (xdg && *xdg)
		n = snprintf(buf, len, "%s/usm", xdg);
	else
		n = snprintf(buf, len, "/tmp/usm-%u", (unsigned)geteuid());
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int usm_instance_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > 63)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'))
			return 0;
	}
	return name[0] != '.';
}

int usm_sock_path(const char *instance, char *buf, size_t len)
{
	char dir[200];
	int n;

	if (!usm_instance_name_ok(instance))
		return -EINVAL;
	if (usm_sock_dir(dir, sizeof(dir)))
		return -ENAMETOOLONG;
	n = snprintf(buf, len, "%s/%s.sock", dir, instance);
	if (n < 0 || (size_t)n >= len || (size_t)n >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return -ENAMETOOLONG;
	return 0;
}

void usm_msg_init(struct usm_msg *m, enum usm_msg_type type, size_t size)
{
	memset(m, 0, size);
	m->magic = USM_PROTO_MAGIC;
	m->type = (uint16_t)type;
	m->version = USM_PROTO_VERSION;
	m->size = (uint32_t)size;
}

static size_t expected_size(uint16_t type)
{
	switch (type) {
	case USM_MSG_HELLO:    return sizeof(struct usm_msg_hello);
	case USM_MSG_ACK:      return sizeof(struct usm_msg_ack);
	case USM_MSG_PING:
	case USM_MSG_PONG:
	case USM_MSG_STATS:
	case USM_MSG_SHUTDOWN: return sizeof(struct usm_msg);
	case USM_MSG_STATS_REPLY: return sizeof(struct usm_msg_stats_reply);
	case USM_MSG_INLINE_CONFIG: return sizeof(struct usm_msg_inline_config);
	case USM_MSG_ATTACH_RPC: return sizeof(struct usm_msg_attach_rpc);
	case USM_MSG_LEASE:    return sizeof(struct usm_msg_lease);
	case USM_MSG_LEASE_REPLY: return sizeof(struct usm_msg_lease_reply);
	case USM_MSG_OOM:      return sizeof(struct usm_msg);
	case USM_MSG_STATS_PUSH: return sizeof(struct usm_msg_stats_push);
	case USM_MSG_POOL_READY: return sizeof(struct usm_msg_pool_ready);
	case USM_MSG_EVICT_SETUP: return sizeof(struct usm_msg_evict_setup);
	case USM_MSG_SWAPDEV:  return sizeof(struct usm_msg_swapdev);
	case USM_MSG_FORK_PREPARE: return sizeof(struct usm_msg_fork_prepare);
	case USM_MSG_PIN:      return sizeof(struct usm_msg_pin);
	default:               return 0;
	}
}

const char *usm_msg_check(const void *buf, size_t len)
{
	const struct usm_msg *m = buf;
	size_t want;

	if (len < sizeof(*m))
		return "message shorter than its header";
	if (m->magic != USM_PROTO_MAGIC)
		return "bad magic (not a USM client?)";
	if (m->version != USM_PROTO_VERSION)
		return "protocol version mismatch (agent and daemon from different builds?)";
	if (m->size != len)
		return "size field does not match the message length";
	want = expected_size(m->type);
	if (!want)
		return "unknown message type";
	if (m->type == USM_MSG_STATS_REPLY ? len < want : len != want)
		return "wrong size for its type";
	return NULL;
}

int usm_sock_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int s, err;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		err = errno;
		close(s);
		return -err;
	}
	return s;
}

int usm_sock_send(int sock, const void *msg, size_t len, int fd)
{
	struct iovec iov = { .iov_base = (void *)msg, .iov_len = len };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (fd >= 0) {
		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof(u.buf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	for (;;) {
		ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL);
		if (n >= 0)
			return (size_t)n == len ? 0 : -EMSGSIZE;
		if (errno != EINTR)
			return -errno;
	}
}

ssize_t usm_sock_recv(int sock, void *buf, size_t len, int *fd)
{
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	union {
		char buf[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} u;
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = u.buf, .msg_controllen = sizeof(u.buf),
	};
	ssize_t n;

	if (fd)
		*fd = -1;
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	/* Take any fds that came, so none leaks even if the caller wanted none. */
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < nfd; i++) {
			int got;
			memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (fd && *fd < 0)
				*fd = got;
			else
				close(got);
		}
	}
	if (mh.msg_flags & MSG_TRUNC)
		return -EMSGSIZE;
	return n;
}
