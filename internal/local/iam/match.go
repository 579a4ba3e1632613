package iam

import "strings"

// arnParts are the six colon-separated parts of an ARN; the resource part
// keeps any further colons.
type arnParts struct {
	partition, service, region, account, resource string
}

const arnPrefix = "arn"

// splitARN splits "arn:partition:service:region:account:resource".
func splitARN(s string) (arnParts, bool) {
	var p [5]string
	rest := s
	for i := range p {
		j := strings.IndexByte(rest, ':')
		if j < 0 {
			return arnParts{}, false
		}
		p[i], rest = rest[:j], rest[j+1:]
	}
	if p[0] != arnPrefix {
		return arnParts{}, false
	}
	return arnParts{partition: p[1], service: p[2], region: p[3], account: p[4], resource: rest}, true
}

// arnPattern is a compiled Resource/NotResource entry or ArnLike value.
//
// ARN matching is case-sensitive and part-wise, as AWS documents for
// Resource and for the Arn condition operators: each of the six
// colon-delimited parts is matched separately, * and ? never cross a colon
// in the first five parts, and the resource part may contain colons.
type arnPattern struct {
	raw   string
	any   bool // "*"
	parts arnParts
	split bool // raw is a full ARN pattern; otherwise whole-string glob
}

func compileARNPattern(raw string) arnPattern {
	if raw == wildcard {
		return arnPattern{raw: raw, any: true}
	}
	p, ok := splitARN(raw)
	return arnPattern{raw: raw, parts: p, split: ok}
}

// match reports whether the ARN s matches the pattern.
func (p *arnPattern) match(s string) bool {
	if p.any {
		return true
	}
	if !p.split {
		return glob(p.raw, s, false)
	}
	a, ok := splitARN(s)
	if !ok {
		return false
	}
	return glob(p.parts.partition, a.partition, false) &&
		glob(p.parts.service, a.service, false) &&
		glob(p.parts.region, a.region, false) &&
		glob(p.parts.account, a.account, false) &&
		glob(p.parts.resource, a.resource, false)
}

// glob matches s against pattern, where * matches any run of characters
// (including none) and ? exactly one. With fold, ASCII letters match
// regardless of case (actions are case-insensitive). It does not allocate.
func glob(pattern, s string, fold bool) bool {
	px, sx := 0, 0
	starP, starS := -1, 0
	for sx < len(s) {
		if px < len(pattern) {
			c := pattern[px]
			switch {
			case c == '*':
				starP, starS = px, sx
				px++
				continue
			case c == '?':
				// ? matches one character, a whole UTF-8 sequence.
				px++
				sx += runeLen(s[sx:])
				continue
			case c == s[sx] || fold && lower(c) == lower(s[sx]):
				px++
				sx++
				continue
			}
		}
		if starP < 0 {
			return false
		}
		starS++
		px, sx = starP+1, starS
	}
	for px < len(pattern) && pattern[px] == '*' {
		px++
	}
	return px == len(pattern)
}

func runeLen(s string) int {
	c := s[0]
	switch {
	case c < 0x80:
		return 1
	case c>>5 == 0x6 && len(s) >= 2:
		return 2
	case c>>4 == 0xe && len(s) >= 3:
		return 3
	case c>>3 == 0x1e && len(s) >= 4:
		return 4
	}
	return 1
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// matchAction matches a lower-cased policy action pattern against a
// request action. Actions are case-insensitive ("kms:generatedatakey"
// matches "kms:GenerateDataKey"); the service prefix must match without
// wildcards crossing the colon.
func matchAction(pattern, action string) bool {
	if pattern == wildcard {
		return true
	}
	ps, pa, _ := strings.Cut(pattern, ":")
	as, aa, ok := strings.Cut(action, ":")
	if !ok {
		return false
	}
	return glob(ps, as, true) && glob(pa, aa, true)
}
