// Command pagerduty-upstream is upstream's Teleport PagerDuty plugin (integrations/access/
// pagerduty) with one addition: the PagerDuty API base URL, which its TOML cannot set, is
// taken from -pagerduty-url or TPD_UPSTREAM_PAGERDUTY_URL, so it can talk to a fake PagerDuty.
//
//	pagerduty-upstream -config plugin.toml [-pagerduty-url https://127.0.0.1:PORT] [-debug]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/gravitational/teleport/integrations/access/pagerduty"
	"github.com/gravitational/teleport/integrations/lib"
	"github.com/gravitational/teleport/integrations/lib/logger"
)

func main() {
	cfgPath := flag.String("config", "/etc/teleport-pagerduty.toml", "TOML config file")
	url := flag.String("pagerduty-url", os.Getenv("TPD_UPSTREAM_PAGERDUTY_URL"), "PagerDuty API base URL")
	debug := flag.Bool("debug", false, "debug logging")
	flag.Parse()
	if err := run(*cfgPath, *url, *debug); err != nil {
		fmt.Fprintln(os.Stderr, "pagerduty-upstream:", err)
		os.Exit(1)
	}
}

func run(cfgPath, url string, debug bool) error {
	logger.Init()
	conf, err := pagerduty.LoadConfig(cfgPath)
	if err != nil {
		return err
	}
	if url != "" {
		conf.Pagerduty.APIEndpoint = url
	}
	if debug {
		conf.Log.Severity = "debug"
	}
	if err := logger.Setup(conf.Log); err != nil {
		return err
	}
	app, err := pagerduty.NewApp(*conf)
	if err != nil {
		return err
	}
	go lib.ServeSignals(app, 15*time.Second)
	return app.Run(context.Background())
}
