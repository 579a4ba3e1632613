package eventpattern

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// kind is the JSON type of a parsed value.
type kind uint8

const (
	kNull kind = iota
	kBool
	kNumber
	kString
	kArray
	kObject
)

// member is one key/value pair of a JSON object, in document order.
type member struct {
	key string
	val *value
}

// value is a parsed JSON value that keeps object member order (the pattern
// compiler reports the first problem in document order, as AWS does) and the
// literal text of numbers.
type value struct {
	kind kind
	b    bool
	str  string  // kString, or the literal text of a kNumber
	num  float64 // kNumber
	nok  bool    // kNumber: num holds the value (the text fits a float64)
	arr  []*value
	obj  []member
}

// syntaxError is a JSON syntax error phrased as AWS's (Jackson's) parser phrases it.
type syntaxError struct {
	msg          string
	line, column int
}

func (e *syntaxError) Error() string { return e.msg }

type parser struct {
	src  string
	pos  int
	dups bool // keep the last of duplicate object keys (AWS does), else all
}

// parseJSON parses a complete JSON document. Duplicate keys keep their last value.
func parseJSON(src []byte) (*value, error) {
	p := &parser{src: string(src), dups: true}
	p.skipSpace()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos < len(p.src) {
		return nil, p.unexpected("expected end of input")
	}
	return v, nil
}

const maxDepth = 512

