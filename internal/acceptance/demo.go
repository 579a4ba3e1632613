package acceptance

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/keyline/keyline/internal/clock"
	"github.com/keyline/keyline/internal/local/stack"
)

// StartLocal starts a local deployment (in dir) for the rule checks on an offset clock (so
// the demo can skip days) with a switch that loses CloudTrail deliveries.
func StartLocal(ctx context.Context, dir string, logger *slog.Logger) (demoSystem, func(), error) {
	clk := clock.NewOffset()
	var drop atomic.Bool
	st, err := stack.Start(ctx, stack.Options{
		DataDir: dir, Addr: "127.0.0.1:0", ConsoleAddr: "127.0.0.1:0", Seed: stack.SeedNone,
		Clock: clk, Logger: logger,
		CloudTrailDrop: func(string) bool { return drop.Load() },
	})
	if err != nil {
		return demoSystem{}, nil, err
	}
	sys := demoSystem{
		ConsoleURL:     st.Console,
		OperatorToken:  st.OperatorToken,
		AWS:            st.AWSConfig(),
		DataBucket:     st.DataBucket(),
		BackupBucket:   st.BackupBucket(),
		EventBus:       st.EventBusName(),
		Advance:        clk.Advance,
		DropCloudTrail: drop.Store,
		RegisterFunction: func(name string, handler any) string {
			st.Lambda.Register(name, handler)
			return st.Lambda.ARN(name)
		},
	}
	return sys, st.Close, nil
}

// Run runs the checks (all, or those in want) and prints one line per rule; it
// returns how many failed.
func Run(ctx context.Context, sys demoSystem, want map[string]bool, stdout, stderr io.Writer) int {
	run, err := newDemoRun(ctx, sys)
	failed := 0
	for _, rc := range ruleChecks() {
		if want != nil && !want[rc.ID] {
			continue
		}
		if err != nil {
			fmt.Fprintf(stdout, "FAIL %s could not set up the demo: %v\n", rc.ID, err)
			failed++
			continue
		}
		start := time.Now()
		cctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
		detail, cerr := rc.Check(cctx, run)
		cancel()
		if cerr != nil {
			fmt.Fprintf(stdout, "FAIL %s %s\n", rc.ID, oneLine(cerr.Error()))
			failed++
		} else {
			fmt.Fprintf(stdout, "PASS %s %s\n", rc.ID, oneLine(detail))
		}
		fmt.Fprintf(stderr, "keyline demo: %s took %.1fs\n", rc.ID, time.Since(start).Seconds())
	}
	return failed
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
