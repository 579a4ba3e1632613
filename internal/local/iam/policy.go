package iam

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Policy language versions AWS accepts.
const (
	PolicyVersion2012 = "2012-10-17"
	PolicyVersion2008 = "2008-10-17"
)

// Principal values with a meaning of their own.
const (
	wildcard          = "*"
	rootResourceName  = "root"
	accountIDLength   = 12
	policyVariableTag = "${"
)

// ErrMalformedPolicy is wrapped by every error ParsePolicy returns.
var ErrMalformedPolicy = errors.New("malformed policy")

// Effect is a statement's effect.
type Effect uint8

// The two effects a statement can have.
const (
	Allow Effect = iota + 1
	Deny
)

// String returns the effect as written in a policy.
func (e Effect) String() string {
	switch e {
	case Allow:
		return "Allow"
	case Deny:
		return "Deny"
	}
	return "Effect(?)"
}

// Policy is a parsed, compiled policy document. It is immutable and safe
// for concurrent use.
type Policy struct {
	name       string
	doc        json.RawMessage
	statements []statement
}

// Name is the name the policy was parsed with (used in decisions and logs).
func (p *Policy) Name() string { return p.name }

// Document returns the policy's JSON document as it was parsed.
func (p *Policy) Document() json.RawMessage { return p.doc }

// MarshalJSON renders the policy's original document.
func (p *Policy) MarshalJSON() ([]byte, error) { return p.doc, nil }

// statement is one compiled statement.
type statement struct {
	sid   string
	index int
	// effect is Allow or Deny.
	effect Effect
	// actions are lower-cased "service:action" patterns; notAction inverts.
	actions   []string
	notAction bool
	// resources are ARN patterns; nil with hasResource false means the
	// statement names no resource (allowed in some resource policies) and
	// applies to every resource.
	resources   []arnPattern
	notResource bool
	hasResource bool
	// principals are the Principal/NotPrincipal entries.
	principals   []principalPattern
	notPrincipal bool
	hasPrincipal bool
	conditions   []condition
}

// ref names the statement for a decision.
func (s *statement) ref(p *Policy, kind PolicyKind) StatementRef {
	return StatementRef{Policy: p.name, Sid: s.sid, Index: s.index, Kind: kind, Effect: s.effect}
}

type principalKind uint8

const (
	principalAny principalKind = iota + 1
	principalAccount
	principalARN
	principalService
	principalOther // Federated, CanonicalUser: matched by exact value
)

type principalPattern struct {
	kind principalKind
	// value is the account id for principalAccount, the ARN, service name
	// or other identifier otherwise.
	value string
}

// ParsePolicy parses and compiles a policy document. name identifies the
// policy in decisions (for example "keyline-backupupload/inline" or
// "key-policy"). Malformed documents are rejected with an error wrapping
// ErrMalformedPolicy that says what is wrong.
func ParsePolicy(name string, doc []byte) (*Policy, error) {
	p, err := parsePolicy(name, doc)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %w", ErrMalformedPolicy, name, err)
	}
	return p, nil
}

// MustParsePolicy is ParsePolicy for documents known to be valid (static
// policies and tests); it panics on an error.
func MustParsePolicy(name string, doc string) *Policy {
	p, err := ParsePolicy(name, []byte(doc))
	if err != nil {
		panic(err)
	}
	return p
}

