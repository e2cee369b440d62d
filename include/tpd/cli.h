/* cli.h - command-line entry point of teleport-pagerduty (kept in the library so tests can call
 * it in-process). */
#ifndef TPD_CLI_H
#define TPD_CLI_H

/* Runs the CLI; returns the process exit code (0 ok, 1 runtime/config error, 2 usage error). */
int tpd_cli_main(int argc, char **argv);

#endif
