/* SPDX-License-Identifier: MIT */
/*
 * daemon/daemon.h - the instance daemon's entry point, shared by `usmd`,
 * `usm daemon` and the embedded instance `usm run` starts on its own.
 */
#ifndef USM_DAEMON_DAEMON_H
#define USM_DAEMON_DAEMON_H

/*
 * Parse daemon options, build the instance and run it until stopped.
 * Options:
 *   -i, --instance NAME    instance name (default "default")
 *   -c, --config FILE      config file (default: built-in defaults)
 *   -p, --plugin PATH.so   load policies from a plugin (repeatable)
 *   -o, --option 'LINE'    one more config line, e.g. -o 'memory 512'
 *       --ready-fd N       write "ok\n" (or the error) to fd N once listening
 * Returns the process exit status.
 */
int usm_daemon_main(int argc, char **argv, const char *prog);

#endif /* USM_DAEMON_DAEMON_H */
