/* yaml.h - the YAML front end (what the Helm chart renders), producing the same configuration
 * tree as the TOML reader (tpd/cfgtree.h), with the same limits, positions and error format. */
#ifndef TPD_YAML_H
#define TPD_YAML_H

#include <stddef.h>

#include "tpd/cfgtree.h"
#include "tpd/err.h"

/* Parses a single YAML document with libyaml into the same tree: mappings → tables, sequences →
 * arrays; quoted/block scalars → strings; plain true/false → bool, plain integers → int,
 * ~/null/empty → null, anything else → string. Anchors, aliases, tags other than !!str and
 * several documents are rejected. The root must be a mapping (an empty document is an empty
 * table). Same ownership and errors as tpd_toml_parse
 * (tpd/toml.h). */
tpd_err tpd_yaml_parse(const char *name, const char *text, size_t len, tpd_node **out, char *err);

#endif
