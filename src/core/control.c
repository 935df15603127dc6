/* SPDX-License-Identifier: MIT */
/*
 * core/control.c - the instance's Unix socket.
 *
 * The control thread accepts clients, checks who they are (SO_PEERCRED:
 * the instance's own uid or root, nobody else), takes an agent's HELLO and
 * userfaultfd and hands the process to a worker, answers STATS, and
 * samples each process's anonymous RSS for the managed-memory ratio.
 */
#include "core/access.h"
#include "core/instance.h"
#include "mech/uffd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define SAMPLE_MS 100

/* A client that has connected but not yet said who it is. */
struct client {
	int sock;
	struct ucred cred;
	bool refused;       /* not the owner: answer its request with EPERM */
};

static int mkdir_private(const char *dir, char *err, size_t errlen)
{
	struct stat st;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid()) {
		snprintf(err, errlen, "%s is not a directory owned by uid %u", dir,
			 (unsigned)geteuid());
		return -1;
	}
	return 0;
}

static int bind_socket(struct usm_instance *inst, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int s, probe;

	/* A live instance answers on its socket: refuse to steal it.  A
	 * socket file nobody answers on is left over from a crash. */
	probe = usm_sock_connect(inst->sock_path);
	if (probe >= 0) {
		close(probe);
		snprintf(err, errlen, "instance '%s' is already running (%s)", inst->name,
			 inst->sock_path);
		return -1;
	}
	unlink(inst->sock_path);
	s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	strcpy(sa.sun_path, inst->sock_path);
	if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    chmod(inst->sock_path, 0600) < 0 || listen(s, 64) < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", inst->sock_path, strerror(errno));
		close(s);
		return -1;
	}
	return s;
}

int usm_control_open(struct usm_instance *inst, char *err, size_t errlen)
{
	char dir[200];
	struct epoll_event ev = { .events = EPOLLIN };

	if (usm_sock_dir(dir, sizeof(dir)) || mkdir_private(dir, err, errlen))
		return -1;
	if (usm_sock_path(inst->name, inst->sock_path, sizeof(inst->sock_path))) {
		snprintf(err, errlen, "bad instance name '%s' (use letters, digits, '_', '-', '.')",
			 inst->name);
		return -1;
	}
	inst->listen_fd = bind_socket(inst, err, errlen);
	if (inst->listen_fd < 0)
		return -1;
	inst->ctl_epfd = epoll_create1(EPOLL_CLOEXEC);
	inst->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (inst->ctl_epfd < 0 || inst->stop_fd < 0) {
		snprintf(err, errlen, "epoll/eventfd: %s", strerror(errno));
		return -1;
	}
	ev.data.ptr = NULL;                   /* NULL: the listening socket */
	if (epoll_ctl(inst->ctl_epfd, EPOLL_CTL_ADD, inst->listen_fd, &ev) < 0)
		goto fail;
	ev.data.ptr = &inst->stop_fd;          /* the stop eventfd */
	if (epoll_ctl(inst->ctl_epfd, EPOLL_CTL_ADD, inst->stop_fd, &ev) < 0)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "epoll_ctl: %s", strerror(errno));
	return -1;
}

void usm_control_close(struct usm_instance *inst)
{
	if (inst->listen_fd > 0) {
		close(inst->listen_fd);
		unlink(inst->sock_path);
	}
	if (inst->ctl_epfd > 0)
		close(inst->ctl_epfd);
	if (inst->stop_fd > 0)
		close(inst->stop_fd);
	inst->listen_fd = inst->ctl_epfd = inst->stop_fd = -1;
}

static void send_ack_flags(int sock, int status, uint32_t flags, const char *error)
{
	struct usm_msg_ack a;

	usm_msg_init(&a.h, USM_MSG_ACK, sizeof(a));
	a.status = status;
	a.flags = flags;
	snprintf(a.error, sizeof(a.error), "%s", error ? error : "");
	usm_sock_send(sock, &a, sizeof(a), -1);
}

static void send_ack(int sock, int status, const char *error)
{
	send_ack_flags(sock, status, 0, error);
}

static void drop_client(struct usm_instance *inst, struct client *c)
{
	epoll_ctl(inst->ctl_epfd, EPOLL_CTL_DEL, c->sock, NULL);
	close(c->sock);
	free(c);
}

