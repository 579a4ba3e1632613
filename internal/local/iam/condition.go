package iam

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Set-operator prefixes and the IfExists suffix of condition operators.
const (
	forAllValuesPrefix = "forallvalues:"
	forAnyValuePrefix  = "foranyvalue:"
	ifExistsSuffix     = "ifexists"
	boolTrue           = "true"
	boolFalse          = "false"
)

// Value is the value of a condition key in a request's context: a single
// string, or a set of strings for a multivalued key (kms:EncryptionContextKeys,
// aws:TagKeys, dynamodb:Attributes, …).
type Value struct {
	values []string
	multi  bool
}

// String returns a single-valued context value.
func String(s string) Value { return Value{values: []string{s}} }

// Strings returns a multivalued context value. A multivalued key with no
// values is treated as absent from the request.
func Strings(ss ...string) Value { return Value{values: ss, multi: true} }

// Bool returns a single-valued boolean context value ("true"/"false").
func Bool(b bool) Value { return String(strconv.FormatBool(b)) }

// Values returns the value's strings (one for a single-valued key).
func (v Value) Values() []string { return v.values }

// IsMulti reports whether the value is a multivalued key's set.
func (v Value) IsMulti() bool { return v.multi }

// present reports whether the key counts as present in the request.
func (v Value) present() bool { return len(v.values) > 0 }

// MarshalJSON renders a single value as a string and a set as an array.
func (v Value) MarshalJSON() ([]byte, error) {
	if v.multi {
		if v.values == nil {
			return []byte("[]"), nil
		}
		return json.Marshal(v.values)
	}
	if len(v.values) == 0 {
		return []byte(`""`), nil
	}
	return json.Marshal(v.values[0])
}

// UnmarshalJSON accepts a string (single-valued) or an array (multivalued).
func (v *Value) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*v = String(s)
		return nil
	}
	var ss []string
	if err := json.Unmarshal(b, &ss); err != nil {
		return fmt.Errorf("context value must be a string or an array of strings: %w", err)
	}
	*v = Strings(ss...)
	return nil
}

// Context maps condition keys to their values in a request. Keys are
// matched case-insensitively, as AWS matches condition key names.
type Context map[string]Value

// lookup finds a key in the context, ignoring case. asWritten is the key
// as the policy spells it, usually also the caller's spelling, so it is
// tried first; lowerKey is the same key in lower case.
func (c Context) lookup(asWritten, lowerKey string) (Value, bool) {
	if v, ok := c[asWritten]; ok {
		return v, v.present()
	}
	if v, ok := c[lowerKey]; ok {
		return v, v.present()
	}
	for k, v := range c {
		if strings.EqualFold(k, lowerKey) {
			return v, v.present()
		}
	}
	return Value{}, false
}

// baseOp is a condition operator without set prefix or IfExists suffix.
type baseOp uint8

const (
	opStringEquals baseOp = iota + 1
	opStringNotEquals
	opStringEqualsIgnoreCase
	opStringNotEqualsIgnoreCase
	opStringLike
	opStringNotLike
	opNumericEquals
	opNumericNotEquals
	opNumericLessThan
	opNumericLessThanEquals
	opNumericGreaterThan
	opNumericGreaterThanEquals
	opBool
	opArnEquals
	opArnLike
	opArnNotEquals
	opArnNotLike
	opIPAddress
	opNotIPAddress
	opNull
)

var baseOps = map[string]baseOp{
	"stringequals":              opStringEquals,
	"stringnotequals":           opStringNotEquals,
	"stringequalsignorecase":    opStringEqualsIgnoreCase,
	"stringnotequalsignorecase": opStringNotEqualsIgnoreCase,
	"stringlike":                opStringLike,
	"stringnotlike":             opStringNotLike,
	"numericequals":             opNumericEquals,
	"numericnotequals":          opNumericNotEquals,
	"numericlessthan":           opNumericLessThan,
	"numericlessthanequals":     opNumericLessThanEquals,
	"numericgreaterthan":        opNumericGreaterThan,
	"numericgreaterthanequals":  opNumericGreaterThanEquals,
	"bool":                      opBool,
	"arnequals":                 opArnEquals,
	"arnlike":                   opArnLike,
	"arnnotequals":              opArnNotEquals,
	"arnnotlike":                opArnNotLike,
	"ipaddress":                 opIPAddress,
	"notipaddress":              opNotIPAddress,
	"null":                      opNull,
}

// negated reports whether the operator is a negation (StringNotEquals,
// ArnNotLike, …): it holds for a value when the value matches none of the
// policy values, and a single-valued negated condition over an absent key
// is true (AWS: "If the key is not present, the condition evaluates to true"
// for the negated operators).
func (o baseOp) negated() bool {
	switch o {
	case opStringNotEquals, opStringNotEqualsIgnoreCase, opStringNotLike,
		opNumericNotEquals, opArnNotEquals, opArnNotLike, opNotIPAddress:
		return true
	}
	return false
}

type setOp uint8

