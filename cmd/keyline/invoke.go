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

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/clock"
	"github.com/keyline/keyline/internal/invoke"
	"github.com/keyline/keyline/internal/localaws/lambda"
)

const invokeUsage = `usage: keyline invoke FUNCTION --event FILE [--data-dir DIR]

Runs one Lambda handler locally, built exactly as Lambda builds it, with the event in FILE
(see events/), against the endpoint in AWS_ENDPOINT_URL (a running ` + "`keyline local`" + `).
The function's environment is the one ` + "`keyline local`" + ` recorded in DIR/stack.json.
Prints the result JSON; a function error prints {"errorType","errorMessage"} and exits 1.

flags:
`

// ErrNoEndpoint is reported when AWS_ENDPOINT_URL is not set.
var ErrNoEndpoint = errors.New("AWS_ENDPOINT_URL is not set: start `keyline local` and export AWS_ENDPOINT_URL=http://127.0.0.1:4566 (its endpoint)")

func cmdInvoke(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keyline invoke", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, invokeUsage); fs.PrintDefaults() }
	eventFile := fs.String("event", "", "the event: a JSON file (see events/)")
	dataDir := fs.String("data-dir", ".keyline", "the data directory of the running `keyline local`")
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
	fn, ok := infra.Description().Function(name)
	if !ok {
		var names []string
		for _, f := range infra.Description().Functions {
			names = append(names, f.Name)
		}
		fmt.Fprintf(stderr, "keyline invoke: no function %q (functions: %v)\n", name, names)
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
	st, err := readStackState(*dataDir)
	if err != nil {
		fmt.Fprintf(stderr, "keyline invoke: read the stack's settings (is `keyline local --data-dir %s` running?): %v\n", *dataDir, err)
		return 1
	}
	env, ok := st.Functions[name]
	if !ok {
		fmt.Fprintf(stderr, "keyline invoke: %s/%s records no environment for %s\n", *dataDir, stackFile, name)
		return 1
	}
	cfg, err := invokeAWSConfig(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "keyline invoke: %v\n", err)
		return 1
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	h, err := buildHandler(ctx, name, env, cfg, clock.Real(), logger)
	if err != nil {
		fmt.Fprintf(stderr, "keyline invoke: %v\n", err)
		return 1
	}
	reg := lambda.New(lambda.Options{Region: cfg.Region, Logger: logger})
	reg.RegisterFunction(lambda.Function{Name: name, Handler: h, Timeout: fn.Timeout})
	out, err := reg.Invoke(ctx, name, event)
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
		return 1
	}
	fmt.Fprintln(stdout, string(out))
	return 0
}

// invokeAWSConfig is the SDK configuration from the environment, as Lambda's would be,
// with AWS_ENDPOINT_URL required; region us-east-1 and local static credentials unless the
// environment sets them.
func invokeAWSConfig(ctx context.Context) (aws.Config, error) {
	if os.Getenv("AWS_ENDPOINT_URL") == "" {
		return aws.Config{}, ErrNoEndpoint
	}
	opts := []func(*config.LoadOptions) error{
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	}
	if os.Getenv("AWS_REGION") == "" && os.Getenv("AWS_DEFAULT_REGION") == "" {
		opts = append(opts, config.WithRegion(localRegion))
	}
	if os.Getenv("AWS_ACCESS_KEY_ID") == "" && os.Getenv("AWS_PROFILE") == "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(localAccessKey, "keyline-local-secret", "")))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS configuration: %w", err)
	}
	return cfg, nil
}
