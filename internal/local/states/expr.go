package states

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"math"
	mrand "math/rand/v2"
	"strconv"
	"strings"

	"github.com/keyline/keyline/internal/local/states/jsonpath"
)

// expr is a compiled value expression: a JSONPath on the input ($), on the context object ($$),
// an intrinsic function call, or a literal argument.
type expr interface {
	eval(in, ctxObj any) (any, error)
	String() string
}

type pathExpr struct {
	src string
	ctx bool
	p   *jsonpath.Path
}

func (e *pathExpr) String() string { return e.src }

func (e *pathExpr) eval(in, ctxObj any) (any, error) {
	if e.ctx {
		return e.p.Get(ctxObj)
	}
	return e.p.Get(in)
}

type literalExpr struct {
	v   any
	raw string // for string literals: the text between the quotes, escapes kept
	src string
}

func (e *literalExpr) String() string                   { return e.src }
func (e *literalExpr) eval(in, ctxObj any) (any, error) { return e.v, nil }

type callExpr struct {
	name string
	args []expr
	src  string
}

func (e *callExpr) String() string { return e.src }

// errIntrinsic marks an intrinsic function that failed at run time.
var errIntrinsic = errors.New("intrinsic function failed")

// compilePath compiles "$..." or "$$..." into an expression.
func compilePath(src string) (*pathExpr, error) {
	if strings.HasPrefix(src, "$$") {
		p, err := jsonpath.Compile(src[1:])
		if err != nil {
			return nil, err
		}
		return &pathExpr{src: src, ctx: true, p: p}, nil
	}
	p, err := jsonpath.Compile(src)
	if err != nil {
		return nil, err
	}
	return &pathExpr{src: src, p: p}, nil
}

// compileExpr compiles a path or an intrinsic function call.
func compileExpr(src string) (expr, error) {
	if strings.HasPrefix(src, "States.") {
		return compileIntrinsic(src)
	}
	if strings.HasPrefix(src, "$") {
		return compilePath(src)
	}
	return nil, fmt.Errorf("%q is neither a JSONPath nor an intrinsic function", src)
}

var intrinsicArity = map[string][2]int{ // min, max (-1 = any)
	"States.Format":         {1, -1},
	"States.StringToJson":   {1, 1},
	"States.JsonToString":   {1, 1},
	"States.Array":          {0, -1},
	"States.ArrayPartition": {2, 2},
	"States.ArrayContains":  {2, 2},
	"States.ArrayRange":     {3, 3},
	"States.ArrayGetItem":   {2, 2},
	"States.ArrayLength":    {1, 1},
	"States.ArrayUnique":    {1, 1},
	"States.Base64Encode":   {1, 1},
	"States.Base64Decode":   {1, 1},
	"States.Hash":           {2, 2},
	"States.JsonMerge":      {3, 3},
	"States.MathRandom":     {2, 3},
	"States.MathAdd":        {2, 2},
	"States.StringSplit":    {2, 2},
	"States.UUID":           {0, 0},
}

type iparser struct {
	s     string
	pos   int
	depth int
}

func compileIntrinsic(src string) (expr, error) {
	p := &iparser{s: src}
	e, err := p.call()
	if err != nil {
		return nil, fmt.Errorf("invalid intrinsic function %q: %w", src, err)
	}
	p.ws()
	if p.pos != len(p.s) {
		return nil, fmt.Errorf("invalid intrinsic function %q: unexpected text %q", src, p.s[p.pos:])
	}
	return e, nil
}

func (p *iparser) ws() {
	for p.pos < len(p.s) && (p.s[p.pos] == ' ' || p.s[p.pos] == '\t' || p.s[p.pos] == '\n' || p.s[p.pos] == '\r') {
		p.pos++
	}
}

