package states

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/keyline/keyline/internal/local/states/jsonpath"
)

// rule is a compiled Choice rule (top-level rules carry Next).
type rule struct {
	Next     string
	variable expr
	varSrc   string
	op       string // comparison operator name without "Path"
	isPath   bool
	value    any
	valPath  expr
	and, or  []*rule
	not      *rule
}

// usesCtx reports whether evaluating the rule reads the context object.
func (r *rule) usesCtx() bool {
	if r == nil {
		return false
	}
	if (r.variable != nil && exprUsesCtx(r.variable)) || (r.valPath != nil && exprUsesCtx(r.valPath)) || r.not.usesCtx() {
		return true
	}
	for _, s := range append(append([]*rule(nil), r.and...), r.or...) {
		if s.usesCtx() {
			return true
		}
	}
	return false
}

var comparisonOps = map[string]string{ // operator -> expected literal type
	"StringEquals": "string", "StringLessThan": "string", "StringGreaterThan": "string",
	"StringLessThanEquals": "string", "StringGreaterThanEquals": "string", "StringMatches": "string",
	"NumericEquals": "number", "NumericLessThan": "number", "NumericGreaterThan": "number",
	"NumericLessThanEquals": "number", "NumericGreaterThanEquals": "number",
	"BooleanEquals":   "boolean",
	"TimestampEquals": "timestamp", "TimestampLessThan": "timestamp", "TimestampGreaterThan": "timestamp",
	"TimestampLessThanEquals": "timestamp", "TimestampGreaterThanEquals": "timestamp",
	"IsNull": "boolean", "IsPresent": "boolean", "IsNumeric": "boolean", "IsString": "boolean",
	"IsBoolean": "boolean", "IsTimestamp": "boolean",
}

func (p *vparser) rule(o map[string]any, where string, top bool, depth int) *rule {
	if depth > 50 {
		p.add(where, "choice rules nested too deeply")
		return nil
	}
	r := &rule{}
	if top {
		r.Next = p.str(o, "Next", where, true)
	} else if _, ok := o["Next"]; ok {
		p.add(where, "a nested choice rule must not have Next")
	}
	nOps := 0
	for k, v := range o {
		switch k {
		case "Next", "Comment":
		case "Variable":
			s, ok := v.(string)
			if !ok {
				p.add(where+"/Variable", "must be a JSONPath")
				continue
			}
			r.varSrc = s
			r.variable = p.expr(s, where+"/Variable", false)
		case "And", "Or":
			nOps++
			arr, ok := v.([]any)
			if !ok || len(arr) == 0 {
				p.add(where+"/"+k, "must be a non-empty array of rules")
				continue
			}
			for i, e := range arr {
				eo, ok := e.(map[string]any)
				if !ok {
					p.add(fmt.Sprintf("%s/%s[%d]", where, k, i), "must be an object")
					continue
				}
				sub := p.rule(eo, fmt.Sprintf("%s/%s[%d]", where, k, i), false, depth+1)
				if sub == nil {
					continue
				}
				if k == "And" {
					r.and = append(r.and, sub)
				} else {
					r.or = append(r.or, sub)
				}
			}
			r.op = k
		case "Not":
			nOps++
			eo, ok := v.(map[string]any)
			if !ok {
				p.add(where+"/Not", "must be an object")
				continue
			}
			r.not = p.rule(eo, where+"/Not", false, depth+1)
			r.op = k
		default:
			base := strings.TrimSuffix(k, "Path")
			want, ok := comparisonOps[base]
			if !ok || (k != base && strings.HasPrefix(k, "Is")) {
				p.add(where, "unknown field %q", k)
				continue
			}
			nOps++
			r.op = base
			if k != base {
				r.isPath = true
				s, ok := v.(string)
				if !ok {
					p.add(where+"/"+k, "must be a JSONPath")
					continue
				}
				r.valPath = p.expr(s, where+"/"+k, false)
				continue
			}
			r.value = v
			switch want {
			case "string":
				if _, ok := v.(string); !ok {
					p.add(where+"/"+k, "must be a string")
				}
			case "number":
				if !isNumber(v) {
					p.add(where+"/"+k, "must be a number")
				}
			case "boolean":
				if _, ok := v.(bool); !ok {
					p.add(where+"/"+k, "must be a boolean")
				}
			case "timestamp":
				s, _ := v.(string)
				if _, err := parseTimestamp(s); err != nil {
					p.add(where+"/"+k, "must be an RFC3339 timestamp")
				}
			}
		}
	}
	if nOps != 1 {
		p.add(where, "a choice rule needs exactly one comparison operator (or And/Or/Not)")
	}
	switch r.op {
	case "And", "Or", "Not":
		if r.variable != nil {
			p.add(where, "%s must not have a Variable", r.op)
		}
	case "":
	default:
		if r.variable == nil && r.varSrc == "" {
			p.add(where, "a comparison needs a Variable")
		}
	}
	return r
}

func parseTimestamp(s string) (time.Time, error) {
	if !strings.Contains(s, "T") {
		return time.Time{}, errors.New("not a timestamp")
	}
	return time.Parse(time.RFC3339Nano, s)
}

