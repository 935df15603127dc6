/* SPDX-License-Identifier: MIT */
#include "daemon/daemon.h"
#include "core/instance.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void usm_log_set_tag(const char *t);

struct daemon_opts {
	const char *instance;
	const char *config;
	int ready_fd;
};

/* Read by the SIGTERM/SIGINT handler. */
static struct usm_instance *_Atomic running;

static void on_stop_signal(int sig)
{
	(void)sig;
	struct usm_instance *inst = running;

	if (inst)
		usm_instance_stop(inst);
}

static void usage(const char *prog)
{
	fprintf(stderr,
		"usage: %s [-i NAME] [-c FILE] [-p PLUGIN.so]... [-o 'DIRECTIVE ARGS']...\n"
		"  -i, --instance NAME   instance name (default: default)\n"
		"  -c, --config FILE     config file (alloc_policy_assignment_strategy.cfg format)\n"
		"  -p, --plugin PATH.so  load policies from a shared object\n"
		"  -o, --option LINE     one more config line, e.g. -o 'memory 512'\n",
		prog);
}

static void report_ready(int fd, const char *msg)
{
	if (fd < 0)
		return;
	if (write(fd, msg, strlen(msg)) < 0)
		perror("usmd: ready-fd");
	close(fd);
}

/* Options change cfg; a bad option or line is printed and fails. */
static int parse_opts(int argc, char **argv, const char *prog, struct daemon_opts *o,
		      struct usm_config *cfg, char *err, size_t errlen)
{
	static const struct option longopts[] = {
		{ "instance", required_argument, NULL, 'i' },
		{ "config", required_argument, NULL, 'c' },
		{ "plugin", required_argument, NULL, 'p' },
		{ "option", required_argument, NULL, 'o' },
		{ "ready-fd", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char line[1024];
	int c;

	/* Two passes: the config file first, so -o and -p lines add to it. */
	optind = 1;
	while ((c = getopt_long(argc, argv, "i:c:p:o:h", longopts, NULL)) != -1)
		if (c == 'c')
			o->config = optarg;
		else if (c == 'h' || c == '?') {
			usage(prog);
			snprintf(err, errlen, c == 'h' ? "" : "bad command line");
			return -1;
		}
	if (o->config && usm_config_load(cfg, o->config, err, errlen))
		return -1;
	optind = 1;
	while ((c = getopt_long(argc, argv, "i:c:p:o:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'i': o->instance = optarg; break;
		case 'r': o->ready_fd = atoi(optarg); break;
		case 'p':
			snprintf(line, sizeof(line), "plugin %s", optarg);
			if (usm_config_apply_line(cfg, line, err, errlen))
				return -1;
			break;
		case 'o':
			if (usm_config_apply_line(cfg, optarg, err, errlen))
				return -1;
			break;
		}
	}
	if (optind < argc) {
		snprintf(err, errlen, "unexpected argument '%s'", argv[optind]);
		return -1;
	}
	if (!usm_instance_name_ok(o->instance)) {
		snprintf(err, errlen, "bad instance name '%s' (1-63 of A-Z a-z 0-9 _ - .)",
			 o->instance);
		return -1;
	}
	return 0;
}

int usm_daemon_main(int argc, char **argv, const char *prog)
{
	struct daemon_opts o = { .instance = "default", .ready_fd = -1 };
	struct usm_config cfg;
	char err[512] = "", tag[96];
	struct sigaction sa = { .sa_handler = on_stop_signal };
	struct usm_instance *inst;
	int rc;

	usm_config_defaults(&cfg);
	if (parse_opts(argc, argv, prog, &o, &cfg, err, sizeof(err))) {
		if (err[0])
			fprintf(stderr, "%s: %s\n", prog, err);
		report_ready(o.ready_fd, err[0] ? err : "bad options");
		usm_config_free(&cfg);
		return 2;
	}
	snprintf(tag, sizeof(tag), "usmd[%s]", o.instance);
	usm_log_set_tag(tag);
	if (usm_instance_create(&inst, o.instance, &cfg, err, sizeof(err))) {
		fprintf(stderr, "%s: %s\n", prog, err);
		report_ready(o.ready_fd, err);
		usm_config_free(&cfg);
		return 1;
	}
	running = inst;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	report_ready(o.ready_fd, "ok\n");
	rc = usm_instance_run(inst);
	/* Unpublish before freeing: a late signal must not reach a freed instance. */
	running = NULL;
	usm_instance_destroy(inst);
	return rc ? 1 : 0;
}