func (p *iparser) call() (expr, error) {
	p.depth++
	if p.depth > 50 {
		return nil, errors.New("functions nested too deeply")
	}
	defer func() { p.depth-- }()
	start := p.pos
	i := strings.IndexByte(p.s[p.pos:], '(')
	if i < 0 {
		return nil, errors.New("missing '('")
	}
	name := strings.TrimSpace(p.s[p.pos : p.pos+i])
	ar, ok := intrinsicArity[name]
	if !ok {
		return nil, fmt.Errorf("unknown function %q", name)
	}
	p.pos += i + 1
	var args []expr
	p.ws()
	if p.pos < len(p.s) && p.s[p.pos] == ')' {
		p.pos++
	} else {
		for {
			a, err := p.arg()
			if err != nil {
				return nil, err
			}
			args = append(args, a)
			p.ws()
			if p.pos >= len(p.s) {
				return nil, errors.New("missing ')'")
			}
			if p.s[p.pos] == ',' {
				p.pos++
				continue
			}
			if p.s[p.pos] == ')' {
				p.pos++
				break
			}
			return nil, fmt.Errorf("unexpected %q", p.s[p.pos])
		}
	}
	if len(args) < ar[0] || (ar[1] >= 0 && len(args) > ar[1]) {
		return nil, fmt.Errorf("%s takes %s arguments, got %d", name, arityText(ar), len(args))
	}
	return &callExpr{name: name, args: args, src: p.s[start:p.pos]}, nil
}

func arityText(ar [2]int) string {
	switch {
	case ar[1] < 0:
		return fmt.Sprintf("at least %d", ar[0])
	case ar[0] == ar[1]:
		return strconv.Itoa(ar[0])
	}
	return fmt.Sprintf("%d to %d", ar[0], ar[1])
}

func (p *iparser) arg() (expr, error) {
	p.ws()
	if p.pos >= len(p.s) {
		return nil, errors.New("missing argument")
	}
	c := p.s[p.pos]
	switch {
	case c == '\'':
		start := p.pos
		p.pos++
		var b strings.Builder
		rawStart := p.pos
		for p.pos < len(p.s) {
			ch := p.s[p.pos]
			if ch == '\\' && p.pos+1 < len(p.s) {
				b.WriteByte(p.s[p.pos+1])
				p.pos += 2
				continue
			}
			if ch == '\'' {
				raw := p.s[rawStart:p.pos]
				p.pos++
				return &literalExpr{v: b.String(), raw: raw, src: p.s[start:p.pos]}, nil
			}
			b.WriteByte(ch)
			p.pos++
		}
		return nil, errors.New("unterminated string literal")
	case c == '$':
		start := p.pos
		depth := 0
		var q byte
		for p.pos < len(p.s) {
			ch := p.s[p.pos]
			if q != 0 {
				if ch == '\\' {
					p.pos++
				} else if ch == q {
					q = 0
				}
			} else if ch == '\'' || ch == '"' {
				q = ch
			} else if ch == '[' || ch == '(' {
				depth++
			} else if ch == ']' || (ch == ')' && depth > 0) {
				depth--
			} else if depth == 0 && (ch == ',' || ch == ')') {
				break
			}
			p.pos++
		}
		src := strings.TrimSpace(p.s[start:p.pos])
		return compilePath(src)
	case strings.HasPrefix(p.s[p.pos:], "States."):
		return p.call()
	default:
		start := p.pos
		for p.pos < len(p.s) && p.s[p.pos] != ',' && p.s[p.pos] != ')' {
			p.pos++
		}
		tok := strings.TrimSpace(p.s[start:p.pos])
		switch tok {
		case "true":
			return &literalExpr{v: true, src: tok}, nil
		case "false":
			return &literalExpr{v: false, src: tok}, nil
		case "null":
			return &literalExpr{v: nil, src: tok}, nil
		}
		if _, err := strconv.ParseFloat(tok, 64); err == nil && tok != "" && !strings.ContainsAny(tok, "xXnN") {
			return &literalExpr{v: json.Number(tok), src: tok}, nil
		}
		return nil, fmt.Errorf("bad argument %q", tok)
	}
}

func intrinsicErr(name, format string, a ...any) error {
	return fmt.Errorf("%w: %s: %s", errIntrinsic, name, fmt.Sprintf(format, a...))
}

