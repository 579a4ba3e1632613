// Package jsonpath evaluates the JSONPath dialect used by the Amazon States Language
// (Jayway-compatible semantics): dot and bracket child access, array indexes, slices,
// unions, wildcards, deep scan and filter expressions.
//
// Values are the generic shapes produced by encoding/json with UseNumber:
// map[string]any, []any, string, json.Number, bool and nil.
package jsonpath

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// ErrSyntax is returned (wrapped) for a path that cannot be parsed.
var ErrSyntax = errors.New("invalid JSONPath")

// ErrNotFound is returned (wrapped) when a definite path selects nothing.
var ErrNotFound = errors.New("no results for path")

// NotFoundError describes a definite path that selected nothing.
type NotFoundError struct {
	// Path is the canonical (bracketed) form of the path, as Jayway prints it.
	Path string
}

func (e *NotFoundError) Error() string { return "No results for path: " + e.Path }

// Is makes errors.Is(err, ErrNotFound) true.
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

type segKind int

const (
	segName segKind = iota
	segIndex
	segWildcard
	segSlice
	segUnionNames
	segUnionIdx
	segFilter
	segDeepName
	segDeepWildcard
	segLength
)

type segment struct {
	kind            segKind
	name            string
	names           []string
	idx             int
	idxs            []int
	start, end      *int
	step            int
	filter          filterExpr
	deepAfterFilter bool
}

// Path is a compiled JSONPath.
type Path struct {
	src  string
	segs []segment
}

// String returns the source text of the path.
func (p *Path) String() string { return p.src }

// Definite reports whether the path can select at most one value.
func (p *Path) Definite() bool {
	for _, s := range p.segs {
		switch s.kind {
		case segName, segIndex, segLength:
		default:
			return false
		}
	}
	return true
}

// IsReference reports whether the path only uses names and indexes (a "Reference Path" in the
// States Language, usable as a ResultPath).
func (p *Path) IsReference() bool {
	for _, s := range p.segs {
		if s.kind != segName && s.kind != segIndex {
			return false
		}
	}
	return true
}

// Canonical renders the path as Jayway does in its messages, e.g. $['a'][0].
func (p *Path) Canonical() string {
	var b strings.Builder
	b.WriteString("$")
	for _, s := range p.segs {
		switch s.kind {
		case segName:
			b.WriteString("['" + s.name + "']")
		case segIndex:
			b.WriteString("[" + strconv.Itoa(s.idx) + "]")
		case segWildcard:
			b.WriteString("[*]")
		case segDeepName:
			b.WriteString("..['" + s.name + "']")
		case segDeepWildcard:
			b.WriteString("..[*]")
		case segUnionNames:
			q := make([]string, len(s.names))
			for i, n := range s.names {
				q[i] = "'" + n + "'"
			}
			b.WriteString("[" + strings.Join(q, ",") + "]")
		case segUnionIdx:
			q := make([]string, len(s.idxs))
			for i, n := range s.idxs {
				q[i] = strconv.Itoa(n)
			}
			b.WriteString("[" + strings.Join(q, ",") + "]")
		case segSlice:
			b.WriteString("[")
			if s.start != nil {
				b.WriteString(strconv.Itoa(*s.start))
			}
			b.WriteString(":")
			if s.end != nil {
				b.WriteString(strconv.Itoa(*s.end))
			}
			b.WriteString("]")
		case segFilter:
			b.WriteString("[?]")
		case segLength:
			b.WriteString(".length()")
		}
	}
	return b.String()
}

// Segments returns the names/indexes of a reference path (only valid when IsReference).
// Each element is a string (object key) or an int (array index).
func (p *Path) Segments() []any {
	out := make([]any, 0, len(p.segs))
	for _, s := range p.segs {
		if s.kind == segName {
			out = append(out, s.name)
		} else {
			out = append(out, s.idx)
		}
	}
	return out
}

