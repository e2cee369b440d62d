//go:build tools

// Keeps go.sum entries for the Teleport commands built straight from Teleport's module.
package tools

import (
	_ "github.com/gravitational/teleport/tool/tbot"
	_ "github.com/gravitational/teleport/tool/tctl"
)
