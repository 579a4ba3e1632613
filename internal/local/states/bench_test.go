package states

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// BenchmarkTransitions runs a 20-state machine of Pass and Choice states and reports the time
// per state transition.
func BenchmarkTransitions(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"StartAt":"S0","States":{`)
	for i := 0; i < 20; i++ {
		if i > 0 {
			sb.WriteString(",")
		}
		next := fmt.Sprintf(`"Next":"S%d"`, i+1)
		if i == 19 {
			next = `"End":true`
		}
		if i%2 == 0 {
			fmt.Fprintf(&sb, `"S%d":{"Type":"Pass","Parameters":{"n.$":"$.n","i":%d},%s}`, i, i, next)
		} else if i == 19 {
			fmt.Fprintf(&sb, `"S%d":{"Type":"Pass",%s}`, i, next)
		} else {
			fmt.Fprintf(&sb, `"S%d":{"Type":"Choice","Choices":[{"Variable":"$.n","NumericGreaterThan":0,"Next":"S%d"}],"Default":"S%d"}`, i, i+1, i+1)
		}
	}
	sb.WriteString(`}}`)
	m, err := Parse([]byte(sb.String()))
	if err != nil {
		b.Fatal(err)
	}
	input := []byte(`{"n":1}`)
	opts := Options{Execution: testInfo}
	// Each iteration runs the machine 200 times, so that even `-benchtime 1x` measures
	// 4000 transitions rather than one cold run.
	const runs = 200
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		for j := 0; j < runs; j++ {
			if res := m.Run(context.Background(), input, opts); res.Status != StatusSucceeded {
				b.Fatalf("%+v", res)
			}
		}
	}
	elapsed := time.Since(start)
	b.ReportMetric(float64(elapsed.Nanoseconds())/1000/float64(b.N*runs*20), "states_transition_us")
}

// BenchmarkMap10000 runs a Map over 10000 items (MaxConcurrency 40, a Pass inside). It is a
// Distributed Map, each item a child execution, as in AWS: inline, 10000 items take more
// than the 25,000 history events a Standard execution may have.
func BenchmarkMap10000(b *testing.B) {
	m, err := Parse([]byte(`{"StartAt":"M","States":{"M":{"Type":"Map","ItemsPath":"$.items","MaxConcurrency":40,
	  "ItemProcessor":{"ProcessorConfig":{"Mode":"DISTRIBUTED","ExecutionType":"STANDARD"},
	    "StartAt":"P","States":{"P":{"Type":"Pass","Parameters":{"v.$":"$"},"End":true}}},"End":true}}}`))
	if err != nil {
		b.Fatal(err)
	}
	items := make([]string, 10000)
	for i := range items {
		items[i] = fmt.Sprint(i)
	}
	input := []byte(`{"items":[` + strings.Join(items, ",") + `]}`)
	opts := Options{Execution: testInfo}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if res := m.Run(context.Background(), input, opts); res.Status != StatusSucceeded {
			b.Fatalf("%+v", res)
		}
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "map_10000_items_ms")
}
