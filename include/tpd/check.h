/* check.h - `teleport-pagerduty check`: validate the config and the credentials it names, then
 * (when reachable) ping Teleport and PagerDuty, and print a readable report. */
#ifndef TPD_CHECK_H
#define TPD_CHECK_H

#include <stdio.h>

/* Runs every check and prints the report to out; returns the exit code (0 all good, 1 not). */
int tpd_check_run(const char *config_path, FILE *out);

#endif