func (e *callExpr) eval(in, ctxObj any) (any, error) {
	args := make([]any, len(e.args))
	for i, a := range e.args {
		v, err := a.eval(in, ctxObj)
		if err != nil {
			return nil, err
		}
		args[i] = v
	}
	switch e.name {
	case "States.Format":
		return e.format(args)
	case "States.StringToJson":
		s, ok := args[0].(string)
		if !ok {
			return nil, intrinsicErr(e.name, "the argument must be a string")
		}
		if strings.TrimSpace(s) == "" {
			return nil, nil
		}
		v, err := decodeJSON([]byte(s))
		if err != nil {
			return nil, intrinsicErr(e.name, "the argument is not valid JSON: %v", err)
		}
		return v, nil
	case "States.JsonToString":
		return encodeString(args[0]), nil
	case "States.Array":
		return append([]any{}, args...), nil
	case "States.ArrayPartition":
		a, ok := args[0].([]any)
		n, ok2 := toInt(args[1])
		if !ok || !ok2 || n <= 0 {
			return nil, intrinsicErr(e.name, "expects an array and a positive integer chunk size")
		}
		out := []any{}
		for i := 0; i < len(a); i += int(n) {
			end := min(len(a), i+int(n))
			out = append(out, append([]any{}, a[i:end]...))
		}
		return out, nil
	case "States.ArrayContains":
		a, ok := args[0].([]any)
		if !ok {
			return nil, intrinsicErr(e.name, "the first argument must be an array")
		}
		for _, x := range a {
			if jsonpath.Equal(x, args[1]) {
				return true, nil
			}
		}
		return false, nil
	case "States.ArrayRange":
		s, ok1 := toInt(args[0])
		t, ok2 := toInt(args[1])
		st, ok3 := toInt(args[2])
		if !ok1 || !ok2 || !ok3 || st == 0 {
			return nil, intrinsicErr(e.name, "expects integer start, end and a non-zero step")
		}
		out := []any{}
		for i := s; (st > 0 && i <= t) || (st < 0 && i >= t); i += st {
			if len(out) >= 1000 {
				return nil, intrinsicErr(e.name, "the result would have more than 1000 items")
			}
			out = append(out, intValue(i))
		}
		return out, nil
	case "States.ArrayGetItem":
		a, ok := args[0].([]any)
		i, ok2 := toInt(args[1])
		if !ok || !ok2 {
			return nil, intrinsicErr(e.name, "expects an array and an integer index")
		}
		if i < 0 || i >= int64(len(a)) {
			return nil, intrinsicErr(e.name, "index %d out of bounds", i)
		}
		return a[i], nil
	case "States.ArrayLength":
		a, ok := args[0].([]any)
		if !ok {
			return nil, intrinsicErr(e.name, "the argument must be an array")
		}
		return intValue(int64(len(a))), nil
	case "States.ArrayUnique":
		a, ok := args[0].([]any)
		if !ok {
			return nil, intrinsicErr(e.name, "the argument must be an array")
		}
		out := []any{}
	next:
		for _, x := range a {
			for _, y := range out {
				if jsonpath.Equal(x, y) {
					continue next
				}
			}
			out = append(out, x)
		}
		return out, nil
	case "States.Base64Encode":
		s, ok := args[0].(string)
		if !ok || len(s) > 10000 {
			return nil, intrinsicErr(e.name, "expects a string of at most 10000 characters")
		}
		return base64.StdEncoding.EncodeToString([]byte(s)), nil
	case "States.Base64Decode":
		s, ok := args[0].(string)
		if !ok || len(s) > 10000 {
			return nil, intrinsicErr(e.name, "expects a string of at most 10000 characters")
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, intrinsicErr(e.name, "invalid base64: %v", err)
		}
		return string(b), nil
	case "States.Hash":
		var data string
		if s, ok := args[0].(string); ok {
			data = s
		} else {
			data = encodeString(args[0])
		}
		alg, _ := args[1].(string)
		var h hash.Hash
		switch alg {
		case "MD5":
			h = md5.New()
		case "SHA-1":
			h = sha1.New()
		case "SHA-256":
			h = sha256.New()
		case "SHA-384":
			h = sha512.New384()
		case "SHA-512":
			h = sha512.New()
		default:
			return nil, intrinsicErr(e.name, "unsupported hash algorithm %q", alg)
		}
		if len(data) > 10000 {
			return nil, intrinsicErr(e.name, "the input is longer than 10000 characters")
		}
		h.Write([]byte(data))
		return hex.EncodeToString(h.Sum(nil)), nil
	case "States.JsonMerge":
		a, ok1 := args[0].(map[string]any)
		b, ok2 := args[1].(map[string]any)
		deep, ok3 := args[2].(bool)
		if !ok1 || !ok2 || !ok3 {
			return nil, intrinsicErr(e.name, "expects two objects and a boolean")
		}
		if deep {
			return nil, intrinsicErr(e.name, "deep merge is not supported")
		}
		out := make(map[string]any, len(a)+len(b))
		for k, v := range a {
			out[k] = v
		}
		for k, v := range b {
			out[k] = v
		}
		return out, nil
	case "States.MathRandom":
		s, ok1 := toFloat(args[0])
		t, ok2 := toFloat(args[1])
		if !ok1 || !ok2 {
			return nil, intrinsicErr(e.name, "expects numeric start and end")
		}
		const limit = 1 << 53
		if math.IsNaN(s) || math.IsNaN(t) || math.Abs(s) > limit || math.Abs(t) > limit {
			return nil, intrinsicErr(e.name, "start and end must be between -2^53 and 2^53")
		}
		lo, hi := int64(math.Trunc(s)), int64(math.Trunc(t))
		if hi <= lo {
			return nil, intrinsicErr(e.name, "end must be greater than start")
		}
		var r *mrand.Rand
		if len(args) == 3 {
			seed, ok := toInt(args[2])
			if !ok {
				return nil, intrinsicErr(e.name, "the seed must be an integer")
			}
			r = mrand.New(mrand.NewPCG(uint64(seed), 0))
		} else {
			var b [16]byte
			_, _ = rand.Read(b[:])
			r = mrand.New(mrand.NewPCG(beUint64(b[:8]), beUint64(b[8:])))
		}
		return intValue(lo + r.Int64N(hi-lo)), nil
	case "States.MathAdd":
		a, ok1 := toFloat(args[0])
		b, ok2 := toFloat(args[1])
		if !ok1 || !ok2 {
			return nil, intrinsicErr(e.name, "expects two numbers")
		}
		return intValue(javaRound(a) + javaRound(b)), nil
	case "States.StringSplit":
		s, ok1 := args[0].(string)
		d, ok2 := args[1].(string)
		if !ok1 || !ok2 {
			return nil, intrinsicErr(e.name, "expects two strings")
		}
		parts := strings.FieldsFunc(s, func(r rune) bool { return strings.ContainsRune(d, r) })
		out := make([]any, len(parts))
		for i, p := range parts {
			out[i] = p
		}
		return out, nil
	case "States.UUID":
		return newUUID(), nil
	}
	return nil, intrinsicErr(e.name, "unknown function")
}