// Compile parses a JSONPath beginning with "$".
func Compile(src string) (*Path, error) {
	p := &parser{s: src}
	segs, err := p.parse()
	if err != nil {
		return nil, fmt.Errorf("%w %q: %s", ErrSyntax, src, err.Error())
	}
	return &Path{src: src, segs: segs}, nil
}

type parser struct {
	s   string
	pos int
}

func (p *parser) errf(format string, a ...any) error {
	return fmt.Errorf("at offset %d: "+format, append([]any{p.pos}, a...)...)
}

func (p *parser) parse() ([]segment, error) {
	if !strings.HasPrefix(p.s, "$") {
		return nil, p.errf("a path must begin with '$'")
	}
	p.pos = 1
	var segs []segment
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		switch c {
		case '.':
			if strings.HasPrefix(p.s[p.pos:], "..") {
				p.pos += 2
				if p.pos < len(p.s) && p.s[p.pos] == '*' {
					p.pos++
					segs = append(segs, segment{kind: segDeepWildcard})
					continue
				}
				if p.pos < len(p.s) && p.s[p.pos] == '[' {
					// ..['name'] or ..[*]
					seg, err := p.bracket()
					if err != nil {
						return nil, err
					}
					switch seg.kind {
					case segName:
						seg.kind = segDeepName
					case segWildcard:
						seg.kind = segDeepWildcard
					default:
						segs = append(segs, segment{kind: segDeepWildcard})
					}
					segs = append(segs, seg)
					continue
				}
				name := p.name()
				if name == "" {
					return nil, p.errf("empty name after '..'")
				}
				segs = append(segs, segment{kind: segDeepName, name: name})
				continue
			}
			p.pos++
			if p.pos < len(p.s) && p.s[p.pos] == '*' {
				p.pos++
				segs = append(segs, segment{kind: segWildcard})
				continue
			}
			name := p.name()
			if name == "" {
				return nil, p.errf("empty name after '.'")
			}
			if name == "length()" && p.pos == len(p.s) {
				segs = append(segs, segment{kind: segLength})
				continue
			}
			segs = append(segs, segment{kind: segName, name: name})
		case '[':
			seg, err := p.bracket()
			if err != nil {
				return nil, err
			}
			segs = append(segs, seg)
		default:
			return nil, p.errf("unexpected character %q", c)
		}
	}
	return segs, nil
}

func (p *parser) name() string {
	start := p.pos
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		if c == '.' || c == '[' {
			break
		}
		if c == '(' && strings.HasPrefix(p.s[p.pos:], "()") {
			p.pos += 2
			break
		}
		p.pos++
	}
	return p.s[start:p.pos]
}

func (p *parser) skipSpace() {
	for p.pos < len(p.s) && p.s[p.pos] == ' ' {
		p.pos++
	}
}