const (
	setNone setOp = iota
	setForAllValues
	setForAnyValue
)

// condition is one (operator, key, values) triple of a Condition block.
type condition struct {
	base     baseOp
	set      setOp
	ifExists bool
	key      string // lower case
	keyAsIs  string // as written in the policy
	values   []string
	arns     []arnPattern   // for Arn operators
	nums     []float64      // for Numeric operators (NaN when not a number)
	prefixes []netip.Prefix // for IP operators
}

func parseConditionBlock(raw json.RawMessage) ([]condition, error) {
	var block map[string]map[string]json.RawMessage
	if err := strictUnmarshal(raw, &block); err != nil {
		return nil, fmt.Errorf("must be an object of operators to objects of keys: %w", err)
	}
	var out []condition
	for opName, keys := range block {
		base, set, ifExists, err := parseOperator(opName)
		if err != nil {
			return nil, err
		}
		if len(keys) == 0 {
			return nil, fmt.Errorf("%s: no condition keys", opName)
		}
		for key, vals := range keys {
			if key == "" {
				return nil, fmt.Errorf("%s: empty condition key", opName)
			}
			values, err := conditionValues(vals)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", opName, key, err)
			}
			c := condition{base: base, set: set, ifExists: ifExists, key: strings.ToLower(key), keyAsIs: key, values: values}
			if err := c.compile(); err != nil {
				return nil, fmt.Errorf("%s %s: %w", opName, key, err)
			}
			out = append(out, c)
		}
	}
	return out, nil
}

// parseOperator splits "ForAnyValue:StringLikeIfExists" into its parts.
// Operator names are matched case-insensitively.
func parseOperator(name string) (baseOp, setOp, bool, error) {
	s := strings.ToLower(name)
	set := setNone
	switch {
	case strings.HasPrefix(s, forAllValuesPrefix):
		set, s = setForAllValues, s[len(forAllValuesPrefix):]
	case strings.HasPrefix(s, forAnyValuePrefix):
		set, s = setForAnyValue, s[len(forAnyValuePrefix):]
	}
	ifExists := false
	if b, ok := strings.CutSuffix(s, ifExistsSuffix); ok {
		if _, known := baseOps[b]; known {
			ifExists, s = true, b
		}
	}
	base, ok := baseOps[s]
	if !ok {
		return 0, 0, false, fmt.Errorf("unknown or unsupported condition operator %q", name)
	}
	if base == opNull && (ifExists || set != setNone) {
		return 0, 0, false, fmt.Errorf("condition operator %q: Null takes no set operator or IfExists", name)
	}
	return base, set, ifExists, nil
}

