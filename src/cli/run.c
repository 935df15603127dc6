/* SPDX-License-Identifier: MIT */
/*
 * cli/run.c - `usm run`: run a program with its memory managed.
 *
 * The program gets the preload agent (LD_PRELOAD) and the instance's
 * socket.  If the named instance is not running, usm starts an embedded
 * instance for this run ("run-<pid>", configured by -c/-o) in a child
 * process, and stops it when the program has exited.
 */
#include "cli/cli.h"
#include "daemon/daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_DAEMON_ARGS 64

struct run_opts {
	const char *instance;
	const char *policy;
	const char *stats_json;
	bool stats;
	bool inline_host;
	const char *dargv[MAX_DAEMON_ARGS];   /* options for an embedded instance */
	int dargc;
};

static int run_usage(void)
{
	fprintf(stderr,
		"usage: usm run [OPTIONS] -- PROGRAM [ARGS]\n"
		"  -i, --instance NAME    instance to use (default: default)\n"
		"  -P, --policy NAME      allocation policy for this program\n"
		"  -c, --config FILE      config for the embedded instance\n"
		"  -o, --option LINE      config line for the embedded instance, e.g. -o 'memory 512'\n"
		"  -p, --plugin PATH.so   policy plugin for the embedded instance\n"
		"      --inline           handle PROGRAM's faults inside it (in the faulting thread)\n"
		"      --stats            print the instance's counters when PROGRAM exits\n"
		"      --stats-json FILE  write them as JSON to FILE\n");
	return 2;
}

static int add_darg(struct run_opts *o, const char *a, const char *b)
{
	if (o->dargc + 2 >= MAX_DAEMON_ARGS) {
		fprintf(stderr, "usm run: too many instance options\n");
		return -1;
	}
	o->dargv[o->dargc++] = a;
	o->dargv[o->dargc++] = b;
	return 0;
}

static int parse_run(int argc, char **argv, struct run_opts *o)
{
	static const struct option longopts[] = {
		{ "instance", required_argument, NULL, 'i' },
		{ "policy", required_argument, NULL, 'P' },
		{ "config", required_argument, NULL, 'c' },
		{ "option", required_argument, NULL, 'o' },
		{ "plugin", required_argument, NULL, 'p' },
		{ "stats", no_argument, NULL, 's' },
		{ "stats-json", required_argument, NULL, 'j' },
		{ "inline", no_argument, NULL, 'I' },
		{ NULL, 0, NULL, 0 },
	};
	int c, rc = 0;

	optind = 1;
	/* '+': stop at the program name, its options are its own. */
	while (!rc && (c = getopt_long(argc, argv, "+i:P:c:o:p:", longopts, NULL)) != -1) {
		switch (c) {
		case 'i': o->instance = optarg; break;
		case 'P': o->policy = optarg; break;
		case 'c': rc = add_darg(o, "-c", optarg); break;
		case 'o': rc = add_darg(o, "-o", optarg); break;
		case 'p': rc = add_darg(o, "-p", optarg); break;
		case 's': o->stats = true; break;
		case 'j': o->stats_json = optarg; break;
		case 'I': o->inline_host = true; break;
		default: return run_usage();
		}
	}
	if (rc)
		return 2;
	if (optind >= argc) {
		fprintf(stderr, "usm run: no program given\n");
		return run_usage();
	}
	if (o->policy && strlen(o->policy) >= 32) {
		fprintf(stderr, "usm run: policy name '%s' is too long\n", o->policy);
		return 2;
	}
	return 0;
}

/* The agent next to this binary: ../lib/libusm-agent.so (build tree) or
 * ../lib/usm/libusm-agent.so (installed); $USM_AGENT overrides. */
static int find_agent(char *buf, size_t len)
{
	const char *env = getenv("USM_AGENT");
	static const char *const rel[] = { "/../lib/libusm-agent.so", "/../lib/usm/libusm-agent.so" };
	char exe[PATH_MAX];
	ssize_t n;

	if (env && *env) {
		snprintf(buf, len, "%s", env);
		return access(buf, R_OK);
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0)
		return -1;
	exe[n] = '\0';
	*strrchr(exe, '/') = '\0';
	for (size_t i = 0; i < 2; i++) {
		char cand[PATH_MAX + 64];
		snprintf(cand, sizeof(cand), "%s%s", exe, rel[i]);
		if (realpath(cand, buf) && access(buf, R_OK) == 0)
			return 0;
	}
	return -1;
}