func beUint64(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

// javaRound is Java's Math.round: floor(x + 0.5).
func javaRound(f float64) int64 {
	if math.IsNaN(f) {
		return 0
	}
	r := math.Floor(f + 0.5)
	if r > math.MaxInt64/2 {
		return math.MaxInt64 / 2
	}
	if r < math.MinInt64/2 {
		return math.MinInt64 / 2
	}
	return int64(r)
}

func (e *callExpr) format(args []any) (any, error) {
	tmpl, ok := e.args[0].(*literalExpr)
	var raw string
	if ok {
		s, isStr := tmpl.v.(string)
		if !isStr {
			return nil, intrinsicErr(e.name, "the template must be a string")
		}
		raw = tmpl.raw
		if tmpl.raw == "" && s != "" {
			raw = s
		}
	} else {
		s, isStr := args[0].(string)
		if !isStr {
			return nil, intrinsicErr(e.name, "the template must be a string")
		}
		raw = s
	}
	var b strings.Builder
	n := 1
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c == '\\' && i+1 < len(raw) && ok {
			b.WriteByte(raw[i+1])
			i++
			continue
		}
		if c == '{' && i+1 < len(raw) && raw[i+1] == '}' {
			if n >= len(args) {
				return nil, intrinsicErr(e.name, "more placeholders than arguments")
			}
			b.WriteString(javaString(args[n]))
			n++
			i++
			continue
		}
		b.WriteByte(c)
	}
	if n != len(args) {
		return nil, intrinsicErr(e.name, "the number of arguments does not match the placeholders")
	}
	return b.String(), nil
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