// conditionValues decodes a condition's value or values: strings, booleans
// and numbers are all compared as their text.
func conditionValues(raw json.RawMessage) ([]string, error) {
	var one any
	if err := strictUnmarshal(raw, &one); err != nil {
		return nil, err
	}
	scalar := func(v any) (string, error) {
		switch t := v.(type) {
		case string:
			if strings.Contains(t, policyVariableTag) {
				return "", fmt.Errorf("value %q: policy variables are not supported", t)
			}
			return t, nil
		case bool:
			return strconv.FormatBool(t), nil
		case json.Number:
			return t.String(), nil
		}
		return "", fmt.Errorf("value %v is not a string, number or boolean", v)
	}
	if list, ok := one.([]any); ok {
		if len(list) == 0 {
			return nil, errors.New("empty array of values")
		}
		out := make([]string, 0, len(list))
		for _, v := range list {
			s, err := scalar(v)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	}
	s, err := scalar(one)
	if err != nil {
		return nil, err
	}
	return []string{s}, nil
}

func (c *condition) compile() error {
	switch c.base {
	case opArnEquals, opArnLike, opArnNotEquals, opArnNotLike:
		for _, v := range c.values {
			a := compileARNPattern(v)
			if !a.split {
				return fmt.Errorf("%q is not an ARN", v)
			}
			c.arns = append(c.arns, a)
		}
	case opNumericEquals, opNumericNotEquals, opNumericLessThan, opNumericLessThanEquals,
		opNumericGreaterThan, opNumericGreaterThanEquals:
		for _, v := range c.values {
			n, err := parseNumber(v)
			if err != nil {
				return fmt.Errorf("%q is not a number: %w", v, err)
			}
			c.nums = append(c.nums, n)
		}
	case opBool, opNull:
		for _, v := range c.values {
			if l := strings.ToLower(v); l != boolTrue && l != boolFalse {
				return fmt.Errorf("%q is not true or false", v)
			}
		}
	case opIPAddress, opNotIPAddress:
		for _, v := range c.values {
			p, err := parsePrefix(v)
			if err != nil {
				return err
			}
			c.prefixes = append(c.prefixes, p)
		}
	}
	return nil
}

func parseNumber(s string) (float64, error) {
	return strconv.ParseFloat(strings.TrimSpace(s), 64)
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR: %w", s, err)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR: %w", s, err)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// eval evaluates the condition against the request context.
//
// The rules, as AWS documents them:
//   - Null: "true" holds when the key is absent, "false" when it is present.
//   - Without a set operator, an absent key makes the condition false,
//     except with ...IfExists or a negated operator, where it is true.
//     A single-valued operator over a multivalued key does not match: a
//     multivalued key needs ForAllValues or ForAnyValue.
//   - ForAllValues holds when every value in the request satisfies the
//     operator; it is true when the key is absent or has no values.
//   - ForAnyValue holds when at least one request value satisfies the
//     operator; it is false when the key is absent or has no values, also
//     with the IfExists suffix. The general IfExists rule ("if the key is not
//     present, evaluate the condition as true") reads as if it applied here
//     too, but AWS does not apply it to ForAnyValue: a role allowed only
//     under ForAnyValue:StringEqualsIfExists on aws:TagKeys is refused
//     sqs:ListQueues, whose requests carry no tag keys, with "no
//     identity-based policy allows" (reported on AWS re:Post, "ForAnyValue:
//     StringEqualsIfExists behaving unexpectedly"). IfExists only affects
//     each value inside the set loop, where every value exists. The
//     independent simulator we compare with implements the same.
//   - Several values for one key are OR'd: a positive operator matches when
//     any policy value matches; a negated one when no policy value matches.
func (c *condition) eval(ctx Context) bool {
	v, present := ctx.lookup(c.keyAsIs, c.key)
	if c.base == opNull {
		want := boolFalse
		if !present {
			want = boolTrue
		}
		for _, pv := range c.values {
			if strings.EqualFold(pv, want) {
				return true
			}
		}
		return false
	}
	switch c.set {
	case setForAllValues:
		if !present {
			return true
		}
		for _, rv := range v.values {
			if !c.matchValue(rv) {
				return false
			}
		}
		return true
	case setForAnyValue:
		if !present {
			return false
		}
		for _, rv := range v.values {
			if c.matchValue(rv) {
				return true
			}
		}
		return false
	}
	if !present {
		return c.ifExists || c.base.negated()
	}
	if v.multi {
		return false
	}
	return c.matchValue(v.values[0])
}

// matchValue applies the base operator to one request value against all
// policy values (OR for positive operators, NOR for negated ones).
func (c *condition) matchValue(rv string) bool {
	switch c.base {
	case opStringEquals:
		return anyOf(c.values, func(pv string) bool { return pv == rv })
	case opStringNotEquals:
		return !anyOf(c.values, func(pv string) bool { return pv == rv })
	case opStringEqualsIgnoreCase:
		return anyOf(c.values, func(pv string) bool { return strings.EqualFold(pv, rv) })
	case opStringNotEqualsIgnoreCase:
		return !anyOf(c.values, func(pv string) bool { return strings.EqualFold(pv, rv) })
	case opStringLike:
		return anyOf(c.values, func(pv string) bool { return glob(pv, rv, false) })
	case opStringNotLike:
		return !anyOf(c.values, func(pv string) bool { return glob(pv, rv, false) })
	case opArnEquals, opArnLike:
		return c.anyARN(rv)
	case opArnNotEquals, opArnNotLike:
		// A request value that is not an ARN matches neither way.
		if _, ok := splitARN(rv); !ok {
			return false
		}
		return !c.anyARN(rv)
	case opBool:
		if l := strings.ToLower(rv); l != boolTrue && l != boolFalse {
			return false
		}
		return anyOf(c.values, func(pv string) bool { return strings.EqualFold(pv, rv) })
	case opIPAddress, opNotIPAddress:
		a, err := netip.ParseAddr(rv)
		if err != nil {
			return false
		}
		in := false
		for _, p := range c.prefixes {
			if p.Contains(a) {
				in = true
				break
			}
		}
		return in == (c.base == opIPAddress)
	}
	n, err := parseNumber(rv)
	if err != nil {
		return false
	}
	switch c.base {
	case opNumericEquals:
		return anyNum(c.nums, func(p float64) bool { return n == p })
	case opNumericNotEquals:
		return !anyNum(c.nums, func(p float64) bool { return n == p })
	case opNumericLessThan:
		return anyNum(c.nums, func(p float64) bool { return n < p })
	case opNumericLessThanEquals:
		return anyNum(c.nums, func(p float64) bool { return n <= p })
	case opNumericGreaterThan:
		return anyNum(c.nums, func(p float64) bool { return n > p })
	case opNumericGreaterThanEquals:
		return anyNum(c.nums, func(p float64) bool { return n >= p })
	}
	return false
}

func (c *condition) anyARN(rv string) bool {
	for i := range c.arns {
		if c.arns[i].match(rv) {
			return true
		}
	}
	return false
}

func anyOf(values []string, f func(string) bool) bool {
	for _, v := range values {
		if f(v) {
			return true
		}
	}
	return false
}

func anyNum(values []float64, f func(float64) bool) bool {
	for _, v := range values {
		if f(v) {
			return true
		}
	}
	return false
}
