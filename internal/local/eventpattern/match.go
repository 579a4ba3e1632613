package eventpattern

import (
	"net/netip"
	"strings"
	"unicode/utf8"
)

// Match reports whether event (a JSON object) matches the pattern.
func (p *Pattern) Match(event []byte) (bool, error) {
	e, err := ParseEvent(event)
	if err != nil {
		return false, err
	}
	return p.MatchParsed(e), nil
}

// MatchParsed reports whether a parsed event matches the pattern.
func (p *Pattern) MatchParsed(e *Event) bool {
	for _, alt := range p.alts {
		if matchAll(alt, e) {
			return true
		}
	}
	return false
}

// matchAll reports whether every field matches, with the leaves chosen for the
// fields drawn from one element of any array they share.
func matchAll(fields []field, e *Event) bool {
	var constrained [][]leaf // candidates of fields whose every match sits in an array
	for i := range fields {
		f := &fields[i]
		leaves := e.fields[f.path]
		if len(leaves) == 0 {
			if f.absentOK {
				continue
			}
			return false
		}
		free := false
		var cands []leaf
		for _, l := range leaves {
			if f.matches(l.v) {
				if len(l.arrays) == 0 {
					free = true
					break
				}
				cands = append(cands, l)
			}
		}
		if free {
			continue
		}
		if len(cands) == 0 {
			return false
		}
		constrained = append(constrained, cands)
	}
	if len(constrained) <= 1 {
		return true
	}
	return choose(constrained, make([]leaf, 0, len(constrained)))
}

// choose finds one candidate per field, all consistent with each other.
func choose(cands [][]leaf, chosen []leaf) bool {
	if len(chosen) == len(cands) {
		return true
	}
next:
	for _, l := range cands[len(chosen)] {
		for _, c := range chosen {
			if !consistent(c, l) {
				continue next
			}
		}
		if choose(cands, append(chosen, l)) {
			return true
		}
	}
	return false
}

func (f *field) matches(v *value) bool {
	for i := range f.conds {
		if f.conds[i].matches(v) {
			return true
		}
	}
	return false
}

func (c *cond) matches(v *value) bool {
	switch c.kind {
	case cString:
		return v.kind == kString && v.str == c.s
	case cNumber:
		return v.kind == kNumber && newNumber(v).equal(c.num)
	case cBool:
		return v.kind == kBool && v.b == c.b
	case cNull:
		return v.kind == kNull
	case cPrefix:
		return v.kind == kString && hasPrefix(v.str, c.s, c.fold)
	case cSuffix:
		return v.kind == kString && hasSuffix(v.str, c.s, c.fold)
	case cEqualsFold:
		return v.kind == kString && strings.EqualFold(v.str, c.s)
	case cWildcard:
		return v.kind == kString && c.wc.match(v.str)
	case cAnythingBut:
		return !c.but.excludes(v)
	case cNumeric:
		return v.kind == kNumber && v.nok && c.rng.contains(v.num)
	case cExists:
		return c.exist
	case cCIDR:
		if v.kind != kString {
			return false
		}
		a, err := netip.ParseAddr(v.str)
		return err == nil && c.cidr.Contains(a.Unmap())
	}
	return false
}

// excludes reports whether an anything-but condition rules v out.
func (b *butSet) excludes(v *value) bool {
	switch v.kind {
	case kNumber:
		n := newNumber(v)
		for _, x := range b.nums {
			if x.equal(n) {
				return true
			}
		}
	case kString:
		s := v.str
		for _, x := range b.strs {
			if x == s {
				return true
			}
		}
		for _, x := range b.folds {
			if strings.EqualFold(x, s) {
				return true
			}
		}
		for _, x := range b.prefixes {
			if strings.HasPrefix(s, x) {
				return true
			}
		}
		for _, x := range b.suffixes {
			if strings.HasSuffix(s, x) {
				return true
			}
		}
		for _, w := range b.wildcards {
			if w.match(s) {
				return true
			}
		}
	}
	return false
}

func hasPrefix(s, p string, fold bool) bool {
	if !fold {
		return strings.HasPrefix(s, p)
	}
	for p != "" {
		if s == "" {
			return false
		}
		r1, n1 := utf8.DecodeRuneInString(s)
		r2, n2 := utf8.DecodeRuneInString(p)
		if !strings.EqualFold(string(r1), string(r2)) {
			return false
		}
		s, p = s[n1:], p[n2:]
	}
	return true
}

func hasSuffix(s, p string, fold bool) bool {
	if !fold {
		return strings.HasSuffix(s, p)
	}
	for p != "" {
		if s == "" {
			return false
		}
		r1, n1 := utf8.DecodeLastRuneInString(s)
		r2, n2 := utf8.DecodeLastRuneInString(p)
		if !strings.EqualFold(string(r1), string(r2)) {
			return false
		}
		s, p = s[:len(s)-n1], p[:len(p)-n2]
	}
	return true
}