func (p *parser) bracket() (segment, error) {
	p.pos++ // '['
	p.skipSpace()
	if p.pos >= len(p.s) {
		return segment{}, p.errf("unterminated '['")
	}
	c := p.s[p.pos]
	switch {
	case c == '*':
		p.pos++
		p.skipSpace()
		if err := p.expect(']'); err != nil {
			return segment{}, err
		}
		return segment{kind: segWildcard}, nil
	case c == '\'' || c == '"':
		var names []string
		for {
			p.skipSpace()
			s, err := p.quoted()
			if err != nil {
				return segment{}, err
			}
			names = append(names, s)
			p.skipSpace()
			if p.pos < len(p.s) && p.s[p.pos] == ',' {
				p.pos++
				continue
			}
			break
		}
		if err := p.expect(']'); err != nil {
			return segment{}, err
		}
		if len(names) == 1 {
			return segment{kind: segName, name: names[0]}, nil
		}
		return segment{kind: segUnionNames, names: names}, nil
	case c == '?':
		p.pos++
		p.skipSpace()
		if err := p.expect('('); err != nil {
			return segment{}, err
		}
		// find matching ')' followed by ']'
		depth := 1
		start := p.pos
		inQ := byte(0)
		for p.pos < len(p.s) && depth > 0 {
			ch := p.s[p.pos]
			switch {
			case inQ != 0:
				if ch == '\\' {
					p.pos++
				} else if ch == inQ {
					inQ = 0
				}
			case ch == '\'' || ch == '"':
				inQ = ch
			case ch == '(':
				depth++
			case ch == ')':
				depth--
			}
			p.pos++
		}
		if depth != 0 {
			return segment{}, p.errf("unterminated filter")
		}
		expr := p.s[start : p.pos-1]
		p.skipSpace()
		if err := p.expect(']'); err != nil {
			return segment{}, err
		}
		f, err := parseFilter(expr)
		if err != nil {
			return segment{}, err
		}
		return segment{kind: segFilter, filter: f}, nil
	default:
		// index, union of indexes, or slice
		end := strings.IndexByte(p.s[p.pos:], ']')
		if end < 0 {
			return segment{}, p.errf("unterminated '['")
		}
		body := strings.TrimSpace(p.s[p.pos : p.pos+end])
		p.pos += end + 1
		if strings.Contains(body, ":") {
			parts := strings.Split(body, ":")
			if len(parts) > 3 {
				return segment{}, p.errf("bad slice %q", body)
			}
			seg := segment{kind: segSlice, step: 1}
			for i, part := range parts {
				part = strings.TrimSpace(part)
				if part == "" {
					continue
				}
				n, err := strconv.Atoi(part)
				if err != nil {
					return segment{}, p.errf("bad slice %q", body)
				}
				switch i {
				case 0:
					seg.start = &n
				case 1:
					seg.end = &n
				case 2:
					if n == 0 {
						return segment{}, p.errf("slice step cannot be zero")
					}
					seg.step = n
				}
			}
			return seg, nil
		}
		parts := strings.Split(body, ",")
		idxs := make([]int, 0, len(parts))
		for _, part := range parts {
			n, err := strconv.Atoi(strings.TrimSpace(part))
			if err != nil {
				return segment{}, p.errf("bad index %q", body)
			}
			idxs = append(idxs, n)
		}
		if len(idxs) == 1 {
			return segment{kind: segIndex, idx: idxs[0]}, nil
		}
		return segment{kind: segUnionIdx, idxs: idxs}, nil
	}
}

func (p *parser) expect(c byte) error {
	if p.pos >= len(p.s) || p.s[p.pos] != c {
		return p.errf("expected %q", c)
	}
	p.pos++
	return nil
}

// quoted reads a quoted name; a backslash escapes the next character.
func (p *parser) quoted() (string, error) {
	if p.pos >= len(p.s) {
		return "", p.errf("expected a quoted name")
	}
	q := p.s[p.pos]
	if q != '\'' && q != '"' {
		return "", p.errf("expected a quoted name")
	}
	p.pos++
	var b strings.Builder
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		if c == '\\' && p.pos+1 < len(p.s) {
			n := p.s[p.pos+1]
			// Jayway keeps the backslash unless it escapes the quote in use or a backslash.
			if n == q || n == '\\' {
				b.WriteByte(n)
			} else {
				b.WriteByte(c)
				b.WriteByte(n)
			}
			p.pos += 2
			continue
		}
		if c == q {
			p.pos++
			return b.String(), nil
		}
		b.WriteByte(c)
		p.pos++
	}
	return "", p.errf("unterminated quoted name")
}