static void accept_client(struct usm_instance *inst)
{
	struct epoll_event ev = { .events = EPOLLIN };
	socklen_t len = sizeof(struct ucred);
	struct client *c;
	int s = accept4(inst->listen_fd, NULL, NULL, SOCK_CLOEXEC);

	if (s < 0)
		return;
	c = calloc(1, sizeof(*c));
	if (!c || getsockopt(s, SOL_SOCKET, SO_PEERCRED, &c->cred, &len) < 0) {
		free(c);
		close(s);
		return;
	}
	c->sock = s;
	/* A stranger gets its refusal as the answer to its first request:
	 * closing now, with that request unread, would reach it as
	 * ECONNRESET and the reason would be lost. */
	c->refused = c->cred.uid != geteuid() && c->cred.uid != 0;
	ev.data.ptr = c;
	if (epoll_ctl(inst->ctl_epfd, EPOLL_CTL_ADD, s, &ev) < 0) {
		close(s);
		free(c);
	}
}

static bool is_userfaultfd(int fd)
{
	char link[64], target[64];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		return false;
	target[n] = '\0';
	return strcmp(target, "anon_inode:[userfaultfd]") == 0;
}

/* Returns true if the client became a managed process (socket handed on). */
static bool take_hello(struct usm_instance *inst, struct client *c,
		       const struct usm_msg_hello *h, int uffd)
{
	char err[224];
	struct usm_process *p;
	struct usm_worker *w;

	if (uffd < 0 || !is_userfaultfd(uffd)) {
		send_ack(c->sock, -EINVAL, "HELLO must carry the process's userfaultfd");
		return false;
	}
	if (h->pid != c->cred.pid) {
		snprintf(err, sizeof(err), "HELLO names pid %d but the peer is pid %d",
			 h->pid, c->cred.pid);
		send_ack(c->sock, -EPERM, err);
		return false;
	}
	if (!(h->flags & USM_HELLO_INLINE) && usm_config_inline_for(&inst->cfg, h->comm)) {
		/* Configured for the in-process host: the agent comes back with
		 * a userfaultfd in SIGBUS mode. */
		send_ack(c->sock, USM_ACK_GO_INLINE, NULL);
		return false;
	}
	p = usm_process_new(inst, h, uffd, c->sock, err, sizeof(err));
	if (!p) {
		usm_log(USM_LOG_WARN, "refused pid %d (%.16s): %s", h->pid, h->comm, err);
		send_ack(c->sock, -EINVAL, err);
		return false;
	}
	epoll_ctl(inst->ctl_epfd, EPOLL_CTL_DEL, c->sock, NULL);
	w = &inst->workers[inst->next_worker++ % inst->nworkers];
	/* ACK before adoption: the agent registers its memory only after the
	 * ACK, so no fault can reach the worker before it watches the fd. */
	/* A policy that wants 2 MiB pages gets the agent's pool before the
	 * agent registers anything, hence before the first fault. */
	bool evict = usm_evict_enabled(inst) && !p->inline_host;
	send_ack_flags(c->sock, 0, (p->want_pool ? USM_ACK_WANT_POOL : 0) |
		       (evict ? USM_ACK_EVICT : 0) |
		       (p->want_sentinels ? USM_ACK_SENTINELS : 0), NULL);
	if (evict && usm_evict_attach(p, h->fork_token, h->ppid) < 0) {
		usm_process_teardown(p);
		usm_process_put(p);
		return true;
	}
	if (evict)
		usm_access_track(p);
	if (p->inline_host && usm_inline_send_config(p) < 0) {
		usm_log(USM_LOG_ERROR, "pid %d: cannot set up its attachment", p->pid);
		usm_process_teardown(p);
		usm_process_put(p);
		return true;
	}
	usm_worker_adopt(w, p);         /* p is the worker's from here on */
	return true;
}

/* A process is about to fork: snapshot its swapped pages for the child. */
static void take_fork_prepare(struct usm_instance *inst, struct client *c,
			      const struct usm_msg_fork_prepare *m)
{
	int rc;

	if (m->pid != c->cred.pid) {
		send_ack(c->sock, -EPERM, "FORK_PREPARE names another process");
		return;
	}
	rc = usm_evict_fork_prepare(inst, m->pid);
	send_ack(c->sock, rc, rc < 0 ? strerror(-rc) : NULL);
}

