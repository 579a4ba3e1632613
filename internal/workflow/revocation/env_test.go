package revocation_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/keyline/keyline/internal/audit"
	"github.com/keyline/keyline/internal/audit/audittest"
	"github.com/keyline/keyline/internal/clock/clocktest"
	"github.com/keyline/keyline/internal/keys"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/objects"
	"github.com/keyline/keyline/internal/testenv"
	"github.com/keyline/keyline/internal/workflow/revocation"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// sampleKey is the key ARN the sample events in events/ name.
const sampleKey = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"

// t0 is just after the sample events' times.
var t0 = time.Date(2026, 11, 27, 10, 16, 0, 0, time.UTC)

type env struct {
	t     *testing.T
	ctx   context.Context
	store *lineage.Store
	kms   *kms.Client
	keys  keys.Provider
	rec   *audittest.Recorder
	pump  *pump
	clk   *clocktest.Fake
	svc   *revocation.Service
	org   string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	ddb := testenv.DynamoDB(t)
	table := testenv.NewTable(t, ddb)
	clk := clocktest.NewFake(t0)
	store := lineage.New(ddb, table, lineage.Options{Clock: clk})
	kc, _ := testenv.KMS(t)
	kp := keys.NewKMS(kc, keys.Options{MaxAttempts: 2, BaseDelay: time.Millisecond})
	rec := &audittest.Recorder{}
	p := &pump{rec: rec}
	n, err := revocation.NewNotifier(revocation.NotifierConfig{Store: store, Emitter: p, Clock: clk, PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	p.n = n
	svc, err := revocation.New(revocation.Config{Store: store, Keys: kp, Emitter: p, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.CreateOrg(ctx, lineage.Org{ID: "org-1", Name: "Org One", Accounts: []string{testenv.KMSAccountID}}); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, ctx: ctx, store: store, kms: kc, keys: kp, rec: rec, pump: p, clk: clk, svc: svc, org: "org-1"}
}

// pump stands in for keyline's event bus and its key-notifications rule: it records every
// event and runs each Key Notification Page event through the notifier at once (pages of
// two apps, so that paging is exercised).
type pump struct {
	rec *audittest.Recorder
	n   *revocation.Notifier
}

func (p *pump) Emit(ctx context.Context, events ...audit.Event) error {
	if err := p.rec.Emit(ctx, events...); err != nil {
		return err
	}
	for _, ev := range events {
		if ev.DetailType != audit.DetailKeyNotificationPage {
			continue
		}
		page, ok := ev.Detail.(revocation.NotifyPage)
		if !ok {
			return fmt.Errorf("notification page event with detail %T", ev.Detail)
		}
		if _, err := p.n.Page(ctx, page); err != nil {
			return err
		}
	}
	return nil
}

// keyEventApps returns the "apps" of the per-key events of detail type dt.
func (e *env) keyEventApps(dt string) []int {
	var out []int
	for _, ev := range e.rec.Events() {
		if ev.DetailType == dt {
			out = append(out, ev.Detail.(map[string]any)["apps"].(int))
		}
	}
	return out
}

func (e *env) genUsable(id string, n int) bool {
	e.t.Helper()
	g, err := e.store.GetGeneration(e.ctx, id, n)
	if err != nil {
		e.t.Fatal(err)
	}
	return g.Usable()
}

func (e *env) newKey() string { return testenv.NewKMSKey(e.t, e.kms) }

// app creates a CMK app on keyARN (generation 1 with a real wrapped data key).
func (e *env) app(id, keyARN string) {
	e.t.Helper()
	wrapped, err := objects.NewGenerationKey(e.ctx, e.keys, e.org, id, 1, keyARN)
	if err != nil {
		e.t.Fatalf("data key for %s: %v", id, err)
	}
	if _, err := e.store.CreateApp(e.ctx, lineage.App{ID: id, OrgID: e.org, KeyModel: lineage.KeyModelCMK}, keyARN, wrapped, lineage.Cause{Actor: "test"}); err != nil {
		e.t.Fatalf("create app %s: %v", id, err)
	}
}

func (e *env) status(id string) lineage.AppStatus {
	e.t.Helper()
	a, err := e.store.GetApp(e.ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return a.Status
}

func (e *env) genState(id string, n int) lineage.GenerationState {
	e.t.Helper()
	g, err := e.store.GetGeneration(e.ctx, id, n)
	if err != nil {
		e.t.Fatal(err)
	}
	return g.State
}

func (e *env) wantStatus(id string, want lineage.AppStatus) {
	e.t.Helper()
	if got := e.status(id); got != want {
		e.t.Errorf("app %s is %s, want %s", id, got, want)
	}
}

func (e *env) disable(keyARN string) {
	e.t.Helper()
	if _, err := e.kms.DisableKey(e.ctx, &kms.DisableKeyInput{KeyId: aws.String(keyARN)}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) enable(keyARN string) {
	e.t.Helper()
	if _, err := e.kms.EnableKey(e.ctx, &kms.EnableKeyInput{KeyId: aws.String(keyARN)}); err != nil {
		e.t.Fatal(err)
	}
}

// sample reads events/<name> from the repository.
func sample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "events", name))
	if err != nil {
		t.Fatalf("sample event: %v", err)
	}
	return b
}

// event returns the sample event name about keyARN, with the given id and eventTime
// ("" keeps the sample's).
func event(t *testing.T, name, keyARN, id string, at time.Time) []byte {
	t.Helper()
	raw := strings.ReplaceAll(string(sample(t, name)), sampleKey, keyARN)
	var m map[string]any
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatal(err)
	}
	d := m["detail"].(map[string]any)
	if id != "" {
		d["eventID"] = id
		m["id"] = "env-" + id
	}
	if !at.IsZero() {
		d["eventTime"] = at.UTC().Format(time.RFC3339)
		m["time"] = at.UTC().Add(time.Second).Format(time.RFC3339)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (e *env) handle(raw []byte) revocation.Result {
	e.t.Helper()
	res, err := e.svc.HandleCloudTrail(e.ctx, raw)
	if err != nil {
		e.t.Fatalf("HandleCloudTrail: %v", err)
	}
	return res
}

func countAudit(t *testing.T, s *lineage.Store, appID, action string) int {
	t.Helper()
	entries, err := s.ListAudit(context.Background(), appID)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, a := range entries {
		if a.Action == action {
			n++
		}
	}
	return n
}