// Get evaluates the path on doc. A definite path returns the single value it selects, or a
// *NotFoundError. An indefinite path returns a []any of every match (possibly empty).
func (p *Path) Get(doc any) (any, error) {
	nodes := []any{doc}
	for i, s := range p.segs {
		var next []any
		for _, n := range nodes {
			next = s.apply(n, next)
		}
		if len(next) == 0 && p.Definite() {
			return nil, &NotFoundError{Path: (&Path{segs: p.segs[:i+1]}).Canonical()}
		}
		nodes = next
	}
	if p.Definite() {
		if len(nodes) == 0 {
			return nil, &NotFoundError{Path: p.Canonical()}
		}
		return nodes[0], nil
	}
	if nodes == nil {
		nodes = []any{}
	}
	return nodes, nil
}

func (s segment) apply(n any, out []any) []any {
	switch s.kind {
	case segName:
		if m, ok := n.(map[string]any); ok {
			if v, ok := m[s.name]; ok {
				out = append(out, v)
			}
		}
	case segIndex:
		if a, ok := n.([]any); ok {
			i := s.idx
			if i < 0 {
				i += len(a)
			}
			if i >= 0 && i < len(a) {
				out = append(out, a[i])
			}
		}
	case segLength:
		switch v := n.(type) {
		case []any:
			out = append(out, json.Number(strconv.Itoa(len(v))))
		case map[string]any:
			out = append(out, json.Number(strconv.Itoa(len(v))))
		case string:
			out = append(out, json.Number(strconv.Itoa(len(v))))
		}
	case segWildcard:
		switch v := n.(type) {
		case []any:
			out = append(out, v...)
		case map[string]any:
			for _, k := range sortedKeys(v) {
				out = append(out, v[k])
			}
		}
	case segUnionNames:
		if m, ok := n.(map[string]any); ok {
			for _, name := range s.names {
				if v, ok := m[name]; ok {
					out = append(out, v)
				}
			}
		}
	case segUnionIdx:
		if a, ok := n.([]any); ok {
			for _, i := range s.idxs {
				if i < 0 {
					i += len(a)
				}
				if i >= 0 && i < len(a) {
					out = append(out, a[i])
				}
			}
		}
	case segSlice:
		if a, ok := n.([]any); ok {
			l := len(a)
			norm := func(v *int, def int) int {
				if v == nil {
					return def
				}
				x := *v
				if x < 0 {
					x += l
				}
				return max(0, min(x, l))
			}
			if s.step > 0 {
				for i := norm(s.start, 0); i < norm(s.end, l); i += s.step {
					out = append(out, a[i])
				}
			} else {
				st := l - 1
				if s.start != nil {
					st = norm(s.start, 0)
					if st >= l {
						st = l - 1
					}
				}
				en := -1
				if s.end != nil {
					en = norm(s.end, 0)
				}
				for i := st; i > en && i >= 0; i += s.step {
					out = append(out, a[i])
				}
			}
		}
	case segFilter:
		switch v := n.(type) {
		case []any:
			for _, e := range v {
				if s.filter.match(e) {
					out = append(out, e)
				}
			}
		case map[string]any:
			if s.filter.match(v) {
				out = append(out, v)
			}
		}
	case segDeepName, segDeepWildcard:
		out = deepScan(n, s, out, 0)
	}
	return out
}

const maxDepth = 10000

func deepScan(n any, s segment, out []any, depth int) []any {
	if depth > maxDepth {
		return out
	}
	switch v := n.(type) {
	case map[string]any:
		for _, k := range sortedKeys(v) {
			if s.kind == segDeepWildcard || k == s.name {
				out = append(out, v[k])
			}
		}
		for _, k := range sortedKeys(v) {
			out = deepScan(v[k], s, out, depth+1)
		}
	case []any:
		if s.kind == segDeepWildcard {
			out = append(out, v...)
		}
		for _, e := range v {
			out = deepScan(e, s, out, depth+1)
		}
	}
	return out
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	// insertion order is lost in Go maps; sort for determinism.
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}

// ---- filters ----

type filterExpr interface{ match(v any) bool }

type orExpr struct{ l, r filterExpr }
type andExpr struct{ l, r filterExpr }
type notExpr struct{ e filterExpr }
type existsExpr struct{ op operand }
type cmpExpr struct {
	op   string
	l, r operand
	re   *regexp.Regexp
}

