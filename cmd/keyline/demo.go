package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/keyline/keyline/internal/clock"
)

// cmdDemo plays the product story end to end on a fresh local deployment and prints one
// line per rule of DESIGN.md: `PASS R6 <what was checked>` or `FAIL R6 <why>`.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keyline demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keep := fs.Bool("keep", false, "keep the temporary data directory (its path is printed on stderr)")
	verbose := fs.Bool("verbose", false, "send the local deployment's logs to stderr")
	only := fs.String("only", "", "run only these rules, comma-separated (e.g. R1,B8)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: keyline demo [--only R1,R2,...] [--keep] [--verbose]")
		fmt.Fprintln(stderr, "\nPlays the product story on a fresh temporary data directory and prints one line per rule")
		fmt.Fprintln(stderr, "(R1–R8, B1–B8 of DESIGN.md): PASS <rule> <what was checked> or FAIL <rule> <why>.")
		fmt.Fprintln(stderr, "Exits 1 if any rule fails.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	dir, err := os.MkdirTemp("", "keyline-demo-*")
	if err != nil {
		fmt.Fprintln(stderr, "keyline demo:", err)
		return 1
	}
	if *keep {
		fmt.Fprintln(stderr, "keyline demo: data directory", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	logger := slog.New(slog.DiscardHandler)
	if *verbose {
		logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	fmt.Fprintln(stderr, "keyline demo: starting a local deployment…")
	sys, stop, err := startDemoSystem(ctx, dir, logger)
	if err != nil {
		fmt.Fprintln(stderr, "keyline demo:", err)
		return 1
	}
	defer stop()
	var want map[string]bool
	if *only != "" {
		want = map[string]bool{}
		for _, id := range strings.Split(*only, ",") {
			want[strings.ToUpper(strings.TrimSpace(id))] = true
		}
	}
	failed := runRules(ctx, sys, want, stdout, stderr)
	if failed > 0 {
		fmt.Fprintf(stderr, "keyline demo: %d rule(s) failed\n", failed)
		return 1
	}
	return 0
}

// startDemoSystem starts a local deployment for the rule checks on an offset clock (so
// the demo can skip days) with a switch that loses CloudTrail deliveries.
func startDemoSystem(ctx context.Context, dir string, logger *slog.Logger) (demoSystem, func(), error) {
	clk := clock.NewOffset()
	var drop atomic.Bool
	st, err := StartStack(ctx, StackOptions{
		DataDir: dir, Addr: "127.0.0.1:0", ConsoleAddr: "127.0.0.1:0", Seed: SeedNone,
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

// runRules runs the checks (all, or those in want) and prints one line per rule; it
// returns how many failed.
func runRules(ctx context.Context, sys demoSystem, want map[string]bool, stdout, stderr io.Writer) int {
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
