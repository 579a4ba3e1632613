package revocation_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/keyline/keyline/internal/workflow/revocation"
)

func TestParseSampleEvents(t *testing.T) {
	cases := []struct {
		file, name, errorCode, id string
		at                        string
	}{
		{"kms-disable-key.json", revocation.EventDisableKey, "", "b7d6e5f4-1a2b-4c3d-8e9f-0a1b2c3d4e01", "2026-11-27T10:15:02Z"},
		{"kms-schedule-key-deletion.json", revocation.EventScheduleKeyDeletion, "", "b7d6e5f4-1a2b-4c3d-8e9f-0a1b2c3d4e02", "2026-11-27T10:20:11Z"},
		{"kms-cancel-key-deletion.json", revocation.EventCancelKeyDeletion, "", "b7d6e5f4-1a2b-4c3d-8e9f-0a1b2c3d4e03", "2026-11-27T11:02:45Z"},
		{"kms-enable-key.json", revocation.EventEnableKey, "", "b7d6e5f4-1a2b-4c3d-8e9f-0a1b2c3d4e04", "2026-11-27T11:05:30Z"},
		{"kms-disable-key-failed.json", revocation.EventDisableKey, "AccessDenied", "b7d6e5f4-1a2b-4c3d-8e9f-0a1b2c3d4e05", "2026-11-27T10:14:40Z"},
	}
	for _, c := range cases {
		ev, err := revocation.ParseEvent(sample(t, c.file))
		if err != nil {
			t.Errorf("%s: %v", c.file, err)
			continue
		}
		at, _ := time.Parse(time.RFC3339, c.at)
		if ev.Name != c.name || ev.ErrorCode != c.errorCode || ev.ID != c.id || !ev.Time.Equal(at) || ev.KeyARN != sampleKey {
			t.Errorf("%s: parsed %+v", c.file, ev)
		}
	}
}