func (e orExpr) match(v any) bool     { return e.l.match(v) || e.r.match(v) }
func (e andExpr) match(v any) bool    { return e.l.match(v) && e.r.match(v) }
func (e notExpr) match(v any) bool    { return !e.e.match(v) }
func (e existsExpr) match(v any) bool { _, ok := e.op.value(v); return ok }

type operand struct {
	path    *Path // relative to @ (stored as a $ path)
	literal any
	isLit   bool
}

func (o operand) value(cur any) (any, bool) {
	if o.isLit {
		return o.literal, true
	}
	r, err := o.path.Get(cur)
	if err != nil {
		return nil, false
	}
	return r, true
}

func (e cmpExpr) match(cur any) bool {
	l, ok := e.l.value(cur)
	if !ok {
		return false
	}
	if e.op == "=~" {
		s, ok := l.(string)
		return ok && e.re != nil && e.re.MatchString(s)
	}
	r, ok := e.r.value(cur)
	if !ok {
		return false
	}
	switch e.op {
	case "==":
		return Equal(l, r)
	case "!=":
		return !Equal(l, r)
	}
	c, ok := compare(l, r)
	if !ok {
		return false
	}
	switch e.op {
	case "<":
		return c < 0
	case "<=":
		return c <= 0
	case ">":
		return c > 0
	case ">=":
		return c >= 0
	}
	return false
}

func compare(l, r any) (int, bool) {
	if lf, ok := ToFloat(l); ok {
		if rf, ok := ToFloat(r); ok {
			switch {
			case lf < rf:
				return -1, true
			case lf > rf:
				return 1, true
			}
			return 0, true
		}
	}
	ls, lok := l.(string)
	rs, rok := r.(string)
	if lok && rok {
		return strings.Compare(ls, rs), true
	}
	return 0, false
}

// ToFloat converts a JSON number (json.Number, float64 or int) to float64.
func ToFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case json.Number:
		f, err := strconv.ParseFloat(string(n), 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return 0, false
		}
		return f, true
	case float64:
		return n, true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	}
	return 0, false
}

// Equal compares two JSON values structurally, numbers numerically.
func Equal(a, b any) bool {
	switch x := a.(type) {
	case nil:
		return b == nil
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case string:
		y, ok := b.(string)
		return ok && x == y
	case json.Number, float64, int, int64:
		xf, _ := ToFloat(x)
		yf, ok := ToFloat(b)
		return ok && (xf == yf || (math.IsNaN(xf) && math.IsNaN(yf)))
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !Equal(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !Equal(v, w) {
				return false
			}
		}
		return true
	}
	return false
}

type fparser struct {
	s   string
	pos int
}

func parseFilter(s string) (filterExpr, error) {
	p := &fparser{s: s}
	e, err := p.or()
	if err != nil {
		return nil, err
	}
	p.ws()
	if p.pos != len(p.s) {
		return nil, fmt.Errorf("unexpected %q in filter", p.s[p.pos:])
	}
	return e, nil
}

func (p *fparser) ws() {
	for p.pos < len(p.s) && (p.s[p.pos] == ' ' || p.s[p.pos] == '\t') {
		p.pos++
	}
}

func (p *fparser) or() (filterExpr, error) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for {
		p.ws()
		if !strings.HasPrefix(p.s[p.pos:], "||") {
			return l, nil
		}
		p.pos += 2
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		l = orExpr{l, r}
	}
}

func (p *fparser) and() (filterExpr, error) {
	l, err := p.unary()
	if err != nil {
		return nil, err
	}
	for {
		p.ws()
		if !strings.HasPrefix(p.s[p.pos:], "&&") {
			return l, nil
		}
		p.pos += 2
		r, err := p.unary()
		if err != nil {
			return nil, err
		}
		l = andExpr{l, r}
	}
}

