package acceptance

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/keyline/keyline/internal/clock"
	"github.com/keyline/keyline/internal/invariants"
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
		Customer:       st.CustomerAWSConfig(stack.CustomerAccount),
		DataBucket:     st.DataBucket(),
		BackupBucket:   st.BackupBucket(),
		EventBus:       st.EventBusName(),
		ProviderKeyARN: st.ProviderKeyARN(),
		WaitIdle:       st.WaitIdle,
		Advance:        clk.Advance,
		DropCloudTrail: drop.Store,
		RegisterFunction: func(name string, handler any) string {
			st.Lambda.Register(name, handler)
			return st.Lambda.ARN(name)
		},
		Invariants: func(ctx context.Context) (invariants.Report, error) {
			if err := st.WaitIdle(ctx); err != nil {
				return invariants.Report{}, fmt.Errorf("waiting for the deployment to be idle: %w", err)
			}
			cfg := st.AWSConfig()
			snap, err := invariants.Collect(ctx, invariants.Sources{
				Store: st.Store, S3: s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true }),
				DataBucket: st.DataBucket(), SFN: sfn.NewFromConfig(cfg),
			}, clk.Now())
			if err != nil {
				return invariants.Report{}, err
			}
			return invariants.Check(snap), nil
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
		detail, cerr := runCheck(cctx, run, rc)
		cancel()
		if cerr != nil {
			fmt.Fprintf(stdout, "FAIL %s %s\n", rc.ID, oneLine(cerr.Error()))
			failed++
		} else {
			fmt.Fprintf(stdout, "PASS %s %s\n", rc.ID, oneLine(detail))
		}
		fmt.Fprintf(stderr, "keyline demo: %s took %.1fs\n", rc.ID, time.Since(start).Seconds())
	}
	if want == nil && sys.Invariants != nil && err == nil {
		failed += reportInvariants(ctx, sys, stdout)
	}
	return failed
}

// reportInvariants checks the invariants over everything the demo did and prints one line;
// it returns 1 if any is violated (each violation on a line of its own), else 0.
func reportInvariants(ctx context.Context, sys demoSystem, stdout io.Writer) int {
	ctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	rep, err := sys.Invariants(ctx)
	if err != nil {
		fmt.Fprintf(stdout, "FAIL invariants could not be checked: %s\n", oneLine(err.Error()))
		return 1
	}
	if len(rep.Violations) > 0 {
		fmt.Fprintf(stdout, "FAIL invariants: %d checked, %d violated\n", rep.Checked, len(rep.Violations))
		for _, v := range rep.Violations {
			fmt.Fprintf(stdout, "  %s\n", oneLine(v.String()))
		}
		return 1
	}
	fmt.Fprintf(stdout, "PASS invariants: %d checked, 0 violated (I1, I3, I4, I7, I9 over the lineage, the objects at rest and the executions)\n", rep.Checked)
	return 0
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
