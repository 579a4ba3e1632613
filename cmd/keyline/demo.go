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

	"github.com/keyline/keyline/internal/acceptance"
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
	sys, stop, err := acceptance.StartLocal(ctx, dir, logger)
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
	failed := acceptance.Run(ctx, sys, want, stdout, stderr)
	if failed > 0 {
		fmt.Fprintf(stderr, "keyline demo: %d rule(s) failed\n", failed)
		return 1
	}
	return 0
}
