/* SPDX-License-Identifier: MIT */
/* cli/cli.h - the `usm` command's subcommands. */
#ifndef USM_CLI_CLI_H
#define USM_CLI_CLI_H

#include <stdio.h>
#include "ipc/proto.h"

int cmd_run(int argc, char **argv);
int cmd_stat(int argc, char **argv);
int cmd_top(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_policies(int argc, char **argv);
int cmd_sim(int argc, char **argv);     /* sim.c */

/* stat.c: fetch and render an instance's statistics. */
struct usm_msg_stats_reply *cli_fetch_stats(const char *sock_path, char *err, size_t errlen);
void cli_print_stats(FILE *f, const struct usm_msg_stats_reply *r);
void cli_print_stats_json(FILE *f, const struct usm_msg_stats_reply *r);

/* Socket path of an instance, with a message on error. */
int cli_sock_path(const char *instance, char *buf, size_t len);

#endif /* USM_CLI_CLI_H */
