// Command benchfmt turns `go test -bench` output into keyline's figure lines,
// `bench <name> <value> <unit>`: every custom metric a benchmark reports with
// b.ReportMetric(v, "<name>") becomes one line, its unit taken from the name's suffix.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchfmt:", err)
		os.Exit(1)
	}
}

// suffixes maps a figure name's ending to the unit printed after its value.
var suffixes = []struct{ suffix, unit string }{
	{"_MBps", "MB/s"}, {"_per_s", "1/s"}, {"_ms", "ms"}, {"_us", "us"}, {"_ns", "ns"},
	{"_MiB", "MiB"}, {"_ratio", "ratio"}, {"_per_backup", "calls"}, {"_count", "count"},
}

// UnitFor returns the unit of a figure name, and false if the name is not a figure.
func UnitFor(name string) (string, bool) {
	for _, s := range suffixes {
		if strings.HasSuffix(name, s.suffix) {
			return s.unit, true
		}
	}
	return "", false
}

func run(r io.Reader, w io.Writer) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		// Benchmark-N  iterations  value unit  value unit ...
		for i := 2; i+1 < len(f); i += 2 {
			unit, ok := UnitFor(f[i+1])
			if !ok {
				continue
			}
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return fmt.Errorf("bad value %q for %s", f[i], f[i+1])
			}
			fmt.Fprintf(w, "bench %s %s %s\n", f[i+1], strconv.FormatFloat(v, 'f', -1, 64), unit)
		}
	}
	return sc.Err()
}
