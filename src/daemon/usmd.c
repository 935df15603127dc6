/* SPDX-License-Identifier: MIT */
/*
 * usmd - a USM instance daemon.
 *
 *   usmd [--instance NAME] [--config FILE] [--plugin PATH.so]... [--set 'KEY VALUE']...
 *
 * Runs until SIGTERM/SIGINT or `usm stop`; every managed process then
 * continues on its own with all its memory.
 */
#include "daemon/daemon.h"

int main(int argc, char **argv)
{
	return usm_daemon_main(argc, argv, "usmd");
}