/* The in-process host's second connection (leases, OOM, counters). */
static bool take_rpc(struct usm_instance *inst, struct client *c,
		     const struct usm_msg_attach_rpc *m)
{
	char err[224];

	if (m->pid != c->cred.pid) {
		send_ack(c->sock, -EPERM, "ATTACH_RPC names another process");
		return false;
	}
	struct usm_msg_ack a;
	int page_fd = -1;

	/* The agent sends nothing on this channel before our ACK, so the
	 * worker may watch it first. */
	epoll_ctl(inst->ctl_epfd, EPOLL_CTL_DEL, c->sock, NULL);
	if (usm_inline_attach_rpc(inst, c->sock, m->pid, &page_fd, err, sizeof(err)) < 0) {
		usm_log(USM_LOG_WARN, "pid %d: %s", m->pid, err);
		send_ack(c->sock, -ENOENT, err);
		return false;
	}
	usm_msg_init(&a.h, USM_MSG_ACK, sizeof(a));
	a.status = 0;
	a.flags = 0;
	a.error[0] = '\0';
	usm_sock_send(c->sock, &a, sizeof(a), page_fd);      /* with the lease page */
	return true;
}

static size_t fill_stats(struct usm_instance *inst, struct usm_msg_stats_reply *r, size_t max)
{
	struct usm_stat_instance *si = &r->inst;
	struct usm_list_head *pos;
	size_t n = 0;

	snprintf(si->name, sizeof(si->name), "%s", inst->name);
	si->pid = getpid();
	si->workers = inst->nworkers;
	si->wait_mode = inst->cfg.wait_mode;
	si->spin_us = inst->cfg.spin_us;
	si->uptime_ns = usm_now_ns() - inst->start_ns;
	si->page_size = inst->cfg.page_size;
	si->frames_total = inst->nframes;
	pthread_mutex_lock(&inst->lock);
	si->frames_free = usm_frames_free();
	snprintf(si->active_policy, sizeof(si->active_policy), "%s",
		 usm_instance_policy_of(NULL)->name);
	pthread_mutex_unlock(&inst->lock);
	snprintf(si->default_policy, sizeof(si->default_policy), "%s", inst->default_policy->name);
	snprintf(si->oom, sizeof(si->oom), "%s", inst->cfg.oom == USM_OOM_KERNEL ? "kernel" :
		 inst->cfg.oom == USM_OOM_RETRY ? "kill" : "wait");
	usm_counters_snapshot(&inst->c, &inst->lat, &si->c);
	if (inst->swap_policy) {
		snprintf(si->swap_policy, sizeof(si->swap_policy), "%s", inst->swap_policy->name);
		si->swap_devs = usm_swap_ndevs();
		struct usm_access_stats as;
		uint64_t in_process[3] = { 0, 0, 0 };
		usm_swap_stats(-1, &si->swap);
		usm_inline_swap_stats(inst, &si->swap, in_process);
		usm_access_get_stats(&as);
		si->access_scans = as.scans + in_process[0];
		si->access_marked = as.pages_marked + in_process[1];
		si->access_scan_ns = as.scan_ns + in_process[2];
	}

	pthread_mutex_lock(&inst->procs_lock);
	usm_list_for_each(pos, &inst->procs) {
		if (n == max)
			break;
		usm_process_snapshot(usm_list_entry(pos, struct usm_process, link), &r->procs[n++]);
	}
	for (size_t i = 0; i < inst->history_len && n < max; i++) {
		size_t idx = (inst->history_next + USM_HISTORY_MAX - inst->history_len + i) %
			     USM_HISTORY_MAX;
		r->procs[n++] = inst->history[idx];
	}
	pthread_mutex_unlock(&inst->procs_lock);
	si->nprocs = (uint32_t)n;
	return n;
}

static void send_stats(struct usm_instance *inst, int sock)
{
	size_t max = USM_STATS_MAX_PROCS;
	size_t sz = sizeof(struct usm_msg_stats_reply) + max * sizeof(struct usm_stat_proc);
	struct usm_msg_stats_reply *r = calloc(1, sz);
	size_t n;

	if (!r) {
		send_ack(sock, -ENOMEM, "out of memory");
		return;
	}
	n = fill_stats(inst, r, max);
	sz = sizeof(*r) + n * sizeof(struct usm_stat_proc);
	usm_msg_init(&r->h, USM_MSG_STATS_REPLY, sizeof(r->h));
	r->h.size = (uint32_t)sz;
	if (usm_sock_send(sock, r, sz, -1) < 0)
		usm_log(USM_LOG_WARN, "stats reply: send failed");
	free(r);
}