// ct builds a CloudTrail event as EventBridge delivers it from parts.
func ct(t *testing.T, envelope map[string]any, detail map[string]any) []byte {
	t.Helper()
	e := map[string]any{"version": "0", "id": "env-1", "detail-type": "AWS API Call via CloudTrail", "source": "aws.kms",
		"account": "111122223333", "region": "us-east-1", "time": "2026-11-27T10:00:01Z"}
	for k, v := range envelope {
		if v == nil {
			delete(e, k)
		} else {
			e[k] = v
		}
	}
	d := map[string]any{"eventID": "ev-1", "eventTime": "2026-11-27T10:00:00Z", "eventSource": "kms.amazonaws.com",
		"eventName": "DisableKey", "awsRegion": "eu-west-1", "recipientAccountId": "444455556666"}
	for k, v := range detail {
		if v == nil {
			delete(d, k)
		} else {
			d[k] = v
		}
	}
	e["detail"] = d
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestResolveKeyARN(t *testing.T) {
	const (
		arnA  = "arn:aws:kms:eu-west-1:444455556666:key/11111111-2222-3333-4444-555555555555"
		arnB  = "arn:aws:kms:eu-west-1:444455556666:key/aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
		keyID = "99999999-8888-7777-6666-555555555555"
	)
	ok := []struct {
		name     string
		envelope map[string]any
		detail   map[string]any
		want     string
	}{
		{"resources first", nil, map[string]any{
			"resources":         []any{map[string]any{"type": "AWS::KMS::Alias", "ARN": "arn:aws:kms:eu-west-1:444455556666:alias/x"}, map[string]any{"type": "AWS::KMS::Key", "ARN": arnA}},
			"responseElements":  map[string]any{"keyId": arnB},
			"requestParameters": map[string]any{"keyId": arnB}}, arnA},
		{"responseElements.keyId next", nil, map[string]any{
			"responseElements":  map[string]any{"keyId": arnB, "keyState": "PendingDeletion"},
			"requestParameters": map[string]any{"keyId": keyID}}, arnB},
		{"requestParameters ARN", nil, map[string]any{"requestParameters": map[string]any{"keyId": arnA}}, arnA},
		{"key id + awsRegion + recipientAccountId", nil, map[string]any{"requestParameters": map[string]any{"keyId": keyID}},
			"arn:aws:kms:eu-west-1:444455556666:key/" + keyID},
		{"key id + envelope region and account", nil, map[string]any{"requestParameters": map[string]any{"keyId": keyID},
			"awsRegion": nil, "recipientAccountId": nil}, "arn:aws:kms:us-east-1:111122223333:key/" + keyID},
		{"multi-region key id in China", nil, map[string]any{"requestParameters": map[string]any{"keyId": "mrk-0123456789abcdef0123456789abcdef"},
			"awsRegion": "cn-north-1"}, "arn:aws-cn:kms:cn-north-1:444455556666:key/mrk-0123456789abcdef0123456789abcdef"},
		{"responseElements not an ARN is skipped", nil, map[string]any{"responseElements": map[string]any{"keyId": keyID},
			"requestParameters": map[string]any{"keyId": arnB}}, arnB},
	}
	for _, c := range ok {
		ev, err := revocation.ParseEvent(ct(t, c.envelope, c.detail))
		if err != nil || ev.KeyARN != c.want {
			t.Errorf("%s: got %q, %v; want %q", c.name, ev.KeyARN, err, c.want)
		}
	}

	bad := []struct {
		name     string
		raw      []byte
		envelope map[string]any
		detail   map[string]any
	}{
		{name: "not JSON", raw: []byte(`{"detail": `)},
		{name: "no detail", raw: []byte(`{"id":"x","source":"aws.kms"}`)},
		{name: "alias", detail: map[string]any{"requestParameters": map[string]any{"keyId": "alias/customer-key"}}},
		{name: "alias ARN", detail: map[string]any{"requestParameters": map[string]any{"keyId": "arn:aws:kms:eu-west-1:444455556666:alias/customer-key"}}},
		{name: "no key at all", detail: map[string]any{}},
		{name: "garbage key id", detail: map[string]any{"requestParameters": map[string]any{"keyId": "../../etc"}}},
		{name: "key id without region", envelope: map[string]any{"region": nil}, detail: map[string]any{"awsRegion": nil, "requestParameters": map[string]any{"keyId": keyID}}},
		{name: "key id without account", envelope: map[string]any{"account": nil}, detail: map[string]any{"recipientAccountId": nil, "requestParameters": map[string]any{"keyId": keyID}}},
		{name: "other event source", detail: map[string]any{"eventSource": "s3.amazonaws.com", "requestParameters": map[string]any{"keyId": arnA}}},
		{name: "other source", envelope: map[string]any{"source": "aws.s3"}, detail: map[string]any{"requestParameters": map[string]any{"keyId": arnA}}},
		{name: "other event name", detail: map[string]any{"eventName": "Decrypt", "requestParameters": map[string]any{"keyId": arnA}}},
		{name: "bad time", envelope: map[string]any{"time": nil}, detail: map[string]any{"eventTime": "yesterday", "requestParameters": map[string]any{"keyId": arnA}}},
		{name: "no event id", envelope: map[string]any{"id": nil}, detail: map[string]any{"eventID": nil, "requestParameters": map[string]any{"keyId": arnA}}},
	}
	for _, c := range bad {
		raw := c.raw
		if raw == nil {
			raw = ct(t, c.envelope, c.detail)
		}
		_, err := revocation.ParseEvent(raw)
		var me *revocation.MalformedError
		if !errors.Is(err, revocation.ErrMalformedEvent) || !errors.As(err, &me) {
			t.Errorf("%s: err = %v, want a MalformedError", c.name, err)
		}
	}

	// A failed call parses even when its key cannot be resolved: it is ignored anyway.
	ev, err := revocation.ParseEvent(ct(t, nil, map[string]any{"errorCode": "NotFoundException", "requestParameters": map[string]any{"keyId": "alias/nope"}}))
	if err != nil || ev.ErrorCode != "NotFoundException" {
		t.Errorf("failed call with an alias: %+v, %v", ev, err)
	}
}

func TestParseWindow(t *testing.T) {
	for in, want := range map[string]time.Duration{"": revocation.DefaultWindow, "10d": 240 * time.Hour, "36h": 36 * time.Hour, " 1d ": 24 * time.Hour} {
		if got, err := revocation.ParseWindow(in); err != nil || got != want {
			t.Errorf("ParseWindow(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"0d", "-1h", "ten days", "0", "d"} {
		if _, err := revocation.ParseWindow(in); err == nil {
			t.Errorf("ParseWindow(%q) accepted", in)
		}
	}
}
