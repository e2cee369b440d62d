/* main.c - the `teleport-pagerduty` command line: configure, start, check, version, help.
 *
 * Drop-in for the upstream binary's CLI (same subcommands and flags), plus `check`. All real work
 * lives in the library (src/app/cli.c and the modules it wires); this file only hands argv over. */
#include "tpd/cli.h"

int main(int argc, char **argv)
{
	return tpd_cli_main(argc, argv);
}
