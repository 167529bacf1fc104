/*
 * run.h - the `stall run` command (src/cli/run.c).
 */
#ifndef STALL_CLI_RUN_H
#define STALL_CLI_RUN_H

#include <stdio.h>

#include "jsonr.h"

/* Says on stderr "<who>: " + fmt (with one %s for arg), then the usage
 * text; returns 2, the exit status of a usage error. */
int stall__usage_error(const char *who, const char *usage, const char *fmt, const char *arg);

/* Runs `stall run` with the arguments after "run"; returns the exit status. */
int stall__cmd_run(int argc, char **argv);

/* Runs `stall top` with the arguments after "top" (src/cli/top.c); returns
 * the exit status (0, 1 when the terminal cannot be driven, 2 for bad
 * arguments, a PID that does not exist or no session to watch). */
int stall__cmd_top(int argc, char **argv);

/* Runs `stall report` with the arguments after "report"; returns the exit
 * status (0, 1 when a page could not be written, 2 for bad arguments or a
 * file that is not a stall report). */
int stall__cmd_report(int argc, char **argv);

/* Prints a report.json's diagnosis (command, exit, duration, throughput, the
 * loop's split and the first max_findings findings with their evidence and
 * suggestions) to f: what `stall run` says at its end and `stall report`
 * says of a file. */
void stall__print_report(FILE *f, const stall_jv_t *rep, int max_findings);

#endif
