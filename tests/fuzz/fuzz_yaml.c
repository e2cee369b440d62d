/* fuzz_yaml.c - libFuzzer target: YAML config (tpd_yaml_parse, then tpd_config_load_mem and
 * tpd_config_load_string with yaml=true). Seeds: tests/fuzz/corpus/fuzz_yaml. */
#include "fuzz_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 256 * 1024)
		return 0;
	fuzz_config_run(data, size, true);
	return 0;
}