// errChoicePath marks a Variable that references nothing.
var errChoicePath = errors.New("The choice state's condition path references an invalid value.")

// eval evaluates a rule against the state input.
func (r *rule) eval(in, ctxObj any) (bool, error) {
	switch r.op {
	case "And":
		for _, s := range r.and {
			ok, err := s.eval(in, ctxObj)
			if err != nil || !ok {
				return false, err
			}
		}
		return true, nil
	case "Or":
		for _, s := range r.or {
			ok, err := s.eval(in, ctxObj)
			if err != nil || ok {
				return ok, err
			}
		}
		return false, nil
	case "Not":
		if r.not == nil {
			return false, nil
		}
		ok, err := r.not.eval(in, ctxObj)
		return !ok && err == nil, err
	}
	v, err := r.variable.eval(in, ctxObj)
	present := err == nil
	if pe, ok := r.variable.(*pathExpr); ok && present && !pe.p.Definite() {
		if a, _ := v.([]any); len(a) == 0 {
			present = false
		}
	}
	if r.op == "IsPresent" {
		want, _ := r.value.(bool)
		return present == want, nil
	}
	if !present {
		return false, fmt.Errorf("Invalid path '%s': %w", r.varSrc, errChoicePath)
	}
	want := r.value
	if r.isPath {
		w, err := r.valPath.eval(in, ctxObj)
		if err != nil {
			return false, fmt.Errorf("Invalid path '%s': %w", r.valPath.String(), errChoicePath)
		}
		want = w
	}
	switch r.op {
	case "IsNull":
		b, _ := want.(bool)
		return (v == nil) == b, nil
	case "IsNumeric":
		b, _ := want.(bool)
		return isNumber(v) == b, nil
	case "IsString":
		b, _ := want.(bool)
		_, ok := v.(string)
		return ok == b, nil
	case "IsBoolean":
		b, _ := want.(bool)
		_, ok := v.(bool)
		return ok == b, nil
	case "IsTimestamp":
		b, _ := want.(bool)
		s, ok := v.(string)
		if ok {
			_, err := parseTimestamp(s)
			ok = err == nil
		}
		return ok == b, nil
	case "BooleanEquals":
		a, ok1 := v.(bool)
		b, ok2 := want.(bool)
		return ok1 && ok2 && a == b, nil
	case "StringMatches":
		a, ok1 := v.(string)
		b, ok2 := want.(string)
		return ok1 && ok2 && wildcardMatch(b, a), nil
	}
	var c int
	switch {
	case strings.HasPrefix(r.op, "String"):
		a, ok1 := v.(string)
		b, ok2 := want.(string)
		if !ok1 || !ok2 {
			return false, nil
		}
		c = strings.Compare(a, b)
	case strings.HasPrefix(r.op, "Numeric"):
		a, ok1 := jsonpath.ToFloat(v)
		b, ok2 := jsonpath.ToFloat(want)
		if !ok1 || !ok2 {
			return false, nil
		}
		c = cmpFloat(a, b)
	case strings.HasPrefix(r.op, "Timestamp"):
		as, ok1 := v.(string)
		bs, ok2 := want.(string)
		if !ok1 || !ok2 {
			return false, nil
		}
		a, err1 := parseTimestamp(as)
		b, err2 := parseTimestamp(bs)
		if err1 != nil || err2 != nil {
			return false, nil
		}
		c = a.Compare(b)
	}
	switch {
	case strings.HasSuffix(r.op, "GreaterThanEquals"):
		return c >= 0, nil
	case strings.HasSuffix(r.op, "LessThanEquals"):
		return c <= 0, nil
	case strings.HasSuffix(r.op, "GreaterThan"):
		return c > 0, nil
	case strings.HasSuffix(r.op, "LessThan"):
		return c < 0, nil
	case strings.HasSuffix(r.op, "Equals"):
		return c == 0, nil
	}
	return false, nil
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// wildcardMatch implements StringMatches: '*' matches any run of characters; "\*" and "\\" escape.
func wildcardMatch(pattern, s string) bool {
	type tok struct {
		star bool
		r    rune
	}
	var toks []tok
	rs := []rune(pattern)
	for i := 0; i < len(rs); i++ {
		if rs[i] == '\\' && i+1 < len(rs) {
			toks = append(toks, tok{r: rs[i+1]})
			i++
			continue
		}
		toks = append(toks, tok{star: rs[i] == '*', r: rs[i]})
	}
	str := []rune(s)
	// iterative matching with backtracking on the last star
	ti, si, starT, starS := 0, 0, -1, 0
	for si < len(str) {
		switch {
		case ti < len(toks) && !toks[ti].star && toks[ti].r == str[si]:
			ti++
			si++
		case ti < len(toks) && toks[ti].star:
			starT, starS = ti, si
			ti++
		case starT >= 0:
			starS++
			si = starS
			ti = starT + 1
		default:
			return false
		}
	}
	for ti < len(toks) && toks[ti].star {
		ti++
	}
	return ti == len(toks)
}
