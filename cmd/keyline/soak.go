package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/keyline/keyline/internal/soak"
)

const soakUsage = `usage: keyline soak [--seconds N] [--seed N] [--apps N] [--orgs N] [--fault-rate R] [--crashes N] [--data-dir DIR] [--artifact FILE]

Runs a local deployment (` + "`keyline local`" + ` as a child process, on its own data directory) under a
concurrent workload of several orgs' apps (writes and reads, scheduled and on-demand backups,
re-encryptions, key revocations and reactivations, restores and drills, calls about other
orgs' apps) with injected faults (--fault-rate of all AWS calls, CloudTrail events lost,
repeated, delayed and reordered, handler crashes) and --crashes whole-process crashes at state
transitions, each followed by a restart on the same data directory. The invariants of
DESIGN §7 (I1–I10) are checked throughout and at the end. Prints
  faults injected: N
  crashes: N
  invariants: N checked, M violated
writes the result and a timeline of every violation to --artifact, and exits 1 unless M is 0.
The same --seed replays the same schedule of actions and faults.

flags:
`

func cmdSoak(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keyline soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, soakUsage); fs.PrintDefaults() }
	seconds := fs.Int("seconds", int(soak.DefaultDuration/time.Second), "how long the workload runs")
	seed := fs.Uint64("seed", 0, "seed of the workload and the faults (0: random, printed)")
	apps := fs.Int("apps", soak.DefaultApps, "apps")
	orgs := fs.Int("orgs", soak.DefaultOrgs, "orgs the apps belong to")
	rate := fs.Float64("fault-rate", soak.DefaultFaultRate, "share of AWS calls that fail")
	crashes := fs.Int("crashes", soak.DefaultCrashes, "whole-process crashes to inject")
	workers := fs.Int("workers", soak.DefaultWorkers, "concurrent clients")
	dataDir := fs.String("data-dir", "", "the deployment's data directory (default: a temporary one, removed after a clean run)")
	artifact := fs.String("artifact", soak.DefaultArtifact, "where the result and the violations' timeline are written")
	verbose := fs.Bool("v", false, "the driver's logs on stderr")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "keyline soak: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *seconds <= 0 {
		fmt.Fprintln(stderr, "keyline soak: --seconds must be positive")
		return 2
	}
	logger := slog.New(slog.DiscardHandler)
	if *verbose {
		logger = slog.New(slog.NewTextHandler(stderr, nil))
	}
	_, err := soak.Run(ctx, soak.Options{
		Duration: time.Duration(*seconds) * time.Second, Seed: *seed, Apps: *apps, Orgs: *orgs,
		FaultRate: *rate, Crashes: *crashes, Workers: *workers, DataDir: *dataDir, Artifact: *artifact,
		Out: stdout, Logger: logger,
	})
	if err != nil {
		fmt.Fprintf(stderr, "keyline soak: %v\n", err)
		return 1
	}
	return 0
}
