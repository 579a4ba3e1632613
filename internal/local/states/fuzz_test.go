package states

import (
	"context"
	"testing"
	"time"
)

var fuzzSeeds = []string{
	`{"StartAt":"P","States":{"P":{"Type":"Pass","Parameters":{"a.$":"$.x","b.$":"States.Format('{} {}', $.x, $$.State.Name)"},"ResultPath":"$.r","End":true}}}`,
	`{"StartAt":"C","States":{"C":{"Type":"Choice","Choices":[{"And":[{"Variable":"$.n","NumericGreaterThan":1},{"Not":{"Variable":"$.s","StringMatches":"a*"}}],"Next":"S"}],"Default":"F"},"S":{"Type":"Succeed"},"F":{"Type":"Fail","ErrorPath":"$.e","CausePath":"$.c"}}}`,
	`{"StartAt":"M","States":{"M":{"Type":"Map","ItemsPath":"$.items","MaxConcurrency":2,"ItemSelector":{"i.$":"$$.Map.Item.Index"},"ItemProcessor":{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}},"End":true}}}`,
	`{"StartAt":"Par","States":{"Par":{"Type":"Parallel","Branches":[{"StartAt":"A","States":{"A":{"Type":"Fail","Error":"E"}}}],"Retry":[{"ErrorEquals":["E"],"MaxAttempts":1}],"Catch":[{"ErrorEquals":["States.ALL"],"Next":"D"}],"End":true},"D":{"Type":"Pass","End":true}}}`,
	`{"StartAt":"W","States":{"W":{"Type":"Wait","SecondsPath":"$.s","Next":"P"},"P":{"Type":"Pass","InputPath":"$.a[1:]","OutputPath":"$..b","End":true}}}`,
	`{"StartAt":"P","States":{"P":{"Type":"Pass","Parameters":{"r.$":"States.ArrayPartition(States.ArrayRange(1, 9, 2), 2)","j.$":"States.JsonMerge(States.StringToJson($.s), $.o, false)"},"End":true}}}`,
	`{"StartAt":"P","States":{"P":{"Type":"Pass","Parameters":{"f.$":"$.users[?(@.age > 1 && @.name =~ /a.*/)]"},"End":true}}}`,
}

var fuzzInputs = []string{`{}`, `{"x":1,"n":2,"s":"abc","e":"E","c":"C","items":[1,2,3],"s2":0}`, `{"items":[{"b":1}],"a":[1,{"b":2}],"s":0}`, `{"s":"{\"k\":1}","o":{"z":2},"users":[{"age":2,"name":"ann"}]}`, `[]`, `null`}

func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, def []byte) {
		m, err := Parse(def)
		if err != nil {
			if m != nil {
				t.Fatal("Parse returned a machine with an error")
			}
			return
		}
		if _, ok := m.States[m.StartAt]; !ok {
			t.Fatalf("valid machine without its StartAt state %q", m.StartAt)
		}
	})
}

func FuzzRun(f *testing.F) {
	for _, s := range fuzzSeeds {
		for _, in := range fuzzInputs {
			f.Add(s, in)
		}
	}
	f.Fuzz(func(t *testing.T, def, input string) {
		m, err := Parse([]byte(def))
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		res := m.Run(ctx, []byte(input), Options{Clock: &instantClock{t: time.Unix(0, 0)}, MaxChildConcurrency: 4})
		switch res.Status {
		case StatusSucceeded:
			if _, err := decodeJSON(res.Output); err != nil {
				t.Fatalf("output is not JSON: %q", res.Output)
			}
		case StatusFailed, StatusAborted, StatusTimedOut:
		default:
			t.Fatalf("unexpected status %q", res.Status)
		}
	})
}
