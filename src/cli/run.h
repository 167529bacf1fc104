/*
 * run.h - the `stall run` command (src/cli/run.c).
 */
#ifndef STALL_CLI_RUN_H
#define STALL_CLI_RUN_H

/* Runs `stall run` with the arguments after "run"; returns the exit status. */
int stall__cmd_run(int argc, char **argv);

#endif
