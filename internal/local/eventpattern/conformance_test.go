//go:build conformance

package eventpattern

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// conformanceDir finds ../shared/conformance/eventbridge-patterns: from
// $KEYLINE_CONFORMANCE_DIR, or beside the repository root.
func conformanceDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("KEYLINE_CONFORMANCE_DIR"); d != "" {
		return filepath.Join(d, "eventbridge-patterns")
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			bytes.Contains(b, []byte("module github.com/keyline/keyline")) {
			d := filepath.Join(dir, "..", "shared", "conformance", "eventbridge-patterns")
			if _, err := os.Stat(d); err != nil {
				t.Fatalf("conformance cases not found at %s (set KEYLINE_CONFORMANCE_DIR): %v", d, err)
			}
			return d
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("conformance cases not found: set KEYLINE_CONFORMANCE_DIR or run inside the keyline repository next to ../shared")
		}
		dir = parent
	}
}

// recordedErrors maps a case name to AWS's InvalidEventPatternException message.
func recordedErrors(t *testing.T, dir string) (map[string]string, map[string]string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "aws-recorded-errors.snapshot.json"))
	if err != nil {
		t.Fatal(err)
	}
	var snap map[string]struct {
		Content map[string]json.RawMessage `json:"recorded-content"`
	}
	if err := json.Unmarshal(b, &snap); err != nil {
		t.Fatal(err)
	}
	type awsErr struct {
		Error struct{ Code, Message string }
	}
	byCase := map[string]string{}
	invalidJSON := map[string]string{} // pattern text → message
	for id, rec := range snap {
		for name, raw := range rec.Content {
			var wrapped struct {
				Exc awsErr `json:"exception_message"`
			}
			if json.Unmarshal(raw, &wrapped) == nil && wrapped.Exc.Error.Code == "InvalidEventPatternException" {
				byCase[name] = wrapped.Exc.Error.Message
				continue
			}
			var direct awsErr
			if strings.Contains(id, "test_invalid_json_event_pattern") && json.Unmarshal(raw, &direct) == nil &&
				direct.Error.Code == "InvalidEventPatternException" {
				msg := direct.Error.Message
				i := strings.Index(msg, "(String)\"")
				j := strings.LastIndex(msg, "\"; line:")
				if i < 0 || j < i {
					t.Fatalf("cannot find the pattern in recorded message %q", msg)
				}
				invalidJSON[msg[i+len("(String)\""):j]] = msg
			}
		}
	}
	return byCase, invalidJSON
}

func TestConformance(t *testing.T) {
	dir := conformanceDir(t)
	byCase, invalidJSON := recordedErrors(t, dir)
	files, err := filepath.Glob(filepath.Join(dir, "*.json5"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no *.json5 cases in %s (%v)", dir, err)
	}
	passed, withMessage := 0, 0
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".json5")
		ok := t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			js, err := json5ToJSON(src)
			if err != nil {
				t.Fatalf("json5: %v", err)
			}
			var c struct {
				Event        json.RawMessage
				EventPattern json.RawMessage
			}
			if err := json.Unmarshal(js, &c); err != nil {
				t.Fatalf("case: %v", err)
			}
			p, err := Compile(c.EventPattern)
			if strings.HasSuffix(name, "_EXC") {
				var ipe *InvalidPatternError
				if !errors.As(err, &ipe) {
					t.Fatalf("pattern %s: want InvalidPatternError, got %v", c.EventPattern, err)
				}
				if want, ok := byCase[name]; ok {
					withMessage++
					if err.Error() != want {
						t.Fatalf("message\n got %q\nwant %q", err.Error(), want)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("compile %s: %v", c.EventPattern, err)
			}
			if err := CheckEnvelope(c.Event); err != nil {
				t.Fatalf("AWS accepted this event, CheckEnvelope refuses it: %v", err)
			}
			got, err := p.Match(c.Event)
			if err != nil {
				t.Fatalf("match: %v", err)
			}
			if want := !strings.HasSuffix(name, "_NEG"); got != want {
				t.Fatalf("pattern %s\nevent %s\nmatch = %v, want %v", c.EventPattern, c.Event, got, want)
			}
		})
		if ok {
			passed++
		}
	}
	t.Logf("eventbridge-patterns: %d/%d cases agree with AWS (%d with AWS's exact error text)", passed, len(files), withMessage)

	t.Run("complex_multi_key", func(t *testing.T) {
		pat, err1 := os.ReadFile(filepath.Join(dir, "complex_multi_key_event_pattern.json"))
		ev, err2 := os.ReadFile(filepath.Join(dir, "complex_multi_key_event.json"))
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		got, err := MatchEvent(pat, ev)
		if err != nil || !got {
			t.Fatalf("got %v, %v; AWS recorded Result true", got, err)
		}
	})
	t.Run("invalid_json", func(t *testing.T) {
		if len(invalidJSON) == 0 {
			t.Fatal("no recorded invalid-JSON patterns")
		}
		for pat, want := range invalidJSON {
			_, err := Compile([]byte(pat))
			if err == nil || err.Error() != want {
				t.Errorf("pattern %s:\n got %v\nwant %s", pat, err, want)
			}
		}
	})
}

// json5ToJSON turns the JSON5 used by the conformance files into JSON: it drops
// comments and trailing commas, quotes bare keys and converts single-quoted strings.
func json5ToJSON(src []byte) ([]byte, error) {
	var out bytes.Buffer
	s := string(src)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\'':
			quote := c
			out.WriteByte('"')
			for i++; i < len(s) && s[i] != quote; i++ {
				switch {
				case s[i] == '\\' && i+1 < len(s):
					if s[i+1] == '\'' {
						out.WriteByte('\'')
					} else {
						out.WriteByte('\\')
						out.WriteByte(s[i+1])
					}
					i++
				case s[i] == '"' && quote == '\'':
					out.WriteString(`\"`)
				default:
					out.WriteByte(s[i])
				}
			}
			if i >= len(s) {
				return nil, errors.New("unterminated string")
			}
			out.WriteByte('"')
		case strings.HasPrefix(s[i:], "//"):
			for i < len(s) && s[i] != '\n' {
				i++
			}
			out.WriteByte('\n')
		case strings.HasPrefix(s[i:], "/*"):
			end := strings.Index(s[i+2:], "*/")
			if end < 0 {
				return nil, errors.New("unterminated comment")
			}
			i += end + 3
		case c == ',':
			// Drop the comma when only space and comments precede a closing bracket.
			j := i + 1
			for j < len(s) {
				if s[j] == ' ' || s[j] == '\t' || s[j] == '\n' || s[j] == '\r' {
					j++
				} else if strings.HasPrefix(s[j:], "//") {
					for j < len(s) && s[j] != '\n' {
						j++
					}
				} else if strings.HasPrefix(s[j:], "/*") {
					end := strings.Index(s[j+2:], "*/")
					if end < 0 {
						break
					}
					j += end + 4
				} else {
					break
				}
			}
			if j < len(s) && (s[j] == '}' || s[j] == ']') {
				continue
			}
			out.WriteByte(c)
		case c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			j := i
			for j < len(s) && (s[j] == '_' || s[j] == '$' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= '0' && s[j] <= '9') {
				j++
			}
			word := s[i:j]
			k := j
			for k < len(s) && (s[k] == ' ' || s[k] == '\t') {
				k++
			}
			if k < len(s) && s[k] == ':' && word != "true" && word != "false" && word != "null" {
				out.WriteString(`"` + word + `"`)
			} else {
				out.WriteString(word)
			}
			i = j - 1
		default:
			out.WriteByte(c)
		}
	}
	return out.Bytes(), nil
}
