package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/keyline/keyline/internal/local/fault"
	"github.com/keyline/keyline/internal/local/stack"
)

// faultLogFile is the file under the data directory that lists every injected fault.
const faultLogFile = "faults.jsonl"

// localFaults builds the fault injector the flags ask for (nil when none).
func localFaults(file string, seed uint64, crashAt []fault.ProcessCrash, dataDir string, logger *slog.Logger) (*fault.Injector, func(), error) {
	if file == "" && len(crashAt) == 0 {
		return nil, func() {}, nil
	}
	var cfg fault.Config
	if file != "" {
		var err error
		if cfg, err = fault.Load(file); err != nil {
			return nil, nil, err
		}
	}
	if seed != 0 {
		cfg.Seed = seed
	}
	cfg.Crash = append(cfg.Crash, crashAt...)
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, nil, err
	}
	f, err := os.OpenFile(filepath.Join(dataDir, faultLogFile), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, nil, err
	}
	in, err := fault.New(cfg, fault.Options{Log: f, Logger: logger.With("component", "fault")})
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	logger.Warn("fault injection is ON", "seed", cfg.Seed, "rules", len(cfg.Rules), "lambdaCrashes", len(cfg.Lambda), "processCrashes", len(cfg.Crash))
	return in, func() { _ = f.Close() }, nil
}

const localUsage = `usage: keyline local [--data-dir DIR] [--addr 127.0.0.1:4566] [--console-addr 127.0.0.1:8080] [--seed demo|none] [--iam on|off]
                    [--faults FILE] [--fault-seed N] [--crash-at MACHINE:STATE[:N]]...

Runs the whole deployment on one machine: the AWS-compatible endpoint on --addr, the
console and its API on --console-addr. State persists in --data-dir. The operator token is
KEYLINE_OPERATOR_TOKEN when set, else generated and printed. Stops on SIGINT/SIGTERM.

Fault injection (for soak and failure tests; every fault is logged as a JSON line to
DIR/faults.jsonl). --faults FILE is a JSON schedule, seeded so that a seed replays it:

  {"seed": 7,
   "rules": [{"service": "kms", "operation": "*", "throttle": 0.05, "5xx": 0.03, "timeout": 0.02,
              "latency": "20ms", "latencyJitter": "30ms"}],
   "timeoutAfter": "200ms",
   "cloudTrail": {"events": ["DisableKey"], "drop": 0.1, "duplicate": 0.1, "delay": 0.1,
                  "delayBy": "2s", "reorder": 0.1, "reorderWindow": "3s"},
   "lambda": [{"function": "*", "rate": 0.02, "point": "start|end|random", "nth": 0, "window": "500ms"}],
   "crash": [{"machine": "reencrypt", "state": "Commit", "nth": 1}]}

rules: per service (kms, s3, dynamodb, events, states, lambda, sts or *) and operation
(Decrypt, PutItem, GetObject, … or *), the first rule that matches decides: throttling in the
service's own shape (ThrottlingException, SlowDown, ProvisionedThroughputExceededException,
TooManyRequestsException), a 500, or a timeout (held for timeoutAfter, then the connection is
dropped unanswered), and added latency. cloudTrail: events from KMS to the bus lost, delivered
twice, held for delayBy, or held until the next event overtakes them. lambda: a handler crash
(Runtime.ExitError) before it runs, after it ran (its answer lost) or at a random moment.
crash: the whole process exits (status 75, no clean-up) when an execution of MACHINE moves to
STATE the Nth time, before the move is saved; restart it on the same --data-dir to resume.

flags:
`

func cmdLocal(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keyline local", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, localUsage); fs.PrintDefaults() }
	dataDir := fs.String("data-dir", stack.DefaultDataDir, "directory holding all local state")
	addr := fs.String("addr", "127.0.0.1:4566", "loopback address of the AWS-compatible endpoint")
	consoleAddr := fs.String("console-addr", stack.DefaultConsoleAddr, "loopback address of the console API")
	seed := fs.String("seed", stack.SeedNone, "demo data: demo (an org, three apps, generated objects, one backup each) or none")
	iamMode := fs.String("iam", stack.IAMOn, "IAM evaluation in the endpoint: on (as AWS), or off (debugging only; said on every start)")
	verbose := fs.Bool("v", false, "debug logs")
	faultsFile := fs.String("faults", "", "fault schedule (JSON, see above)")
	faultSeed := fs.Uint64("fault-seed", 0, "seed of the fault schedule (overrides the file's seed when set)")
	var crashAt []fault.ProcessCrash
	fs.Func("crash-at", "crash the process when an execution of MACHINE moves to STATE the Nth time (repeatable)", func(v string) error {
		pc, err := fault.ParseCrashAt(v)
		if err != nil {
			return err
		}
		crashAt = append(crashAt, pc)
		return nil
	})
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
	faults, closeFaults, err := localFaults(*faultsFile, *faultSeed, crashAt, *dataDir, logger)
	if err != nil {
		fmt.Fprintf(stderr, "keyline local: %v\n", err)
		return 2
	}
	defer closeFaults()
	st, err := stack.Start(ctx, stack.Options{
		DataDir: *dataDir, Addr: *addr, ConsoleAddr: *consoleAddr, Seed: *seed, IAM: *iamMode,
		OperatorToken: os.Getenv("KEYLINE_OPERATOR_TOKEN"),
		Logger:        logger, Progress: stderr, Faults: faults,
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
