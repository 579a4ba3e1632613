package infra_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/audit"
	"github.com/keyline/keyline/internal/audit/audittest"
	"github.com/keyline/keyline/internal/keys"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/local/eventpattern"
	"github.com/keyline/keyline/internal/objects/objectstest"
	"github.com/keyline/keyline/internal/workflow/revocation"
)

// envelope is an audit event as EventBridge delivers it to a rule.
func envelope(t *testing.T, ev audit.Event) []byte {
	t.Helper()
	detail, err := json.Marshal(ev.Detail)
	if err != nil {
		t.Fatal(err)
	}
	resources := ev.Resources
	if resources == nil {
		resources = []string{}
	}
	b, err := json.Marshal(map[string]any{
		"version": "0", "id": "e1", "detail-type": ev.DetailType, "source": audit.Source, "account": "000000000000",
		"time": ev.Time.UTC().Format(time.RFC3339), "region": "us-east-1", "resources": resources,
		"detail": json.RawMessage(detail),
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// revocationEvents revokes two keys through the revocation paths keyline has (a key event,
// and a KMS error met while working) with real DynamoDB Local and local-kms, and returns the
// audit events they emitted.
func revocationEvents(t *testing.T) []audit.Event {
	t.Helper()
	ctx := context.Background()
	e := objectstest.New(t)
	e.Org(t, "acme")
	k1 := e.CMKApp(t, "acme", "app-1")
	k2 := e.CMKApp(t, "acme", "app-2")
	rec := &audittest.Recorder{}
	svc, err := revocation.New(revocation.Config{Store: e.Store, Keys: e.Keys, Emitter: rec, Logger: e.Logger})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.KMS.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(k1)}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.RevokeKey(ctx, k1, "DisableKey", lineage.Cause{EventID: "ev-1", Actor: "cloudtrail"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.KMS.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(k2)}); err != nil {
		t.Fatal(err)
	}
	_, kmsErr := e.Keys.GenerateDataKey(ctx, k2, keys.EncryptionContext("acme", "app-2", 1, keys.PurposeData))
	if !errors.Is(kmsErr, keys.ErrRevoked) {
		t.Fatalf("data key under a disabled key: %v, want a revoked-class error", kmsErr)
	}
	if _, err := svc.RevokeFromKMSError(ctx, k2, kmsErr, "backup"); err != nil {
		t.Fatal(err)
	}
	// The key-event path emits one notification page per key change; the notify function
	// (triggered by it through the bus) sends the per-key event and the per-app events.
	notifier, err := revocation.NewNotifier(revocation.NotifierConfig{Store: e.Store, Emitter: rec, Logger: e.Logger})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range rec.Events() {
		if ev.DetailType != audit.DetailKeyNotificationPage {
			continue
		}
		page, err := revocation.ParseNotifyPage(envelope(t, ev))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := notifier.Drain(ctx, page); err != nil {
			t.Fatal(err)
		}
	}
	return rec.Events()
}

// TestRevocationAlarmMatchesEmittedEvents runs the events revocation really emits (the key
// event's and the notify function's) through the revocation alarm's pattern (the contract's,
// which the CDK app deploys): each revoked key is counted once, whatever its number of apps. The pattern keyline deployed before (detail type "Key Generation Revoked")
// matches none of them: the check can fail.
func TestRevocationAlarmMatchesEmittedEvents(t *testing.T) {
	events := revocationEvents(t)
	alarm, err := eventpattern.Compile(infra.RevocationAlarmPattern())
	if err != nil {
		t.Fatal(err)
	}
	broken := eventpattern.MustCompile(`{"source":["keyline"],"detail-type":["Key Generation Revoked"]}`)
	matched, brokenMatched := 0, 0
	for _, ev := range events {
		env := envelope(t, ev)
		ok, err := alarm.Match(env)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			matched++
		}
		if ok, _ := broken.Match(env); ok {
			brokenMatched++
		}
	}
	if matched != 2 {
		t.Errorf("the revocation alarm's pattern matches %d of the revocations' events %v, want one per revoked key (2)", matched, detailTypes(events))
	}
	if brokenMatched != 0 {
		t.Errorf("the old pattern matches %d events: this check could not tell it from the fixed one", brokenMatched)
	}
}

func detailTypes(events []audit.Event) []string {
	var out []string
	for _, e := range events {
		out = append(out, e.DetailType)
	}
	return out
}