/* Start an embedded instance; returns its pid, with *sock_path set. */
static pid_t start_embedded(struct run_opts *o, char *name, size_t namelen,
			    char *sock_path, size_t pathlen)
{
	int pfd[2];
	char fdarg[16], msg[512] = "";
	ssize_t n, got = 0;
	pid_t pid;

	snprintf(name, namelen, "run-%d", (int)getpid());
	if (cli_sock_path(name, sock_path, pathlen) || pipe2(pfd, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		const char *argv[MAX_DAEMON_ARGS + 8];
		int k = 0;

		close(pfd[0]);
		setpgid(0, 0);                       /* terminal signals are the program's */
		prctl(PR_SET_PDEATHSIG, SIGTERM);    /* do not outlive usm run */
		snprintf(fdarg, sizeof(fdarg), "%d", pfd[1]);
		argv[k++] = "usm";
		argv[k++] = "-i";
		argv[k++] = name;
		for (int i = 0; i < o->dargc; i++)
			argv[k++] = o->dargv[i];
		argv[k++] = "--ready-fd";
		argv[k++] = fdarg;
		argv[k] = NULL;
		fcntl(pfd[1], F_SETFD, 0);
		_exit(usm_daemon_main(k, (char **)argv, "usm run (instance)"));
	}
	close(pfd[1]);
	while ((n = read(pfd[0], msg + got, sizeof(msg) - 1 - (size_t)got)) > 0)
		got += n;
	close(pfd[0]);
	msg[got] = '\0';
	if (strcmp(msg, "ok\n")) {
		waitpid(pid, NULL, 0);
		return -1;                           /* the instance printed why */
	}
	return pid;
}

/* libusm-inline.so next to the agent: the in-process host loads it. */
static void set_libusm_env(const char *agent)
{
	char dir[PATH_MAX], cand[PATH_MAX + 32], real[PATH_MAX];

	snprintf(dir, sizeof(dir), "%s", agent);
	*strrchr(dir, '/') = '\0';
	snprintf(cand, sizeof(cand), "%s/libusm-inline.so", dir);
	if (access(cand, R_OK))
		return;                          /* the agent's default, then */
	if (realpath(cand, real))
		setenv("USM_LIBUSM", real, 1);
}

static void set_env(const char *agent, const char *sock_path, const char *policy)
{
	const char *old = getenv("LD_PRELOAD");
	char *preload;

	if (old && *old) {
		if (asprintf(&preload, "%s:%s", agent, old) < 0)
			preload = NULL;
	} else {
		preload = strdup(agent);
	}
	if (preload)
		setenv("LD_PRELOAD", preload, 1);
	free(preload);
	setenv("USM_SOCKET", sock_path, 1);
	setenv("USM_REQUIRED", "1", 1);
	if (policy)
		setenv("USM_POLICY", policy, 1);
}

static int exit_status(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 1;
}

/* The instance sees an exit a moment after waitpid does: wait until it
 * has no live process left (at most ~2 s) so the stats are final. */
static struct usm_msg_stats_reply *final_stats(const char *sock_path, bool embedded)
{
	char err[256] = "";
	struct usm_msg_stats_reply *r = NULL;

	for (int tries = 0; tries < 200; tries++) {
		bool live = false;
		free(r);
		r = cli_fetch_stats(sock_path, err, sizeof(err));
		if (!r) {
			fprintf(stderr, "usm run: %s\n", err);
			return NULL;
		}
		for (uint32_t k = 0; k < r->inst.nprocs; k++)
			live |= r->procs[k].alive;
		if (!embedded || !live)
			break;
		usleep(10000);
	}
	return r;
}

static void report(struct run_opts *o, const char *sock_path, bool embedded)
{
	struct usm_msg_stats_reply *r;

	if (!o->stats && !o->stats_json)
		return;
	r = final_stats(sock_path, embedded);
	if (!r)
		return;
	if (o->stats)
		cli_print_stats(stderr, r);
	if (o->stats_json) {
		FILE *f = fopen(o->stats_json, "w");
		if (!f)
			fprintf(stderr, "usm run: %s: %s\n", o->stats_json, strerror(errno));
		else {
			cli_print_stats_json(f, r);
			fclose(f);
		}
	}
	free(r);
}

int cmd_run(int argc, char **argv)
{
	struct run_opts o = { .instance = "default" };
	char agent[PATH_MAX], sock_path[256], name[64];
	pid_t daemon = 0, child;
	int rc = parse_run(argc, argv, &o), status = 0, probe;

	if (rc)
		return rc;
	if (find_agent(agent, sizeof(agent))) {
		fprintf(stderr, "usm run: cannot find libusm-agent.so next to usm (set USM_AGENT)\n");
		return 1;
	}
	if (cli_sock_path(o.instance, sock_path, sizeof(sock_path)))
		return 2;
	probe = usm_sock_connect(sock_path);
	if (probe >= 0) {
		close(probe);
		if (o.dargc)
			fprintf(stderr, "usm run: instance '%s' is running; -c/-o/-p apply only to "
				"an embedded instance and are ignored\n", o.instance);
	} else {
		daemon = start_embedded(&o, name, sizeof(name), sock_path, sizeof(sock_path));
		if (daemon < 0)
			return 1;
	}
	child = fork();
	if (child == 0) {
		set_env(agent, sock_path, o.policy);
		if (o.inline_host)
			setenv("USM_INLINE", "1", 1);
		set_libusm_env(agent);
		execvp(argv[optind], argv + optind);
		fprintf(stderr, "usm run: cannot run %s: %s\n", argv[optind], strerror(errno));
		_exit(127);
	}
	if (child < 0)
		perror("usm run: fork");
	else
		while (waitpid(child, &status, 0) < 0 && errno == EINTR)
			;
	report(&o, sock_path, daemon > 0);
	if (daemon > 0) {
		kill(daemon, SIGTERM);
		waitpid(daemon, NULL, 0);
	}
	return child < 0 ? 1 : exit_status(status);
}