func parsePolicy(name string, doc []byte) (*Policy, error) {
	var top map[string]json.RawMessage
	if err := strictUnmarshal(doc, &top); err != nil {
		return nil, fmt.Errorf("document is not a JSON object: %w", err)
	}
	if top == nil {
		return nil, errors.New("document is null")
	}
	for k := range top {
		switch k {
		case "Version", "Id", "Statement":
		default:
			return nil, fmt.Errorf("unknown top-level element %q", k)
		}
	}
	if raw, ok := top["Version"]; ok {
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("Version must be a string: %w", err)
		}
		if v != PolicyVersion2012 && v != PolicyVersion2008 {
			return nil, fmt.Errorf("Version %q is not %s or %s", v, PolicyVersion2012, PolicyVersion2008)
		}
	}
	rawStmts, ok := top["Statement"]
	if !ok {
		return nil, errors.New("missing Statement")
	}
	var list []json.RawMessage
	trimmed := bytes.TrimSpace(rawStmts)
	switch {
	case len(trimmed) > 0 && trimmed[0] == '[':
		if err := json.Unmarshal(trimmed, &list); err != nil {
			return nil, fmt.Errorf("Statement: %w", err)
		}
	case len(trimmed) > 0 && trimmed[0] == '{':
		list = []json.RawMessage{trimmed}
	default:
		return nil, errors.New("Statement must be an object or an array of objects")
	}
	if len(list) == 0 {
		return nil, errors.New("Statement is empty")
	}
	p := &Policy{name: name, doc: append(json.RawMessage(nil), doc...)}
	sids := make(map[string]bool, len(list))
	for i, raw := range list {
		s, err := parseStatement(raw, i)
		if err != nil {
			return nil, fmt.Errorf("statement %d: %w", i, err)
		}
		if s.sid != "" {
			if sids[s.sid] {
				return nil, fmt.Errorf("statement %d: duplicate Sid %q", i, s.sid)
			}
			sids[s.sid] = true
		}
		p.statements = append(p.statements, s)
	}
	return p, nil
}

func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

func parseStatement(raw json.RawMessage, index int) (statement, error) {
	s := statement{index: index}
	var m map[string]json.RawMessage
	if err := strictUnmarshal(raw, &m); err != nil || m == nil {
		return s, fmt.Errorf("not a JSON object: %w", errOrNull(err))
	}
	for k := range m {
		switch k {
		case "Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Principal", "NotPrincipal", "Condition":
		default:
			return s, fmt.Errorf("unknown element %q", k)
		}
	}
	if raw, ok := m["Sid"]; ok {
		if err := json.Unmarshal(raw, &s.sid); err != nil {
			return s, fmt.Errorf("Sid must be a string: %w", err)
		}
	}
	var effect string
	if err := json.Unmarshal(m["Effect"], &effect); err != nil {
		return s, fmt.Errorf("Effect must be a string: %w", errOrNull(err))
	}
	switch effect {
	case "Allow":
		s.effect = Allow
	case "Deny":
		s.effect = Deny
	default:
		return s, fmt.Errorf("Effect %q is not Allow or Deny", effect)
	}

	actions, notAction, err := pickOne(m, "Action", "NotAction", true)
	if err != nil {
		return s, err
	}
	s.notAction = notAction
	list, err := stringList(actions)
	if err != nil {
		return s, fmt.Errorf("%s: %w", elementName("Action", notAction), err)
	}
	for _, a := range list {
		if err := validateAction(a); err != nil {
			return s, fmt.Errorf("%s: %w", elementName("Action", notAction), err)
		}
		s.actions = append(s.actions, strings.ToLower(a))
	}

	resources, notResource, err := pickOne(m, "Resource", "NotResource", false)
	if err != nil {
		return s, err
	}
	if resources != nil {
		s.hasResource, s.notResource = true, notResource
		list, err := stringList(resources)
		if err != nil {
			return s, fmt.Errorf("%s: %w", elementName("Resource", notResource), err)
		}
		for _, r := range list {
			if strings.Contains(r, policyVariableTag) {
				return s, fmt.Errorf("resource %q: policy variables are not supported", r)
			}
			if r == "" {
				return s, errors.New("empty resource")
			}
			s.resources = append(s.resources, compileARNPattern(r))
		}
	}

	principals, notPrincipal, err := pickOne(m, "Principal", "NotPrincipal", false)
	if err != nil {
		return s, err
	}
	if principals != nil {
		s.hasPrincipal, s.notPrincipal = true, notPrincipal
		s.principals, err = parsePrincipal(principals)
		if err != nil {
			return s, fmt.Errorf("%s: %w", elementName("Principal", notPrincipal), err)
		}
	}

	if raw, ok := m["Condition"]; ok {
		s.conditions, err = parseConditionBlock(raw)
		if err != nil {
			return s, fmt.Errorf("Condition: %w", err)
		}
	}
	return s, nil
}