func (p *parser) skipSpace() {
	for p.pos < len(p.src) {
		switch p.src[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

// location returns the 1-based line and column of byte offset off.
func (p *parser) location(off int) (int, int) {
	line, col := 1, 1
	for i := 0; i < off && i < len(p.src); i++ {
		if p.src[i] == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return line, col
}

func (p *parser) errAt(off int, msg string) error {
	line, col := p.location(off)
	src := p.src
	if len(src) > 500 {
		src = src[:500] + fmt.Sprintf("\"[truncated %d chars]", len(p.src)-500)
	} else {
		src += "\""
	}
	return &syntaxError{msg: fmt.Sprintf("%s\n at [Source: (String)\"%s; line: %d, column: %d]",
		msg, src, line, col), line: line, column: col}
}

func (p *parser) unexpected(expecting string) error {
	if p.pos >= len(p.src) {
		return p.errAt(p.pos, "Unexpected end-of-input: "+expecting)
	}
	r, _ := utf8.DecodeRuneInString(p.src[p.pos:])
	return p.errAt(p.pos, fmt.Sprintf("Unexpected character ('%c' (code %d)): %s", r, r, expecting))
}

func (p *parser) unrecognizedToken() error {
	start := p.pos
	end := start
	for end < len(p.src) {
		c := p.src[end]
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',' || c == ':' || c == ']' || c == '}' || c == '"' || c == '[' || c == '{' {
			break
		}
		end++
	}
	if end == start {
		return p.unexpected("expected a value")
	}
	return p.errAt(end, fmt.Sprintf("Unrecognized token '%s': was expecting (JSON String, Number, Array, Object or token 'null', 'true' or 'false')", p.src[start:end]))
}

func (p *parser) value(depth int) (*value, error) {
	if depth > maxDepth {
		return nil, p.errAt(p.pos, "Maximum nesting depth exceeded")
	}
	if p.pos >= len(p.src) {
		return nil, p.unexpected("expected a value")
	}
	switch c := p.src[p.pos]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"':
		s, err := p.string()
		if err != nil {
			return nil, err
		}
		return &value{kind: kString, str: s}, nil
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case strings.HasPrefix(p.src[p.pos:], "true") && p.tokenEnds(p.pos+4):
		p.pos += 4
		return &value{kind: kBool, b: true}, nil
	case strings.HasPrefix(p.src[p.pos:], "false") && p.tokenEnds(p.pos+5):
		p.pos += 5
		return &value{kind: kBool}, nil
	case strings.HasPrefix(p.src[p.pos:], "null") && p.tokenEnds(p.pos+4):
		p.pos += 4
		return &value{kind: kNull}, nil
	case c == ']' || c == '}' || c == ',' || c == ':' || c == '\'':
		return nil, p.unexpected("expected a valid value (JSON String, Number, Array, Object or token 'null', 'true' or 'false')")
	default:
		return nil, p.unrecognizedToken()
	}
}

func (p *parser) tokenEnds(i int) bool {
	if i >= len(p.src) {
		return true
	}
	c := p.src[i]
	return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_')
}

func (p *parser) object(depth int) (*value, error) {
	p.pos++ // {
	v := &value{kind: kObject}
	p.skipSpace()
	if p.pos < len(p.src) && p.src[p.pos] == '}' {
		p.pos++
		return v, nil
	}
	for {
		p.skipSpace()
		if p.pos >= len(p.src) || p.src[p.pos] != '"' {
			return nil, p.unexpected("was expecting double-quote to start field name")
		}
		key, err := p.string()
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if p.pos >= len(p.src) || p.src[p.pos] != ':' {
			return nil, p.unexpected("was expecting a colon to separate field name and value")
		}
		p.pos++
		p.skipSpace()
		val, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		replaced := false
		if p.dups {
			for i := range v.obj {
				if v.obj[i].key == key {
					v.obj[i].val = val
					replaced = true
					break
				}
			}
		}
		if !replaced {
			v.obj = append(v.obj, member{key: key, val: val})
		}
		p.skipSpace()
		if p.pos >= len(p.src) {
			return nil, p.unexpected("expected close marker for Object")
		}
		switch p.src[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			return v, nil
		default:
			return nil, p.unexpected("was expecting comma to separate Object entries")
		}
	}
}

func (p *parser) array(depth int) (*value, error) {
	p.pos++ // [
	v := &value{kind: kArray}
	p.skipSpace()
	if p.pos < len(p.src) && p.src[p.pos] == ']' {
		p.pos++
		return v, nil
	}
	for {
		p.skipSpace()
		el, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		v.arr = append(v.arr, el)
		p.skipSpace()
		if p.pos >= len(p.src) {
			return nil, p.unexpected("expected close marker for Array")
		}
		switch p.src[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			return v, nil
		default:
			return nil, p.unexpected("was expecting comma to separate Array entries")
		}
	}
}

func (p *parser) number() (*value, error) {
	start := p.pos
	i := p.pos
	if i < len(p.src) && p.src[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(p.src) && p.src[i] >= '0' && p.src[i] <= '9' {
			i++
			n++
		}
		return n
	}
	intStart := i
	if digits() == 0 {
		p.pos = i
		return nil, p.unexpected("expected digit (0-9) to follow minus sign, for valid numeric value")
	}
	if p.src[intStart] == '0' && i-intStart > 1 {
		return nil, p.errAt(intStart, "Invalid numeric value: Leading zeroes not allowed")
	}
	if i < len(p.src) && p.src[i] == '.' {
		i++
		if digits() == 0 {
			p.pos = i
			return nil, p.unexpected("Decimal point not followed by a digit")
		}
	}
	if i < len(p.src) && (p.src[i] == 'e' || p.src[i] == 'E') {
		i++
		if i < len(p.src) && (p.src[i] == '+' || p.src[i] == '-') {
			i++
		}
		if digits() == 0 {
			p.pos = i
			return nil, p.unexpected("Exponent indicator not followed by a digit")
		}
	}
	p.pos = i
	text := p.src[start:i]
	f, err := strconv.ParseFloat(text, 64)
	// Out of float64 range: keep the text, compare it as text.
	return &value{kind: kNumber, str: text, num: f, nok: err == nil}, nil
}

func (p *parser) string() (string, error) {
	p.pos++ // opening quote
	start := p.pos
	// Fast path: no escapes.
	for i := p.pos; i < len(p.src); i++ {
		c := p.src[i]
		if c == '"' {
			p.pos = i + 1
			return p.src[start:i], nil
		}
		if c == '\\' || c < 0x20 {
			break
		}
	}
	var b strings.Builder
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		switch {
		case c == '"':
			p.pos++
			return b.String(), nil
		case c < 0x20:
			return "", p.errAt(p.pos, fmt.Sprintf("Illegal unquoted character ((CTRL-CHAR, code %d)): has to be escaped using backslash to be included in string value", c))
		case c == '\\':
			if p.pos+1 >= len(p.src) {
				p.pos++
				return "", p.unexpected("in character escape sequence")
			}
			e := p.src[p.pos+1]
			p.pos += 2
			switch e {
			case '"', '\\', '/':
				b.WriteByte(e)
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'u':
				r, ok := p.hex4()
				if !ok {
					return "", p.errAt(p.pos, "Unexpected character: expected a hex-digit for character escape sequence")
				}
				if utf16.IsSurrogate(r) && strings.HasPrefix(p.src[p.pos:], "\\u") {
					save := p.pos
					p.pos += 2
					if r2, ok := p.hex4(); ok {
						if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
							b.WriteRune(d)
							continue
						}
					}
					p.pos = save
				}
				b.WriteRune(r)
			default:
				return "", p.errAt(p.pos-1, fmt.Sprintf("Unrecognized character escape '%c' (code %d)", e, e))
			}
		default:
			b.WriteByte(c)
			p.pos++
		}
	}
	return "", p.unexpected("expected close marker for String")
}

func (p *parser) hex4() (rune, bool) {
	if p.pos+4 > len(p.src) {
		return 0, false
	}
	n, err := strconv.ParseUint(p.src[p.pos:p.pos+4], 16, 32)
	if err != nil {
		return 0, false
	}
	p.pos += 4
	return rune(n), true
}
