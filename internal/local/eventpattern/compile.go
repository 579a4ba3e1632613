// Package eventpattern implements Amazon EventBridge's event-pattern language:
// compiling (and validating) a pattern, and matching events against it.
//
// The whole language is supported: exact values (strings, numbers compared
// numerically, booleans, null), prefix and suffix (with their
// equals-ignore-case forms), anything-but (values, lists, prefix, suffix,
// equals-ignore-case and wildcard forms), numeric ranges, exists,
// equals-ignore-case, wildcard, cidr, $or, matching inside arrays (any element,
// with fields of one array element kept together as EventBridge does), nested
// objects and dotted keys. Invalid patterns yield an *InvalidPatternError whose
// message is the one AWS gives.
package eventpattern

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// reasonPrefix starts every InvalidEventPatternException message AWS gives.
const reasonPrefix = "Event pattern is not valid. Reason: "

// InvalidPatternError reports a pattern that EventBridge would refuse. Its
// Error text is AWS's InvalidEventPatternException message.
type InvalidPatternError struct {
	// Reason is the part after "Event pattern is not valid. Reason: ".
	Reason string
}

func (e *InvalidPatternError) Error() string { return reasonPrefix + e.Reason }

// ErrInvalidEvent is returned (wrapped) when an event is not a JSON object.
var ErrInvalidEvent = errors.New("event is not a JSON object")

// maxAlternatives bounds how many conjunctions a pattern's $or clauses expand to.
const maxAlternatives = 4096

// maxWildcards is the number of '*' in one wildcard pattern past which AWS
// reports the rule as too complex.
const maxWildcards = 5

// Pattern is a compiled event pattern. It is immutable and safe for
// concurrent use.
type Pattern struct {
	alts [][]field // any alternative (from $or) whose fields all match
}

// field is one pattern key (dot-joined path) with its list of conditions, any
// of which may match.
type field struct {
	path     string
	conds    []cond
	absentOK bool // an {"exists": false} condition: matches when the path has no value
}

type condKind uint8

const (
	cString condKind = iota
	cNumber
	cBool
	cNull
	cPrefix
	cSuffix
	cEqualsFold
	cWildcard
	cAnythingBut
	cNumeric
	cExists
	cCIDR
)

type cond struct {
	kind  condKind
	s     string
	fold  bool // prefix/suffix equals-ignore-case form
	num   number
	b     bool
	wc    wildcard
	rng   numRange
	but   *butSet
	cidr  netip.Prefix
	exist bool
}

// number is a JSON number: its value, or its text when it does not fit a float64.
type number struct {
	f    float64
	text string
	ok   bool
}

func newNumber(v *value) number {
	return number{f: v.num, text: v.str, ok: v.nok}
}

func (n number) equal(m number) bool {
	if n.ok && m.ok {
		return n.f == m.f
	}
	return n.text == m.text
}

type numRange struct {
	lo, hi         float64
	hasLo, hasHi   bool
	loOpen, hiOpen bool
}

func (r numRange) contains(f float64) bool {
	if r.hasLo && (f < r.lo || (r.loOpen && f == r.lo)) {
		return false
	}
	if r.hasHi && (f > r.hi || (r.hiOpen && f == r.hi)) {
		return false
	}
	return true
}

// butSet holds what an anything-but condition excludes.
type butSet struct {
	strs      []string
	nums      []number
	folds     []string
	prefixes  []string
	suffixes  []string
	wildcards []wildcard
}

// Compile parses and validates an EventBridge event pattern.
func Compile(pattern []byte) (*Pattern, error) {
	v, err := parseJSON(pattern)
	if err != nil {
		var se *syntaxError
		if errors.As(err, &se) {
			return nil, &InvalidPatternError{Reason: se.msg}
		}
		return nil, &InvalidPatternError{Reason: err.Error()}
	}
	if v.kind != kObject {
		return nil, &InvalidPatternError{Reason: notObject(pattern)}
	}
	alts, err := compileObject(v, "")
	if err != nil {
		return nil, err
	}
	return &Pattern{alts: alts}, nil
}