static void serve_client(struct usm_instance *inst, struct client *c)
{
	union {
		struct usm_msg m;
		struct usm_msg_hello hello;
		struct usm_msg_attach_rpc rpc;
		struct usm_msg_fork_prepare fork;
		char raw[512];
	} u;
	int fd;
	ssize_t n = usm_sock_recv(c->sock, &u, sizeof(u), &fd);
	const char *bad;

	if (n <= 0 || c->refused) {
		if (n > 0) {
			char msg[128];
			snprintf(msg, sizeof(msg), "permission denied: instance '%s' belongs to uid %u",
				 inst->name, (unsigned)geteuid());
			usm_log(USM_LOG_WARN, "refused pid %d (uid %u): not the instance owner",
				c->cred.pid, (unsigned)c->cred.uid);
			send_ack(c->sock, -EPERM, msg);
		}
		if (fd >= 0)
			close(fd);
		drop_client(inst, c);
		return;
	}
	bad = usm_msg_check(&u, (size_t)n);
	if (bad) {
		send_ack(c->sock, -EPROTO, bad);
	} else if (u.m.type == USM_MSG_HELLO) {
		if (take_hello(inst, c, &u.hello, fd)) {
			free(c);
			return;         /* fd and socket now belong to the process */
		}
	} else if (u.m.type == USM_MSG_ATTACH_RPC) {
		if (take_rpc(inst, c, &u.rpc)) {
			free(c);
			return;
		}
		close(c->sock);
		free(c);
		return;
	} else if (u.m.type == USM_MSG_FORK_PREPARE) {
		take_fork_prepare(inst, c, &u.fork);
	} else if (u.m.type == USM_MSG_STATS) {
		send_stats(inst, c->sock);
	} else if (u.m.type == USM_MSG_SHUTDOWN) {
		send_ack(c->sock, 0, NULL);
		usm_instance_stop(inst);
		/* The loop ends now: this client would never be served again. */
		if (fd >= 0)
			close(fd);
		drop_client(inst, c);
		return;
	} else {
		send_ack(c->sock, -EPROTO, "unexpected message type");
	}
	if (fd >= 0)
		close(fd);
}

/* RssAnon of a live process, in pages (0 if unreadable). */
static uint64_t rss_anon_pages(pid_t pid)
{
	char path[64], line[128];
	unsigned long long kb = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "RssAnon: %llu kB", &kb) == 1)
			break;
	fclose(f);
	return kb / 4;
}

static void sample_rss(struct usm_instance *inst)
{
	static unsigned tick;
	bool bloat = ++tick % 5 == 0;          /* smaps is costly: every 500 ms */
	struct usm_list_head *pos;

	pthread_mutex_lock(&inst->procs_lock);
	usm_list_for_each(pos, &inst->procs) {
		struct usm_process *p = usm_list_entry(pos, struct usm_process, link);
		uint64_t usm = usm_read(&p->c.frames_in_use);
		uint64_t rss = rss_anon_pages(p->pid);

		uint64_t b;

		if (rss > p->rss_anon_peak) {
			p->rss_anon_peak = rss;
			p->usm_at_peak = usm;
		}
		/* An in-process host samples itself and pushes the result. */
		if (bloat && p->track_bloat && !p->inline_host && !usm_bloat_sample(p->pid, &b))
			atomic_store_explicit(&p->bloat_pages, b, memory_order_relaxed);
	}
	pthread_mutex_unlock(&inst->procs_lock);
}

int usm_control_loop(struct usm_instance *inst)
{
	struct epoll_event ev[32];

	while (!inst->stopping) {
		int n = epoll_wait(inst->ctl_epfd, ev, 32, SAMPLE_MS);

		if (n < 0 && errno != EINTR) {
			usm_log(USM_LOG_ERROR, "control: epoll_wait: %s", strerror(errno));
			return -1;
		}
		for (int i = 0; i < n; i++) {
			if (ev[i].data.ptr == NULL)
				accept_client(inst);
			else if (ev[i].data.ptr != &inst->stop_fd)
				serve_client(inst, ev[i].data.ptr);
		}
		sample_rss(inst);
	}
	return 0;
}
