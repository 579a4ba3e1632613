package jsonpath

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

func doc(t *testing.T, s string) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader([]byte(s)))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestGet(t *testing.T) {
	d := doc(t, `{"a":{"b":[10,20,30,40]},"users":[{"n":"ann","age":3},{"n":"bob","age":7,"x":{"n":"deep"}}],"we ird":{"k'q":1},"input-value":5}`)
	cases := map[string]string{
		`$`:                            ``,
		`$.a.b[0]`:                     `10`,
		`$.a.b[-1]`:                    `40`,
		`$['a']["b"][1]`:               `20`,
		`$.a.b[1:3]`:                   `[20,30]`,
		`$.a.b[:2]`:                    `[10,20]`,
		`$.a.b[::2]`:                   `[10,30]`,
		`$.a.b[0,3]`:                   `[10,40]`,
		`$.a.b[*]`:                     `[10,20,30,40]`,
		`$.users[*].n`:                 `["ann","bob"]`,
		`$..n`:                         `["ann","bob","deep"]`,
		`$.users[?(@.age > 5)].n`:      `["bob"]`,
		`$.users[?(@.n == 'ann')].age`: `[3]`,
		`$.users[?(@.x)].n`:            `["bob"]`,
		`$.users[?(@.n =~ /b.*/)].age`: `[7]`,
		`$['we ird']['k\'q']`:          `1`,
		`$.input-value`:                `5`,
		`$.a.b.length()`:               `4`,
		`$.missing[*]`:                 `[]`,
	}
	for src, want := range cases {
		p, err := Compile(src)
		if err != nil {
			t.Errorf("Compile(%q): %v", src, err)
			continue
		}
		got, err := p.Get(d)
		if err != nil {
			t.Errorf("%s: %v", src, err)
			continue
		}
		if want == "" {
			continue
		}
		if !Equal(got, doc(t, want)) {
			b, _ := json.Marshal(got)
			t.Errorf("%s = %s, want %s", src, b, want)
		}
	}
}

func TestNotFound(t *testing.T) {
	p, err := Compile(`$.a.nope`)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Get(doc(t, `{"a":{}}`))
	var nf *NotFoundError
	if !errors.As(err, &nf) || !errors.Is(err, ErrNotFound) || nf.Path != `$['a']['nope']` {
		t.Fatalf("got %v", err)
	}
	if p.Definite() != true || p.IsReference() != true {
		t.Fatal("a.nope is a definite reference path")
	}
}

func TestSyntaxErrors(t *testing.T) {
	for _, src := range []string{``, `a`, `$.`, `$[`, `$['a'`, `$[1:2:0]`, `$[?(@.a ==)]`, `$[x]`, `$..`, `$[?(@.a =~ /(/)]`} {
		if _, err := Compile(src); !errors.Is(err, ErrSyntax) {
			t.Errorf("Compile(%q) = %v, want a syntax error", src, err)
		}
	}
}

func FuzzCompile(f *testing.F) {
	for _, s := range []string{`$.a[0]`, `$..b[?(@.c > 1 || !@.d)]`, `$['x'][1:-1:2]`, `$.a.length()`} {
		f.Add(s)
	}
	d := map[string]any{"a": []any{map[string]any{"b": json.Number("1")}, "s"}, "x": map[string]any{"y": nil}}
	f.Fuzz(func(t *testing.T, src string) {
		p, err := Compile(src)
		if err != nil {
			return
		}
		_, _ = p.Get(d)
		_ = p.Canonical()
	})
}
