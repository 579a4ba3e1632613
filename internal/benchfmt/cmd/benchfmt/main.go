// Command benchfmt turns `go test -bench` output (standard input) into keyline's figure
// lines, `bench <name> <value> <unit>`, each followed by its notes (`# <name>: <text>`), and
// fails when the run does not hold exactly the expected figures (see package benchfmt).
//
// Usage: benchfmt -expected bench/expected.txt [-notes FILE] [-partial] < go-test-output
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/keyline/keyline/internal/benchfmt"
)

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchfmt:", err)
		os.Exit(1)
	}
}

func run(args []string, in io.Reader, out io.Writer) error {
	fs := flag.NewFlagSet("benchfmt", flag.ContinueOnError)
	expected := fs.String("expected", "", "the list of expected figures (required)")
	notes := fs.String("notes", "", "the notes file the benchmarks wrote ("+benchfmt.NotesEnv+"), if any")
	partial := fs.Bool("partial", false, "a run of some benchmarks only: expected figures may be missing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *expected == "" {
		return errors.New("-expected is required")
	}
	ef, err := os.Open(*expected)
	if err != nil {
		return err
	}
	defer ef.Close()
	exp, err := benchfmt.ParseExpected(ef)
	if err != nil {
		return fmt.Errorf("%s: %w", *expected, err)
	}
	r, err := benchfmt.Parse(in)
	if err != nil {
		return err
	}
	if *notes != "" {
		nf, err := os.Open(*notes)
		switch {
		case errors.Is(err, os.ErrNotExist): // no benchmark wrote a note
		case err != nil:
			return err
		default:
			defer nf.Close()
			if err := r.ParseNotes(nf); err != nil {
				return fmt.Errorf("%s: %w", *notes, err)
			}
		}
	}
	return benchfmt.Format(out, r, exp, *partial)
}