func (p *fparser) unary() (filterExpr, error) {
	p.ws()
	if p.pos < len(p.s) && p.s[p.pos] == '!' && !strings.HasPrefix(p.s[p.pos:], "!=") {
		p.pos++
		e, err := p.unary()
		if err != nil {
			return nil, err
		}
		return notExpr{e}, nil
	}
	if p.pos < len(p.s) && p.s[p.pos] == '(' {
		p.pos++
		e, err := p.or()
		if err != nil {
			return nil, err
		}
		p.ws()
		if p.pos >= len(p.s) || p.s[p.pos] != ')' {
			return nil, errors.New("expected ')' in filter")
		}
		p.pos++
		return e, nil
	}
	l, err := p.operand()
	if err != nil {
		return nil, err
	}
	p.ws()
	for _, op := range []string{"==", "!=", "<=", ">=", "=~", "<", ">"} {
		if strings.HasPrefix(p.s[p.pos:], op) {
			p.pos += len(op)
			p.ws()
			if op == "=~" {
				if p.pos >= len(p.s) || p.s[p.pos] != '/' {
					return nil, errors.New("expected /regex/ after =~")
				}
				end := strings.LastIndexByte(p.s[p.pos+1:], '/')
				if end < 0 {
					return nil, errors.New("unterminated regex")
				}
				src := p.s[p.pos+1 : p.pos+1+end]
				p.pos += end + 2
				flags := ""
				for p.pos < len(p.s) && strings.IndexByte("imsx", p.s[p.pos]) >= 0 {
					if p.s[p.pos] != 'x' {
						flags += string(p.s[p.pos])
					}
					p.pos++
				}
				if flags != "" {
					src = "(?" + flags + ")" + src
				}
				re, err := regexp.Compile(src)
				if err != nil {
					return nil, fmt.Errorf("bad regex: %w", err)
				}
				return cmpExpr{op: op, l: l, re: re}, nil
			}
			r, err := p.operand()
			if err != nil {
				return nil, err
			}
			return cmpExpr{op: op, l: l, r: r}, nil
		}
	}
	if l.isLit {
		return nil, errors.New("a filter needs a comparison or an @ path")
	}
	return existsExpr{l}, nil
}

func (p *fparser) operand() (operand, error) {
	p.ws()
	if p.pos >= len(p.s) {
		return operand{}, errors.New("unexpected end of filter")
	}
	c := p.s[p.pos]
	switch {
	case c == '@' || c == '$':
		start := p.pos
		p.pos++
		depth := 0
		for p.pos < len(p.s) {
			ch := p.s[p.pos]
			if ch == '[' {
				depth++
			} else if ch == ']' {
				depth--
			} else if depth == 0 && strings.IndexByte(" =!<>&|)", ch) >= 0 {
				break
			}
			p.pos++
		}
		src := "$" + p.s[start+1:p.pos]
		path, err := Compile(src)
		if err != nil {
			return operand{}, err
		}
		return operand{path: path}, nil
	case c == '\'' || c == '"':
		pp := &parser{s: p.s, pos: p.pos}
		s, err := pp.quoted()
		if err != nil {
			return operand{}, err
		}
		p.pos = pp.pos
		return operand{literal: s, isLit: true}, nil
	default:
		start := p.pos
		for p.pos < len(p.s) && strings.IndexByte(" =!<>&|)", p.s[p.pos]) < 0 {
			p.pos++
		}
		tok := p.s[start:p.pos]
		switch tok {
		case "true":
			return operand{literal: true, isLit: true}, nil
		case "false":
			return operand{literal: false, isLit: true}, nil
		case "null":
			return operand{literal: nil, isLit: true}, nil
		}
		if _, err := strconv.ParseFloat(tok, 64); err == nil {
			return operand{literal: json.Number(tok), isLit: true}, nil
		}
		return operand{}, fmt.Errorf("bad filter operand %q", tok)
	}
}
