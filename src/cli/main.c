/* SPDX-License-Identifier: MIT */
/*
 * usm - run programs under a USM instance and look at instances.
 *
 *   usm run [OPTIONS] -- PROGRAM [ARGS]   run a program with its memory managed
 *   usm stat [-i NAME] [--json]           counters of an instance
 *   usm top [-i NAME] [-n COUNT] [-d SEC] live view of an instance
 *   usm daemon [DAEMON OPTIONS]           run an instance (same as usmd)
 *   usm stop [-i NAME]                    stop an instance
 *   usm policies                          list the built-in policies
 *   usm sim --trace T --memory M --policy P   replay a trace offline
 */
#include "cli/cli.h"
#include "daemon/daemon.h"

#include <string.h>

static int usage(FILE *f)
{
	fprintf(f,
		"usage: usm COMMAND [ARGS]\n"
		"  run [-i NAME] [-P POLICY] [-c FILE] [-o LINE]... [--stats] [--stats-json FILE] -- PROG [ARGS]\n"
		"                      run PROG with its anonymous memory managed by instance NAME;\n"
		"                      with no such instance running, start an embedded one for PROG\n"
		"  stat [-i NAME] [--json]    print an instance's counters\n"
		"  top [-i NAME] [-d SECONDS] [-n COUNT]   live per-process view\n"
		"  daemon [-i NAME] [-c FILE] [-p PLUGIN.so]... [-o LINE]...   run an instance\n"
		"  stop [-i NAME]             stop an instance (its processes continue unmanaged)\n"
		"  policies                   list the built-in allocation and eviction policies\n"
		"  sim --trace FILE --memory SIZE --policy NAME [--prefetch N|auto] [--plugin X.so]...\n"
		"                             replay a recorded trace through an eviction policy\n"
		"                             and FIFO, LRU, CLOCK and the optimum (no kernel)\n");
	return f == stderr ? 2 : 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage(stderr);
	if (!strcmp(argv[1], "run"))
		return cmd_run(argc - 1, argv + 1);
	if (!strcmp(argv[1], "stat"))
		return cmd_stat(argc - 1, argv + 1);
	if (!strcmp(argv[1], "top"))
		return cmd_top(argc - 1, argv + 1);
	if (!strcmp(argv[1], "daemon"))
		return usm_daemon_main(argc - 1, argv + 1, "usm daemon");
	if (!strcmp(argv[1], "stop"))
		return cmd_stop(argc - 1, argv + 1);
	if (!strcmp(argv[1], "sim"))
		return cmd_sim(argc - 1, argv + 1);
	if (!strcmp(argv[1], "policies"))
		return cmd_policies(argc - 1, argv + 1);
	if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
		return usage(stdout);
	fprintf(stderr, "usm: unknown command '%s'\n", argv[1]);
	return usage(stderr);
}