func errOrNull(err error) error {
	if err == nil {
		return errors.New("null")
	}
	return err
}

func elementName(base string, not bool) string {
	if not {
		return "Not" + base
	}
	return base
}

// pickOne returns the element named a or notA (at most one may be present).
func pickOne(m map[string]json.RawMessage, a, notA string, required bool) (json.RawMessage, bool, error) {
	ra, okA := m[a]
	rn, okN := m[notA]
	switch {
	case okA && okN:
		return nil, false, fmt.Errorf("both %s and %s", a, notA)
	case okA:
		return ra, false, nil
	case okN:
		return rn, true, nil
	case required:
		return nil, false, fmt.Errorf("missing %s or %s", a, notA)
	}
	return nil, false, nil
}

// stringList decodes a string or a non-empty array of strings.
func stringList(raw json.RawMessage) ([]string, error) {
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, fmt.Errorf("must be a string or an array of strings: %w", err)
	}
	if len(many) == 0 {
		return nil, errors.New("empty array")
	}
	return many, nil
}

func validateAction(a string) error {
	if a == wildcard {
		return nil
	}
	service, name, ok := strings.Cut(a, ":")
	if !ok || service == "" || name == "" || strings.Contains(name, ":") {
		return fmt.Errorf("action %q is not \"service:action\" or \"*\"", a)
	}
	return nil
}

func parsePrincipal(raw json.RawMessage) ([]principalPattern, error) {
	var star string
	if err := json.Unmarshal(raw, &star); err == nil {
		if star != wildcard {
			return nil, fmt.Errorf("a string principal must be %q, got %q", wildcard, star)
		}
		return []principalPattern{{kind: principalAny}}, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || len(m) == 0 {
		return nil, fmt.Errorf("must be \"*\" or an object such as {\"AWS\": [...]}: %w", errOrNull(err))
	}
	var out []principalPattern
	for typ, vals := range m {
		list, err := stringList(vals)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", typ, err)
		}
		for _, v := range list {
			pp, err := parsePrincipalValue(typ, v)
			if err != nil {
				return nil, err
			}
			out = append(out, pp)
		}
	}
	return out, nil
}

func parsePrincipalValue(typ, v string) (principalPattern, error) {
	switch typ {
	case "AWS":
		if v == wildcard {
			return principalPattern{kind: principalAny}, nil
		}
		if isAccountID(v) {
			return principalPattern{kind: principalAccount, value: v}, nil
		}
		a, ok := splitARN(v)
		if !ok || a.service != "iam" && a.service != "sts" {
			return principalPattern{}, fmt.Errorf("AWS principal %q is not an account id or an IAM/STS ARN", v)
		}
		if strings.Contains(v, wildcard) || strings.Contains(v, "?") {
			return principalPattern{}, fmt.Errorf("AWS principal %q: wildcards are not allowed in principal ARNs", v)
		}
		if a.service == "iam" && a.resource == rootResourceName {
			return principalPattern{kind: principalAccount, value: a.account}, nil
		}
		return principalPattern{kind: principalARN, value: v}, nil
	case "Service":
		if v == "" {
			return principalPattern{}, errors.New("empty service principal")
		}
		return principalPattern{kind: principalService, value: v}, nil
	case "Federated", "CanonicalUser":
		return principalPattern{kind: principalOther, value: v}, nil
	}
	return principalPattern{}, fmt.Errorf("unknown principal type %q", typ)
}

// isAccountID reports whether s is a 12-digit AWS account id.
func isAccountID(s string) bool {
	if len(s) != accountIDLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
