package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/keyline/keyline/internal/local/eventpattern"
)

const eventsUsage = `usage: keyline events test-event-pattern --event-pattern JSON|file://F --event JSON|file://F

Tests whether an event matches an EventBridge event pattern, like
'aws events test-event-pattern'. Prints {"Result": true} or {"Result": false}
and exits 0; an invalid pattern prints InvalidEventPatternException: <reason>
on stderr and exits 2.
`

// cmdEvents runs the EventBridge tools.
func cmdEvents(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, eventsUsage)
		return 2
	}
	switch args[0] {
	case "--help", "-h", "help":
		fmt.Fprint(stderr, eventsUsage)
		return 0
	case "test-event-pattern":
		return cmdTestEventPattern(args[1:], stdout, stderr)
	default:
		fmt.Fprintf(stderr, "keyline events: unknown subcommand %q\n\n%s", args[0], eventsUsage)
		return 2
	}
}

func cmdTestEventPattern(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keyline events test-event-pattern", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, eventsUsage) }
	pattern := fs.String("event-pattern", "", "the event pattern: JSON text or file://PATH")
	event := fs.String("event", "", "the event: JSON text or file://PATH")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "keyline events test-event-pattern: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *pattern == "" || *event == "" {
		fmt.Fprintln(stderr, "keyline events test-event-pattern: --event-pattern and --event are required")
		return 2
	}
	patternText, err := readArg(*pattern)
	if err != nil {
		fmt.Fprintf(stderr, "keyline events test-event-pattern: --event-pattern: %v\n", err)
		return 2
	}
	eventText, err := readArg(*event)
	if err != nil {
		fmt.Fprintf(stderr, "keyline events test-event-pattern: --event: %v\n", err)
		return 2
	}
	p, err := eventpattern.Compile(patternText)
	if err != nil {
		fmt.Fprintf(stderr, "InvalidEventPatternException: %v\n", err)
		return 2
	}
	ok, err := p.Match(eventText)
	if err == nil {
		err = eventpattern.CheckEnvelope(eventText)
	}
	if err != nil {
		// AWS answers a ValidationException for an event that is not a JSON
		// object or lacks id, account, source, time, region or detail-type.
		fmt.Fprintln(stderr, "ValidationException: Parameter Event is not valid.")
		return 2
	}
	fmt.Fprintf(stdout, "{\"Result\": %t}\n", ok)
	return 0
}

// readArg returns the value of a flag given as JSON text or as file://PATH.
func readArg(v string) ([]byte, error) {
	if path, ok := strings.CutPrefix(v, "file://"); ok {
		return os.ReadFile(path)
	}
	return []byte(v), nil
}
