// Command keyline runs keyline on one machine: the local AWS endpoint and console
// (`keyline local`), the end-to-end demo, single Lambda invocations, and the
// EventBridge-pattern and States-Language tools. See API.md.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// command is one subcommand: it gets its arguments (without its own name) and
// returns the process exit code. Results go to stdout, everything else to stderr.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() map[string]command {
	return map[string]command{
		"local":      {"run the whole deployment on one machine", cmdLocal},
		"demo":       {"play the product story end to end, one PASS/FAIL line per rule", cmdDemo},
		"invoke":     {"run one Lambda handler with an event file", cmdInvoke},
		"events":     {"EventBridge tools (test-event-pattern)", cmdEvents},
		"states":     {"States Language tools (validate, run)", cmdStates},
		"key-policy": {"the key policy statements a customer grants keyline for an org", cmdKeyPolicy},
		"soak":       {"run the deployment under load, faults and crashes, checking the invariants", cmdSoak},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "--help" || args[0] == "-h" || args[0] == "help" {
		usage(stderr, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "keyline: unknown command %q\n\n", args[0])
		usage(stderr, cmds)
		return 2
	}
	return c.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: keyline <command> [flags]  (keyline <command> --help for its flags)")
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, cmds[n].summary)
	}
}
