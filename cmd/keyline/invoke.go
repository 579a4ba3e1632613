package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/keyline/keyline/internal/local/invoke"
	"github.com/keyline/keyline/internal/local/stack"
)

const invokeUsage = `usage: keyline invoke FUNCTION --event FILE [--data-dir DIR]

Runs one Lambda handler locally, built exactly as Lambda builds it, with the event in FILE
(see events/), against the endpoint in AWS_ENDPOINT_URL (a running ` + "`keyline local`" + `).
The function's environment is the one ` + "`keyline local`" + ` recorded in DIR/stack.json.
Prints the result JSON; a function error prints {"errorType","errorMessage"} and exits 1.

flags:
`

func cmdInvoke(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keyline invoke", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, invokeUsage); fs.PrintDefaults() }
	eventFile := fs.String("event", "", "the event: a JSON file (see events/)")
	dataDir := fs.String("data-dir", stack.DefaultDataDir, "the data directory of the running `keyline local`")
	verbose := fs.Bool("v", false, "the handler's logs on stderr at debug level")
	// The function name comes first (keyline invoke NAME --event F), but accept flags first too.
	var name string
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		name, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if name == "" && fs.NArg() > 0 {
		name = fs.Arg(0)
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return 2
		}
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "keyline invoke: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if name == "" || *eventFile == "" {
		fmt.Fprintln(stderr, "keyline invoke: a FUNCTION and --event FILE are required")
		fs.Usage()
		return 2
	}
	event, err := os.ReadFile(*eventFile)
	if err != nil {
		fmt.Fprintf(stderr, "keyline invoke: --event: %v\n", err)
		return 2
	}
	if !json.Valid(event) {
		fmt.Fprintf(stderr, "keyline invoke: --event %s: not valid JSON\n", *eventFile)
		return 2
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	out, err := stack.InvokeOnce(ctx, *dataDir, name, event, logger)
	if err != nil {
		if fe, ok := invoke.AsFunctionError(err); ok {
			b, _ := json.Marshal(struct {
				Type    string `json:"errorType"`
				Message string `json:"errorMessage"`
			}{fe.Type, fe.Message})
			fmt.Fprintln(stdout, string(b))
			return 1
		}
		fmt.Fprintf(stderr, "keyline invoke: %v\n", err)
		if errors.Is(err, stack.ErrUnknownFunction) {
			return 2
		}
		return 1
	}
	fmt.Fprintln(stdout, string(out))
	return 0
}
