package eventpattern

import (
	"errors"
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	ev := `{"version":"0","id":"e1","source":"aws.kms","detail-type":"AWS API Call via CloudTrail",
	"account":"111122223333","region":"us-east-1","time":"2026-01-02T03:04:05Z","resources":[],
	"detail":{"eventName":"DisableKey","eventSource":"kms.amazonaws.com","count":5,"ratio":0.25,
	"flag":true,"nothing":null,"empty":"","ip":"10.1.2.3","ip6":"2001:db8::1","FileName":"Image.PNG",
	"path":"/users/alice/docs/report.txt","tags":["a","b","c"],"nums":[1,2,3],
	"items":[{"name":"x","size":1},{"name":"y","size":2}],"state":{"status":"running"},
	"big":1e400,"arr0":[]}}`
	cases := []struct {
		pattern string
		want    bool
	}{
		// exact values
		{`{"source":["aws.kms"]}`, true},
		{`{"source":["aws.s3"]}`, false},
		{`{"source":["aws.s3","aws.kms"]}`, true},
		{`{"detail":{"count":[5]}}`, true},
		{`{"detail":{"count":[5.0]}}`, true},
		{`{"detail":{"count":["5"]}}`, false},
		{`{"detail":{"count":[6]}}`, false},
		{`{"detail":{"flag":[true]}}`, true},
		{`{"detail":{"flag":[false]}}`, false},
		{`{"detail":{"nothing":[null]}}`, true},
		{`{"detail":{"missing":[null]}}`, false},
		{`{"detail":{"empty":[""]}}`, true},
		{`{"detail":{"big":[1e400]}}`, true},
		{`{"detail":{"arr0":[null]}}`, false},
		// prefix / suffix
		{`{"detail":{"eventName":[{"prefix":"Disable"}]}}`, true},
		{`{"detail":{"eventName":[{"prefix":"disable"}]}}`, false},
		{`{"detail":{"eventName":[{"prefix":{"equals-ignore-case":"disABLE"}}]}}`, true},
		{`{"detail":{"count":[{"prefix":"5"}]}}`, false},
		{`{"detail":{"FileName":[{"suffix":".PNG"}]}}`, true},
		{`{"detail":{"FileName":[{"suffix":".png"}]}}`, false},
		{`{"detail":{"FileName":[{"suffix":{"equals-ignore-case":".png"}}]}}`, true},
		{`{"detail":{"FileName":[{"suffix":{"equals-ignore-case":".jpg"}}]}}`, false},
		// equals-ignore-case
		{`{"detail":{"eventName":[{"equals-ignore-case":"disablekey"}]}}`, true},
		{`{"detail":{"eventName":[{"equals-ignore-case":"enablekey"}]}}`, false},
		// anything-but
		{`{"detail":{"eventName":[{"anything-but":"EnableKey"}]}}`, true},
		{`{"detail":{"eventName":[{"anything-but":"DisableKey"}]}}`, false},
		{`{"detail":{"eventName":[{"anything-but":["EnableKey","DisableKey"]}]}}`, false},
		{`{"detail":{"count":[{"anything-but":[4,6]}]}}`, true},
		{`{"detail":{"count":[{"anything-but":5}]}}`, false},
		{`{"detail":{"count":[{"anything-but":"5"}]}}`, true},
		{`{"detail":{"missing":[{"anything-but":"x"}]}}`, false},
		{`{"detail":{"nothing":[{"anything-but":"x"}]}}`, true},
		{`{"detail":{"eventName":[{"anything-but":{"prefix":"Dis"}}]}}`, false},
		{`{"detail":{"eventName":[{"anything-but":{"prefix":["En","Cr"]}}]}}`, true},
		{`{"detail":{"eventName":[{"anything-but":{"suffix":"Key"}}]}}`, false},
		{`{"detail":{"eventName":[{"anything-but":{"suffix":["Alias"]}}]}}`, true},
		{`{"detail":{"eventName":[{"anything-but":{"equals-ignore-case":"disablekey"}}]}}`, false},
		{`{"detail":{"eventName":[{"anything-but":{"equals-ignore-case":["x","y"]}}]}}`, true},
		{`{"detail":{"path":[{"anything-but":{"wildcard":"/users/*/docs/*"}}]}}`, false},
		{`{"detail":{"path":[{"anything-but":{"wildcard":["/tmp/*","*.bin"]}}]}}`, true},
		// numeric
		{`{"detail":{"count":[{"numeric":[">",4]}]}}`, true},
		{`{"detail":{"count":[{"numeric":[">",5]}]}}`, false},
		{`{"detail":{"count":[{"numeric":[">=",5]}]}}`, true},
		{`{"detail":{"count":[{"numeric":["<",5]}]}}`, false},
		{`{"detail":{"count":[{"numeric":["<=",5]}]}}`, true},
		{`{"detail":{"count":[{"numeric":["=",5]}]}}`, true},
		{`{"detail":{"count":[{"numeric":["=",5.5]}]}}`, false},
		{`{"detail":{"ratio":[{"numeric":[">",0,"<",1]}]}}`, true},
		{`{"detail":{"ratio":[{"numeric":[">",0.25,"<=",1]}]}}`, false},
		{`{"detail":{"ratio":[{"numeric":[">=",0.25,"<",0.26]}]}}`, true},
		{`{"detail":{"eventName":[{"numeric":[">",0]}]}}`, false},
		// exists
		{`{"detail":{"eventName":[{"exists":true}]}}`, true},
		{`{"detail":{"missing":[{"exists":true}]}}`, false},
		{`{"detail":{"missing":[{"exists":false}]}}`, true},
		{`{"detail":{"eventName":[{"exists":false}]}}`, false},
		{`{"detail":{"state":[{"exists":true}]}}`, false}, // only leaves exist
		{`{"detail":{"nothing":[{"exists":true}]}}`, true},
		{`{"detail":{"arr0":[{"exists":true}]}}`, false},
		// wildcard
		{`{"detail":{"path":[{"wildcard":"/users/*/docs/*.txt"}]}}`, true},
		{`{"detail":{"path":[{"wildcard":"/users/*/docs/*.pdf"}]}}`, false},
		{`{"detail":{"path":[{"wildcard":"*"}]}}`, true},
		{`{"detail":{"path":[{"wildcard":"/users/alice/docs/report.txt"}]}}`, true},
		{`{"detail":{"path":[{"wildcard":""}]}}`, false},
		{`{"detail":{"empty":[{"wildcard":""}]}}`, true},
		// cidr
		{`{"detail":{"ip":[{"cidr":"10.0.0.0/8"}]}}`, true},
		{`{"detail":{"ip":[{"cidr":"10.1.3.0/24"}]}}`, false},
		{`{"detail":{"ip6":[{"cidr":"2001:db8::/32"}]}}`, true},
		{`{"detail":{"ip6":[{"cidr":"2001:db9::/32"}]}}`, false},
		{`{"detail":{"eventName":[{"cidr":"10.0.0.0/8"}]}}`, false},
		// arrays in the event: any element
		{`{"detail":{"tags":["b"]}}`, true},
		{`{"detail":{"tags":["z"]}}`, false},
		{`{"detail":{"nums":[{"numeric":[">",2]}]}}`, true},
		{`{"detail":{"tags":[{"anything-but":["a","b"]}]}}`, true},
		// fields of one array element stay together
		{`{"detail":{"items":{"name":["x"],"size":[1]}}}`, true},
		{`{"detail":{"items":{"name":["x"],"size":[2]}}}`, false},
		{`{"detail":{"items":{"name":["y"],"size":[2]}}}`, true},
		// nested objects and dotted keys
		{`{"detail":{"state":{"status":["running"]}}}`, true},
		{`{"detail":{"state.status":["running"]}}`, true},
		{`{"detail.state.status":["stopped"]}`, false},
		// $or
		{`{"$or":[{"source":["aws.s3"]},{"detail":{"count":[5]}}]}`, true},
		{`{"$or":[{"source":["aws.s3"]},{"detail":{"count":[6]}}]}`, false},
		{`{"source":["aws.kms"],"detail":{"$or":[{"eventName":["EnableKey"]},{"eventName":["DisableKey"]}]}}`, true},
		{`{"source":["aws.s3"],"detail":{"$or":[{"eventName":["EnableKey"]},{"eventName":["DisableKey"]}]}}`, false},
		// several conditions on one field: any
		{`{"detail":{"eventName":[{"prefix":"X"},{"suffix":"Key"}]}}`, true},
		// conditions on several fields: all
		{`{"source":["aws.kms"],"detail":{"eventName":["DisableKey"],"count":[{"numeric":["<",5]}]}}`, false},
		// the DESIGN's revocation rule
		{`{"source":["aws.kms"],"detail-type":["AWS API Call via CloudTrail"],"detail":{"eventSource":["kms.amazonaws.com"],"eventName":["DisableKey","ScheduleKeyDeletion"],"errorCode":[{"exists":false}]}}`, true},
	}
	for _, c := range cases {
		got, err := MatchEvent([]byte(c.pattern), []byte(ev))
		if err != nil {
			t.Errorf("%s: %v", c.pattern, err)
			continue
		}
		if got != c.want {
			t.Errorf("%s: match = %v, want %v", c.pattern, got, c.want)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	cases := []struct{ pattern, reason string }{
		{`{"a": 1}`, `"a" must be an object or an array`},
		{`{"a": "x"}`, `"a" must be an object or an array`},
		{`{"a": []}`, `Empty arrays are not allowed`},
		{`{"a": {}}`, `Empty objects are not allowed`},
		{`{"a": [[1]]}`, `Match value must be String, number, true, false, or null`},
		{`{"a": [{"EXISTS": true}]}`, `Unrecognized match type EXISTS`},
		{`{"a": [{"exists": "yes"}]}`, `exists match pattern must be either true or false.`},
		{`{"a": [{"prefix": 1}]}`, `prefix match pattern must be a string`},
		{`{"a": [{"suffix": ["x"]}]}`, `suffix match pattern must be a string`},
		{`{"a": [{"equals-ignore-case": 1}]}`, `equals-ignore-case match pattern must be a string`},
		{`{"a": [{"wildcard": 1}]}`, `wildcard match pattern must be a string`},
		{`{"a": [{"wildcard": "a**b"}]}`, `Consecutive wildcard characters at pos 2`},
		{`{"a": [{"wildcard": "*a*b*c*d*e*f"}]}`, `Rule is too complex - try using fewer wildcard characters or fewer repeating character sequences after a wildcard character`},
		{`{"a": [{"prefix": "x", "suffix": "y"}]}`, `Only one key allowed in match expression`},
		{`{"a": [{"anything-but": null}]}`, `Value of anything-but must be an array or single string/number value.`},
		{`{"a": [{"anything-but": ["x", true]}]}`, `Inside anything but list, start|null|boolean is not supported.`},
		{`{"a": [{"anything-but": {"prefix": ""}}]}`, `Null prefix/suffix not allowed`},
		{`{"a": [{"anything-but": {"suffix": [1]}}]}`, `prefix/suffix match pattern must be a string`},
		{`{"a": [{"anything-but": {"equals-ignore-case": 1}}]}`, `Inside anything-but/equals-ignore-case list, number|start|null|boolean is not supported.`},
		{`{"a": [{"anything-but": {"exists": true}}]}`, `Unsupported anything-but pattern: exists`},
		{`{"a": [{"numeric": 5}]}`, `Value of numeric must be an array.`},
		{`{"a": [{"numeric": []}]}`, `Invalid member in numeric match: ]`},
		{`{"a": [{"numeric": ["!=", 5]}]}`, `Unrecognized numeric range operator: !=`},
		{`{"a": [{"numeric": ["=", "5"]}]}`, `Value of equals must be numeric`},
		{`{"a": [{"numeric": ["<", 5, ">", 1]}]}`, `Too many elements in numeric expression`},
		{`{"a": [{"numeric": [">", 5, ">", 1]}]}`, `Bad numeric range operator: >`},
		{`{"a": [{"numeric": [">", 5, "<"]}]}`, `Value of < must be numeric`},
		{`{"a": [{"numeric": [">", 5, "<", 1]}]}`, `Bottom must be less than top`},
		{`{"a": [{"numeric": [">", 1, "<", 5, 6]}]}`, `Too many terms in numeric range expression`},
		{`{"a": [{"cidr": 1}]}`, `prefix match pattern must be a string`},
		{`{"a": [{"cidr": "10.0.0.1"}]}`, `Malformed CIDR, one '/' required`},
		{`{"a": [{"cidr": "10.0.0.1/x"}]}`, `Malformed CIDR, mask bits must be an integer`},
		{`{"a": [{"cidr": "10.0.0/8"}]}`, `Nonstandard IP address: 10.0.0`},
		{`{"a": [{"cidr": "10.0.0.0/33"}]}`, `Malformed CIDR, mask bits must be between 0 and 32`},
	}
	for _, c := range cases {
		_, err := Compile([]byte(c.pattern))
		var ipe *InvalidPatternError
		if !errors.As(err, &ipe) {
			t.Errorf("%s: got %v, want InvalidPatternError", c.pattern, err)
			continue
		}
		if ipe.Reason != c.reason {
			t.Errorf("%s: reason %q, want %q", c.pattern, ipe.Reason, c.reason)
		}
		if !strings.HasPrefix(err.Error(), "Event pattern is not valid. Reason: ") {
			t.Errorf("%s: message %q lacks AWS's prefix", c.pattern, err.Error())
		}
	}
}

func TestSyntaxErrors(t *testing.T) {
	cases := []struct{ pattern, want string }{
		{`this is not json`, "Unrecognized token 'this': was expecting (JSON String, Number, Array, Object or token 'null', 'true' or 'false')\n at [Source: (String)\"this is not json\"; line: 1, column: 5]"},
		{`{'a': ['b']}`, "Unexpected character (''' (code 39)): was expecting double-quote to start field name\n at [Source: (String)\"{'a': ['b']}\"; line: 1, column: 2]"},
		{`[1]`, "Filter is not an object\n at [Source: (String)\"[1]\"; line: 1, column: 2]"},
		{`"s"`, "Filter is not an object\n at [Source: (String)\"\"s\"\"; line: 1, column: 4]"},
	}
	for _, c := range cases {
		_, err := Compile([]byte(c.pattern))
		var ipe *InvalidPatternError
		if !errors.As(err, &ipe) || ipe.Reason != c.want {
			t.Errorf("%s:\n got %v\nwant %s", c.pattern, err, c.want)
		}
	}
	for _, bad := range []string{``, `{`, `{"a":`, `{"a": ["x"]`, `{"a": ["x"]} x`, `{"a": ["\q"]}`} {
		if _, err := Compile([]byte(bad)); err == nil {
			t.Errorf("%q: compiled", bad)
		}
	}
}

func TestInvalidEvent(t *testing.T) {
	p := MustCompile(`{"a":["b"]}`)
	for _, ev := range []string{`"x"`, `[1]`, `{`, ``} {
		if _, err := p.Match([]byte(ev)); !errors.Is(err, ErrInvalidEvent) {
			t.Errorf("%q: err = %v, want ErrInvalidEvent", ev, err)
		}
	}
}

func TestDuplicateKeysLastWins(t *testing.T) {
	got, err := MatchEvent([]byte(`{"a":["x"],"a":["y"]}`), []byte(`{"a":"y"}`))
	if err != nil || !got {
		t.Fatalf("got %v %v", got, err)
	}
}

func TestStringEscapes(t *testing.T) {
	got, err := MatchEvent([]byte(`{"s":["a\"b\\c\/\u00e9\ud83d\ude80\n"]}`), []byte("{\"s\":\"a\\\"b\\\\c/é🚀\\n\"}"))
	if err != nil || !got {
		t.Fatalf("got %v %v", got, err)
	}
}

func TestCheckEnvelope(t *testing.T) {
	ok := `{"id":"1","account":"1","source":"s","time":"t","region":"r","detail-type":"d"}`
	if err := CheckEnvelope([]byte(ok)); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{`"x"`, `{"id":"1","account":"1","source":"s","time":"t","region":"r"}`, `{"account":"1","source":"s","time":"t","region":"r","detail-type":"d"}`} {
		if err := CheckEnvelope([]byte(bad)); !errors.Is(err, ErrInvalidEvent) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

// MatchEvent compiles pattern and matches event against it (the tests' shorthand; the
// local bus compiles each rule's pattern once).
func MatchEvent(pattern, event []byte) (bool, error) {
	p, err := Compile(pattern)
	if err != nil {
		return false, err
	}
	return p.Match(event)
}
