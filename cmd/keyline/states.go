package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/keyline/keyline/internal/clock"
	"github.com/keyline/keyline/internal/local/states"
)

const statesUsage = `usage: keyline states validate --definition file://F
       keyline states run --definition file://F [--input JSON|file://F]

validate  checks an Amazon States Language definition (JSONPath). Prints nothing and
          exits 0 when it is valid; lists every problem on stderr and exits 2 otherwise.
run       executes a definition that uses no service integrations (a Task state fails the
          execution) and prints one JSON object: {"status":"SUCCEEDED","output":...} or
          {"status":"FAILED","error":"...","cause":"..."}; exits 0 either way, 2 only when the
          definition itself is invalid. The input defaults to {}.
`

// cmdStates runs the States Language tools.
func cmdStates(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, statesUsage)
		return 2
	}
	switch args[0] {
	case "--help", "-h", "help":
		fmt.Fprint(stderr, statesUsage)
		return 0
	case "validate":
		return cmdStatesValidate(args[1:], stderr)
	case "run":
		return cmdStatesRun(ctx, args[1:], stdout, stderr)
	default:
		fmt.Fprintf(stderr, "keyline states: unknown subcommand %q\n\n%s", args[0], statesUsage)
		return 2
	}
}

// statesArg returns a flag's value given as text or as file://PATH.
func statesArg(v string) ([]byte, error) {
	if path, ok := strings.CutPrefix(v, "file://"); ok {
		return os.ReadFile(path)
	}
	return []byte(v), nil
}

// loadStatesDefinition parses the flags of a states subcommand and the definition they name.
// It returns the exit code to use when it fails (ok false).
func loadStatesDefinition(name string, args []string, withInput bool, stderr io.Writer) (m *states.Machine, input []byte, code int, ok bool) {
	fs := flag.NewFlagSet("keyline states "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, statesUsage) }
	def := fs.String("definition", "", "the state machine definition: file://PATH (or JSON text)")
	var in *string
	if withInput {
		in = fs.String("input", "", "the execution input: JSON text or file://PATH (default {})")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, nil, 0, false
		}
		return nil, nil, 2, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "keyline states %s: unexpected argument %q\n", name, fs.Arg(0))
		return nil, nil, 2, false
	}
	if *def == "" {
		fmt.Fprintf(stderr, "keyline states %s: --definition is required\n", name)
		return nil, nil, 2, false
	}
	text, err := statesArg(*def)
	if err != nil {
		fmt.Fprintf(stderr, "keyline states %s: --definition: %v\n", name, err)
		return nil, nil, 2, false
	}
	if withInput && *in != "" {
		input, err = statesArg(*in)
		if err != nil {
			fmt.Fprintf(stderr, "keyline states %s: --input: %v\n", name, err)
			return nil, nil, 2, false
		}
		if !json.Valid(input) {
			fmt.Fprintf(stderr, "keyline states %s: --input is not valid JSON\n", name)
			return nil, nil, 2, false
		}
	}
	m, err = states.Parse(text)
	if err != nil {
		var ve *states.ValidationError
		if errors.As(err, &ve) {
			fmt.Fprintf(stderr, "keyline states %s: invalid definition (%d problem(s)):\n", name, len(ve.Problems))
			for _, p := range ve.Problems {
				fmt.Fprintf(stderr, "  %s\n", p)
			}
		} else {
			fmt.Fprintf(stderr, "keyline states %s: %v\n", name, err)
		}
		return nil, nil, 2, false
	}
	return m, input, 0, true
}

func cmdStatesValidate(args []string, stderr io.Writer) int {
	_, _, code, ok := loadStatesDefinition("validate", args, false, stderr)
	if !ok {
		return code
	}
	return 0
}

func cmdStatesRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	m, input, code, ok := loadStatesDefinition("run", args, true, stderr)
	if !ok {
		return code
	}
	res := m.Run(ctx, input, states.Options{
		Clock: clock.Real(),
		Execution: states.ExecutionInfo{
			ID:               "arn:aws:states:us-east-1:000000000000:execution:local:run",
			Name:             "run",
			RoleArn:          "arn:aws:iam::000000000000:role/local",
			StateMachineID:   "arn:aws:states:us-east-1:000000000000:stateMachine:local",
			StateMachineName: "local",
		},
	})
	out := map[string]any{"status": res.Status}
	if res.Status == states.StatusSucceeded {
		out["output"] = json.RawMessage(res.Output)
	} else {
		if res.Error != "" {
			out["error"] = res.Error
		}
		if res.Cause != "" {
			out["cause"] = res.Cause
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		fmt.Fprintf(stderr, "keyline states run: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s\n", b)
	return 0
}
