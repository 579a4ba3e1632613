package eventpattern

import (
	"errors"
	"testing"
)

// FuzzCompileMatch checks that any pattern and event are handled without a
// panic, that compile errors are InvalidPatternErrors, and that matching is
// deterministic.
func FuzzCompileMatch(f *testing.F) {
	f.Add([]byte(`{"source":["aws.kms"],"detail":{"eventName":[{"prefix":"Dis"}]}}`), []byte(`{"source":"aws.kms","detail":{"eventName":"DisableKey"}}`))
	f.Add([]byte(`{"$or":[{"a":[{"numeric":[">",1,"<=",5]}]},{"b":[{"exists":false}]}]}`), []byte(`{"a":[1,2,3]}`))
	f.Add([]byte(`{"x":{"y":[{"anything-but":{"wildcard":["*a*","b*"]}}]}}`), []byte(`{"x":[{"y":"cab"},{"y":null}]}`))
	f.Add([]byte(`{"ip":[{"cidr":"10.0.0.0/8"}],"s":[{"suffix":{"equals-ignore-case":".PNG"}}]}`), []byte(`{"ip":"10.2.3.4","s":"a.png"}`))
	f.Fuzz(func(t *testing.T, pattern, event []byte) {
		p, err := Compile(pattern)
		if err != nil {
			var ipe *InvalidPatternError
			if !errors.As(err, &ipe) {
				t.Fatalf("compile error of type %T: %v", err, err)
			}
			return
		}
		a, errA := p.Match(event)
		b, errB := p.Match(event)
		if a != b || (errA == nil) != (errB == nil) {
			t.Fatalf("non-deterministic match")
		}
		if errA != nil && !errors.Is(errA, ErrInvalidEvent) {
			t.Fatalf("match error %v is not ErrInvalidEvent", errA)
		}
	})
}
