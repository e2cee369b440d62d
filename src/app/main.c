/* main.c - the `teleport-pagerduty` command line: configure, start, check, version, help.
 *
 * Drop-in for the upstream binary's CLI (same subcommands and flags), plus `check`. All real work
 * lives in the library (src/app/cli.c and the modules it wires); this file sets the process-wide
 * gRPC settings and hands argv over. */
#include "tpd/cli.h"
#include "tpd/teleport.h"

int main(int argc, char **argv)
{
	tpd_teleport_process_init(); /* before any thread: it may set an environment variable */
	return tpd_cli_main(argc, argv);
}
