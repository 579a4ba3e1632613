package eventpattern

import "strings"

// wildcard is a compiled wildcard pattern: literal segments that the '*'
// characters separate (segs[0] * segs[1] * ... * segs[n]).
type wildcard struct {
	segs []string
}

// compileWildcard parses a wildcard pattern. `\*` is a literal star and `\\` a
// literal backslash. Two stars in a row are refused, and so are patterns with
// more stars than AWS accepts.
func compileWildcard(p string) (wildcard, error) {
	var segs []string
	var cur strings.Builder
	prevStar := false
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '\\' && i+1 < len(p) && (p[i+1] == '*' || p[i+1] == '\\'):
			cur.WriteByte(p[i+1])
			i++
			prevStar = false
		case c == '*':
			if prevStar {
				return wildcard{}, invalid("Consecutive wildcard characters at pos %d", i)
			}
			segs = append(segs, cur.String())
			cur.Reset()
			prevStar = true
		default:
			cur.WriteByte(c)
			prevStar = false
		}
	}
	segs = append(segs, cur.String())
	if len(segs)-1 > maxWildcards {
		return wildcard{}, invalid("Rule is too complex - try using fewer wildcard characters or fewer repeating character sequences after a wildcard character")
	}
	return wildcard{segs: segs}, nil
}

// match reports whether s matches the whole wildcard pattern.
func (w wildcard) match(s string) bool {
	if len(w.segs) == 1 {
		return s == w.segs[0]
	}
	first, last := w.segs[0], w.segs[len(w.segs)-1]
	if len(s) < len(first)+len(last) || !strings.HasPrefix(s, first) || !strings.HasSuffix(s, last) {
		return false
	}
	mid := s[len(first) : len(s)-len(last)]
	for _, seg := range w.segs[1 : len(w.segs)-1] {
		i := strings.Index(mid, seg)
		if i < 0 {
			return false
		}
		mid = mid[i+len(seg):]
	}
	return true
}
