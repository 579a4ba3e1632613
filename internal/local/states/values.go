package states

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/keyline/keyline/internal/local/states/jsonpath"
)

// MaxPayloadBytes is the largest state input, output or result AWS accepts (256 KiB).
const MaxPayloadBytes = 256 * 1024

// decodeJSON parses JSON keeping numbers as json.Number.
func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("unexpected data after the JSON value")
	}
	if _, err := dec.Token(); err == nil {
		return nil, fmt.Errorf("unexpected data after the JSON value")
	}
	return v, nil
}

// encodeJSON renders a value as compact JSON without HTML escaping.
func encodeJSON(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return []byte("null")
	}
	return bytes.TrimRight(buf.Bytes(), "\n")
}

func encodeString(v any) string { return string(encodeJSON(v)) }

// payloadSize estimates the JSON size of v, stopping once it passes limit.
func payloadSize(v any, limit int) int {
	n := 0
	var walk func(v any, depth int)
	walk = func(v any, depth int) {
		if n > limit || depth > 10000 {
			return
		}
		switch x := v.(type) {
		case nil:
			n += 4
		case bool:
			n += 5
		case string:
			n += len(x) + 2
		case json.Number:
			n += len(x)
		case float64:
			n += 8
		case []any:
			n += 2 + len(x)
			for _, e := range x {
				walk(e, depth+1)
			}
		case map[string]any:
			n += 2 + len(x)
			for k, e := range x {
				n += len(k) + 3
				walk(e, depth+1)
			}
		default:
			n += 8
		}
	}
	walk(v, 0)
	return n
}

func tooLarge(v any) bool { return payloadSize(v, MaxPayloadBytes) > MaxPayloadBytes }

// typeName names a JSON value's type for messages.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case json.Number, float64, int:
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "unknown"
}

func isNumber(v any) bool {
	switch v.(type) {
	case json.Number, float64, int, int64:
		return true
	}
	return false
}

func toFloat(v any) (float64, bool) { return jsonpath.ToFloat(v) }

// toInt converts an integral JSON number to int64.
func toInt(v any) (int64, bool) {
	switch n := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
			return i, true
		}
		f, err := strconv.ParseFloat(string(n), 64)
		if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
			return 0, false
		}
		return int64(f), true
	case float64:
		if n != math.Trunc(n) || math.Abs(n) > 1<<53 {
			return 0, false
		}
		return int64(n), true
	case int:
		return int64(n), true
	case int64:
		return n, true
	}
	return 0, false
}

// numberValue renders a float as a JSON number, integral values without a fraction.
func numberValue(f float64) any {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil
	}
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return json.Number(strconv.FormatInt(int64(f), 10))
	}
	return json.Number(strconv.FormatFloat(f, 'g', -1, 64))
}

func intValue(i int64) any { return json.Number(strconv.FormatInt(i, 10)) }

// javaString renders a value as Java's toString would (used by States.Format).
func javaString(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return x
	case bool:
		if x {
			return "true"
		}
		return "false"
	case json.Number:
		return string(x)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = javaString(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + "=" + javaString(x[k])
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return encodeString(v)
}

// setPath returns a copy of doc with value placed at the reference path segments,
// copying only the containers along the way.
func setPath(doc any, segs []any, value any) (any, error) {
	if len(segs) == 0 {
		return value, nil
	}
	switch s := segs[0].(type) {
	case string:
		var m map[string]any
		switch d := doc.(type) {
		case map[string]any:
			m = make(map[string]any, len(d)+1)
			for k, v := range d {
				m[k] = v
			}
		case nil:
			m = map[string]any{}
		default:
			return nil, fmt.Errorf("cannot set field %q on a %s", s, typeName(doc))
		}
		child, err := setPath(m[s], segs[1:], value)
		if err != nil {
			return nil, err
		}
		m[s] = child
		return m, nil
	case int:
		a, ok := doc.([]any)
		if !ok || s < 0 || s >= len(a) {
			return nil, fmt.Errorf("cannot set index %d", s)
		}
		c := append([]any(nil), a...)
		child, err := setPath(c[s], segs[1:], value)
		if err != nil {
			return nil, err
		}
		c[s] = child
		return c, nil
	}
	return nil, fmt.Errorf("bad path segment")
}

func validUTF8(s string) bool { return utf8.ValidString(s) }
