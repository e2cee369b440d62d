/* fuzz_toml.c - libFuzzer target: TOML config (tpd_toml_parse, then tpd_config_load_mem and
 * tpd_config_load_string with yaml=false). Seeds: tests/fuzz/corpus/fuzz_toml. */
#include "fuzz_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 256 * 1024)
		return 0; /* the grammar, not the size caps, is what is being fuzzed */
	fuzz_config_run(data, size, false);
	return 0;
}