// MustCompile is Compile for patterns known to be valid; it panics otherwise.
func MustCompile(pattern string) *Pattern {
	p, err := Compile([]byte(pattern))
	if err != nil {
		panic(err)
	}
	return p
}

// notObject phrases AWS's error for a pattern that is valid JSON but not an
// object, pointing just past its first token as AWS's parser does.
func notObject(pattern []byte) string {
	p := &parser{src: string(pattern)}
	p.skipSpace()
	if p.pos < len(p.src) && p.src[p.pos] == '[' {
		p.pos++
	} else if _, err := p.value(0); err != nil {
		return "Filter is not an object"
	}
	return p.errAt(p.pos, "Filter is not an object").Error()
}

func invalid(format string, args ...any) *InvalidPatternError {
	return &InvalidPatternError{Reason: fmt.Sprintf(format, args...)}
}

func joinPath(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

func compileObject(v *value, prefix string) ([][]field, error) {
	if len(v.obj) == 0 {
		return nil, invalid("Empty objects are not allowed")
	}
	alts := [][]field{nil}
	for _, m := range v.obj {
		switch m.val.kind {
		case kObject:
			sub, err := compileObject(m.val, joinPath(prefix, m.key))
			if err != nil {
				return nil, err
			}
			if alts, err = cross(alts, sub); err != nil {
				return nil, err
			}
		case kArray:
			if len(m.val.arr) == 0 {
				return nil, invalid("Empty arrays are not allowed")
			}
			if m.key == "$or" && allObjects(m.val.arr) {
				var ors [][]field
				for _, el := range m.val.arr {
					sub, err := compileObject(el, prefix)
					if err != nil {
						return nil, err
					}
					ors = append(ors, sub...)
				}
				var err error
				if alts, err = cross(alts, ors); err != nil {
					return nil, err
				}
				continue
			}
			f, err := compileField(joinPath(prefix, m.key), m.val.arr)
			if err != nil {
				return nil, err
			}
			for i := range alts {
				alts[i] = append(alts[i][:len(alts[i]):len(alts[i])], f)
			}
		default:
			return nil, invalid(`"%s" must be an object or an array`, m.key)
		}
	}
	return alts, nil
}

func allObjects(vs []*value) bool {
	for _, v := range vs {
		if v.kind != kObject {
			return false
		}
	}
	return true
}

// cross returns every conjunction of one alternative of a with one of b.
func cross(a, b [][]field) ([][]field, error) {
	if len(a)*len(b) > maxAlternatives {
		return nil, invalid("Rule is too complex - too many combinations of $or clauses (at most %d)", maxAlternatives)
	}
	out := make([][]field, 0, len(a)*len(b))
	for _, x := range a {
		for _, y := range b {
			c := make([]field, 0, len(x)+len(y))
			c = append(append(c, x...), y...)
			out = append(out, c)
		}
	}
	return out, nil
}

func compileField(path string, vals []*value) (field, error) {
	f := field{path: path}
	for _, v := range vals {
		var c cond
		switch v.kind {
		case kNull:
			c = cond{kind: cNull}
		case kBool:
			c = cond{kind: cBool, b: v.b}
		case kNumber:
			c = cond{kind: cNumber, num: newNumber(v)}
		case kString:
			c = cond{kind: cString, s: v.str}
		case kObject:
			var err error
			if c, err = compileMatch(v); err != nil {
				return field{}, err
			}
		default:
			return field{}, invalid("Match value must be String, number, true, false, or null")
		}
		if c.kind == cExists && !c.exist {
			f.absentOK = true
		}
		f.conds = append(f.conds, c)
	}
	return f, nil
}

// compileMatch compiles one {"operator": value} match expression.
func compileMatch(v *value) (cond, error) {
	if len(v.obj) == 0 {
		return cond{}, invalid("Empty objects are not allowed")
	}
	op, arg := v.obj[0].key, v.obj[0].val
	var c cond
	var err error
	switch op {
	case "prefix", "suffix":
		c, err = compilePrefixSuffix(op, arg)
	case "equals-ignore-case":
		if arg.kind != kString {
			return cond{}, invalid("equals-ignore-case match pattern must be a string")
		}
		c = cond{kind: cEqualsFold, s: arg.str}
	case "wildcard":
		if arg.kind != kString {
			return cond{}, invalid("wildcard match pattern must be a string")
		}
		var w wildcard
		if w, err = compileWildcard(arg.str); err == nil {
			c = cond{kind: cWildcard, wc: w}
		}
	case "anything-but":
		var b *butSet
		if b, err = compileAnythingBut(arg); err == nil {
			c = cond{kind: cAnythingBut, but: b}
		}
	case "exists":
		if arg.kind != kBool {
			return cond{}, invalid("exists match pattern must be either true or false.")
		}
		c = cond{kind: cExists, exist: arg.b}
	case "numeric":
		var r numRange
		if r, err = compileNumeric(arg); err == nil {
			c = cond{kind: cNumeric, rng: r}
		}
	case "cidr":
		var p netip.Prefix
		if p, err = compileCIDR(arg); err == nil {
			c = cond{kind: cCIDR, cidr: p}
		}
	default:
		return cond{}, invalid("Unrecognized match type %s", op)
	}
	if err != nil {
		return cond{}, err
	}
	if len(v.obj) > 1 {
		return cond{}, invalid("Only one key allowed in match expression")
	}
	return c, nil
}

func compilePrefixSuffix(op string, arg *value) (cond, error) {
	kind := cPrefix
	if op == "suffix" {
		kind = cSuffix
	}
	switch arg.kind {
	case kString:
		return cond{kind: kind, s: arg.str}, nil
	case kObject:
		if len(arg.obj) == 1 && arg.obj[0].key == "equals-ignore-case" {
			if arg.obj[0].val.kind != kString {
				return cond{}, invalid("equals-ignore-case match pattern must be a string")
			}
			return cond{kind: kind, s: arg.obj[0].val.str, fold: true}, nil
		}
		if len(arg.obj) == 0 {
			return cond{}, invalid("Empty objects are not allowed")
		}
		if len(arg.obj) > 1 {
			return cond{}, invalid("Only one key allowed in match expression")
		}
		return cond{}, invalid("Unsupported %s pattern: %s", op, arg.obj[0].key)
	}
	return cond{}, invalid("%s match pattern must be a string", op)
}

const butValueMsg = "Value of anything-but must be an array or single string/number value."

func compileAnythingBut(arg *value) (*butSet, error) {
	b := &butSet{}
	switch arg.kind {
	case kString:
		b.strs = append(b.strs, arg.str)
	case kNumber:
		b.nums = append(b.nums, newNumber(arg))
	case kArray:
		if len(arg.arr) == 0 {
			return nil, invalid("Empty arrays are not allowed")
		}
		for _, el := range arg.arr {
			switch el.kind {
			case kString:
				b.strs = append(b.strs, el.str)
			case kNumber:
				b.nums = append(b.nums, newNumber(el))
			default:
				return nil, invalid("Inside anything but list, start|null|boolean is not supported.")
			}
		}
	case kObject:
		if len(arg.obj) == 0 {
			return nil, invalid("Empty objects are not allowed")
		}
		op, v := arg.obj[0].key, arg.obj[0].val
		switch op {
		case "prefix", "suffix":
			if v.kind == kObject {
				return nil, invalid(butValueMsg)
			}
			list, ok := stringList(v)
			if !ok {
				return nil, invalid("prefix/suffix match pattern must be a string")
			}
			for _, s := range list {
				if s == "" {
					return nil, invalid("Null prefix/suffix not allowed")
				}
			}
			if op == "prefix" {
				b.prefixes = list
			} else {
				b.suffixes = list
			}
		case "equals-ignore-case":
			list, ok := stringList(v)
			if !ok {
				return nil, invalid("Inside anything-but/equals-ignore-case list, number|start|null|boolean is not supported.")
			}
			b.folds = list
		case "wildcard":
			list, ok := stringList(v)
			if !ok {
				return nil, invalid("wildcard match pattern must be a string")
			}
			for _, s := range list {
				w, err := compileWildcard(s)
				if err != nil {
					return nil, err
				}
				b.wildcards = append(b.wildcards, w)
			}
		default:
			return nil, invalid("Unsupported anything-but pattern: %s", op)
		}
		if len(arg.obj) > 1 {
			return nil, invalid("Only one key allowed in match expression")
		}
	default:
		return nil, invalid(butValueMsg)
	}
	return b, nil
}

// stringList accepts a string or a non-empty array of strings.
func stringList(v *value) ([]string, bool) {
	switch v.kind {
	case kString:
		return []string{v.str}, true
	case kArray:
		if len(v.arr) == 0 {
			return nil, false
		}
		out := make([]string, 0, len(v.arr))
		for _, el := range v.arr {
			if el.kind != kString {
				return nil, false
			}
			out = append(out, el.str)
		}
		return out, true
	}
	return nil, false
}

func compileNumeric(arg *value) (numRange, error) {
	if arg.kind != kArray {
		return numRange{}, invalid("Value of numeric must be an array.")
	}
	terms := arg.arr
	if len(terms) == 0 {
		return numRange{}, invalid("Invalid member in numeric match: ]")
	}
	if terms[0].kind != kString {
		return numRange{}, invalid("Invalid member in numeric match: %s", text(terms[0]))
	}
	op := terms[0].str
	name := op
	switch op {
	case "=":
		name = "equals"
	case "<", "<=", ">", ">=":
	default:
		return numRange{}, invalid("Unrecognized numeric range operator: %s", op)
	}
	if len(terms) < 2 || terms[1].kind != kNumber {
		return numRange{}, invalid("Value of %s must be numeric", name)
	}
	n := terms[1].num
	var r numRange
	switch op {
	case "=":
		r = numRange{lo: n, hi: n, hasLo: true, hasHi: true}
	case "<":
		r = numRange{hi: n, hasHi: true, hiOpen: true}
	case "<=":
		r = numRange{hi: n, hasHi: true}
	case ">":
		r = numRange{lo: n, hasLo: true, loOpen: true}
	case ">=":
		r = numRange{lo: n, hasLo: true}
	}
	if len(terms) == 2 {
		return r, nil
	}
	if op != ">" && op != ">=" {
		return numRange{}, invalid("Too many elements in numeric expression")
	}
	if terms[2].kind != kString {
		return numRange{}, invalid("Bad value in numeric range: %s", text(terms[2]))
	}
	op2 := terms[2].str
	if op2 != "<" && op2 != "<=" {
		return numRange{}, invalid("Bad numeric range operator: %s", op2)
	}
	if len(terms) < 4 || terms[3].kind != kNumber {
		return numRange{}, invalid("Value of %s must be numeric", op2)
	}
	r.hi, r.hasHi, r.hiOpen = terms[3].num, true, op2 == "<"
	if r.hi <= r.lo {
		return numRange{}, invalid("Bottom must be less than top")
	}
	if len(terms) > 4 {
		return numRange{}, invalid("Too many terms in numeric range expression")
	}
	return r, nil
}

// text renders a scalar pattern value for an error message.
func text(v *value) string {
	switch v.kind {
	case kNull:
		return "null"
	case kBool:
		return strconv.FormatBool(v.b)
	case kArray:
		return "["
	case kObject:
		return "{"
	}
	return v.str
}

func compileCIDR(arg *value) (netip.Prefix, error) {
	if arg.kind != kString {
		// AWS reports the prefix error for a cidr that is not a string.
		return netip.Prefix{}, invalid("prefix match pattern must be a string")
	}
	parts := strings.Split(arg.str, "/")
	if len(parts) != 2 {
		return netip.Prefix{}, invalid("Malformed CIDR, one '/' required")
	}
	bits, err := strconv.Atoi(parts[1])
	if err != nil {
		return netip.Prefix{}, invalid("Malformed CIDR, mask bits must be an integer")
	}
	addr, err := netip.ParseAddr(parts[0])
	if err != nil || addr.Zone() != "" {
		return netip.Prefix{}, invalid("Nonstandard IP address: %s", parts[0])
	}
	if bits < 0 || bits > addr.BitLen() {
		return netip.Prefix{}, invalid("Malformed CIDR, mask bits must be between 0 and %d", addr.BitLen())
	}
	return netip.PrefixFrom(addr, bits).Masked(), nil
}
