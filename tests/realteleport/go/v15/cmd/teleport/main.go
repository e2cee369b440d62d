// Command teleport is Teleport's own teleport binary for the real-teleport tests, with two
// changes made in code, not by patching Teleport:
//   - the review features (allow.review_requests, request thresholds) are switched on, as
//     the auth server of an open-source build refuses roles that use them;
//   - the proxy runs without its web UI, whose assets are not part of the Go module.
//
// Every other subcommand and flag is Teleport's.
package main

import (
	"context"
	"os"

	"github.com/gravitational/teleport/lib/modules"
	"github.com/gravitational/teleport/lib/observability/metrics"
	"github.com/gravitational/teleport/lib/service"
	"github.com/gravitational/teleport/lib/utils"
	"github.com/gravitational/teleport/tool/teleport/common"
)

func main() {
	metrics.RegisterPrometheusCollectors(metrics.BuildCollector())

	// Start from the stock feature set: TestModules.Features returns exactly TestFeatures.
	features := modules.GetModules().Features()
	features.AdvancedAccessWorkflows = true
	modules.SetModules(&modules.TestModules{TestBuildType: modules.BuildOSS, TestFeatures: features})

	_, command, cfg := common.Run(common.Options{Args: os.Args[1:], InitOnly: true})
	if command != "start" || cfg == nil {
		return // common.Run has already run any other subcommand
	}
	cfg.Proxy.DisableWebInterface = true
	if err := service.Run(context.Background(), *cfg, nil); err != nil {
		utils.FatalError(err)
	}
}
