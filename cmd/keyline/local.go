package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/keyline/keyline/internal/local/stack"
)

const localUsage = `usage: keyline local [--data-dir DIR] [--addr 127.0.0.1:4566] [--console-addr 127.0.0.1:8080] [--seed demo|none] [--iam on|off]

Runs the whole deployment on one machine: the AWS-compatible endpoint on --addr, the
console and its API on --console-addr. State persists in --data-dir. The operator token is
KEYLINE_OPERATOR_TOKEN when set, else generated and printed. Stops on SIGINT/SIGTERM.

flags:
`

func cmdLocal(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keyline local", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, localUsage); fs.PrintDefaults() }
	dataDir := fs.String("data-dir", ".keyline", "directory holding all local state")
	addr := fs.String("addr", "127.0.0.1:4566", "loopback address of the AWS-compatible endpoint")
	consoleAddr := fs.String("console-addr", "127.0.0.1:8080", "loopback address of the console API")
	seed := fs.String("seed", stack.SeedNone, "demo data: demo (an org, three apps, generated objects, one backup each) or none")
	iamMode := fs.String("iam", "", "IAM evaluation in the endpoint: on, or off (debugging only; said on every start)")
	verbose := fs.Bool("v", false, "debug logs")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "keyline local: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	st, err := stack.Start(ctx, stack.Options{
		DataDir: *dataDir, Addr: *addr, ConsoleAddr: *consoleAddr, Seed: *seed, IAM: *iamMode,
		OperatorToken: os.Getenv("KEYLINE_OPERATOR_TOKEN"),
		Logger:        logger, Progress: stderr,
	})
	if err != nil {
		fmt.Fprintf(stderr, "keyline local: %v\n", err)
		if errors.Is(err, stack.ErrOptions) {
			return 2
		}
		return 1
	}
	fmt.Fprintf(stdout, "endpoint %s\n", st.Endpoint)
	fmt.Fprintf(stdout, "console %s\n", st.Console)
	fmt.Fprintf(stdout, "operator-token %s\n", st.OperatorToken)
	fmt.Fprintf(stdout, "data-dir %s\n", st.DataDir)
	if st.IAM == stack.IAMOff {
		fmt.Fprintln(stderr, "keyline local: IAM evaluation is OFF: every call is allowed, which AWS would not do (debugging only)")
	}
	if f, ok := stdout.(interface{ Sync() error }); ok {
		_ = f.Sync()
	}
	<-ctx.Done()
	logger.Info("stopping")
	st.Close()
	logger.Info("stopped")
	return 0
}
