package reencrypt_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/keyline/keyline/internal/audit"
	"github.com/keyline/keyline/internal/audit/audittest"
	"github.com/keyline/keyline/internal/clock/clocktest"
	"github.com/keyline/keyline/internal/keys"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/objects"
	"github.com/keyline/keyline/internal/testenv"
	"github.com/keyline/keyline/internal/workflow/reencrypt"
	"github.com/keyline/keyline/internal/workflow/revocation"
	"github.com/keyline/keyline/internal/workflow/wferr"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const bucket = "data"

type env struct {
	t        *testing.T
	ctx      context.Context
	ddb      *dynamodb.Client
	table    string
	store    *lineage.Store
	kms      *kms.Client
	keys     keys.Provider
	s3       *testenv.S3Env
	src      *objects.S3Source
	rec      *audittest.Recorder
	clk      *clocktest.Fake
	rev      *revocation.Service
	svc      *reencrypt.Service
	provider string
	k1, k2   string
	// data is every object's plaintext by "<scope>/<path>".
	data map[string]string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, ctx: context.Background(), rec: &audittest.Recorder{}, data: map[string]string{}}
	e.clk = clocktest.NewFake(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC))
	e.ddb = testenv.DynamoDB(t)
	e.table = testenv.NewTable(t, e.ddb)
	e.store = lineage.New(e.ddb, e.table, lineage.Options{Clock: e.clk})
	e.kms, _ = testenv.KMS(t)
	e.keys = keys.NewKMS(e.kms, keys.Options{MaxAttempts: 2, BaseDelay: time.Millisecond})
	e.s3 = testenv.S3(t, bucket)
	e.provider, e.k1, e.k2 = testenv.NewKMSKey(t, e.kms), testenv.NewKMSKey(t, e.kms), testenv.NewKMSKey(t, e.kms)
	e.src = e.newSource()
	var err error
	e.rev, err = revocation.New(revocation.Config{Store: e.store, Keys: e.keys, Emitter: e.rec, Clock: e.clk})
	if err != nil {
		t.Fatal(err)
	}
	e.svc, err = reencrypt.New(reencrypt.Config{Store: e.store, Keys: e.keys, Objects: e.src, Revoker: e.rev, Emitter: e.rec,
		ProviderKeyARN: e.provider, Concurrency: 3, Clock: e.clk})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.CreateOrg(e.ctx, lineage.Org{ID: "org-1", Name: "Org", Accounts: []string{testenv.KMSAccountID}}); err != nil {
		t.Fatal(err)
	}
	return e
}

// newSource returns a data source with an empty data-key cache.
func (e *env) newSource() *objects.S3Source {
	e.t.Helper()
	src, err := objects.NewS3(objects.Config{S3: e.s3.Client, Bucket: bucket, Lineage: e.store,
		Keys: e.keys, ProviderKeyARN: e.provider, Clock: e.clk})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(src.Close)
	return src
}

// app creates a CMK app on k1 with cmk and managed objects of various sizes.
func (e *env) app(id string, model lineage.KeyModel) {
	e.t.Helper()
	key := e.k1
	if model == lineage.KeyModelManaged {
		key = e.provider
	}
	wrapped, err := objects.NewGenerationKey(e.ctx, e.keys, "org-1", id, 1, key)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.store.CreateApp(e.ctx, lineage.App{ID: id, OrgID: "org-1", KeyModel: model}, key, wrapped, lineage.Cause{Actor: "test"}); err != nil {
		e.t.Fatal(err)
	}
	scopes := []objects.Scope{objects.ScopeManaged}
	if model == lineage.KeyModelCMK {
		scopes = append(scopes, objects.ScopeCMK)
	}
	for _, sc := range scopes {
		n := 3
		if sc == objects.ScopeCMK {
			n = 8
		}
		for i := range n {
			path := fmt.Sprintf("dir%d/obj-%02d.bin", i%2, i)
			body := strings.Repeat(fmt.Sprintf("%s %s %s %d|", id, sc, path, i), 1+i*700)
			if _, err := e.src.Put(e.ctx, id, sc, path, strings.NewReader(body)); err != nil {
				e.t.Fatalf("put %s: %v", path, err)
			}
			e.data[id+"/"+string(sc)+"/"+path] = body
		}
	}
}

// readAll reads every object of the app back and compares it with what was written; it
// returns the generation of each CMK-scope object by bucket key.
func (e *env) readAll(src *objects.S3Source, id string) map[string]int {
	e.t.Helper()
	gens := map[string]int{}
	for k, want := range e.data {
		app, rest, _ := strings.Cut(k, "/")
		if app != id {
			continue
		}
		scope, path, _ := strings.Cut(rest, "/")
		var buf bytes.Buffer
		info, err := src.Get(e.ctx, id, objects.Scope(scope), path, &buf)
		if err != nil {
			e.t.Fatalf("read %s: %v", k, err)
		}
		if buf.String() != want {
			e.t.Fatalf("read %s: %d bytes differ from the %d written", k, buf.Len(), len(want))
		}
		if scope == string(objects.ScopeCMK) {
			gens["apps/"+k] = info.Generation
		}
	}
	return gens
}

// raw returns the stored bytes of every object under prefix.
func (e *env) raw(prefix string) map[string][]byte {
	e.t.Helper()
	out := map[string][]byte{}
	for _, k := range e.list(prefix) {
		o, err := e.s3.Client.GetObject(e.ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(k.Key)})
		if err != nil {
			e.t.Fatal(err)
		}
		var b bytes.Buffer
		_, _ = b.ReadFrom(o.Body)
		o.Body.Close()
		out[k.Key] = b.Bytes()
	}
	return out
}

// list is the Map's ItemReader: s3:listObjectsV2 over prefix.
func (e *env) list(prefix string) []reencrypt.Item {
	e.t.Helper()
	var items []reencrypt.Item
	p := s3.NewListObjectsV2Paginator(e.s3.Client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix), MaxKeys: aws.Int32(3)})
	for p.HasMorePages() {
		page, err := p.NextPage(e.ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		for _, o := range page.Contents {
			items = append(items, reencrypt.Item{Key: aws.ToString(o.Key), Size: aws.ToInt64(o.Size)})
		}
	}
	sort.Slice(items, func(i, j int) bool { return items[i].Key < items[j].Key })
	return items
}

// batches is the Map's ItemBatcher.
func batches(st reencrypt.State, items []reencrypt.Item, size int) []reencrypt.Batch {
	var out []reencrypt.Batch
	for i := 0; i < len(items); i += size {
		out = append(out, reencrypt.Batch{
			BatchInput: reencrypt.BatchInput{AppID: st.AppID, KeyARN: st.KeyARN, FromGeneration: st.FromGeneration, ToGeneration: st.ToGeneration, RequestID: st.RequestID},
			Items:      items[i:min(i+size, len(items))],
		})
	}
	return out
}

func (e *env) begin(id, key string) reencrypt.State {
	e.t.Helper()
	st, err := e.svc.Validate(e.ctx, reencrypt.Request{AppID: id, KeyARN: key, RequestedBy: "alice@example.com", RequestID: "req-" + id})
	if err != nil {
		e.t.Fatalf("validate: %v", err)
	}
	st.ExecutionArn = "arn:aws:states:us-east-1:111122223333:execution:reencrypt:" + id
	st, err = e.svc.Begin(e.ctx, st)
	if err != nil {
		e.t.Fatalf("begin: %v", err)
	}
	return st
}

func (e *env) app1(id string) lineage.App {
	e.t.Helper()
	a, err := e.store.GetApp(e.ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

// genState is the generation's state as the tests read it: its stored state, or REVOKED
// for an ACTIVE or PENDING generation whose key is revoked (derived from the key item).
func (e *env) genState(id string, n int) lineage.GenerationState {
	e.t.Helper()
	g, err := e.store.GetGeneration(e.ctx, id, n)
	if err != nil {
		e.t.Fatal(err)
	}
	if g.KeyRevoked && g.State != lineage.GenRetired {
		return lineage.GenRevoked
	}
	return g.State
}

func (e *env) setKey(arn string, enabled bool) {
	e.t.Helper()
	var err error
	if enabled {
		_, err = e.kms.EnableKey(e.ctx, &kms.EnableKeyInput{KeyId: aws.String(arn)})
	} else {
		_, err = e.kms.DisableKey(e.ctx, &kms.DisableKeyInput{KeyId: aws.String(arn)})
	}
	if err != nil {
		e.t.Fatal(err)
	}
}

func TestReencryptRoundTrip(t *testing.T) {
	e := newEnv(t)
	e.app("app1", lineage.KeyModelCMK)
	e.app("other", lineage.KeyModelCMK)
	managedBefore := e.raw("apps/app1/managed/")
	otherBefore := e.raw("apps/other/")
	if len(managedBefore) != 3 {
		t.Fatalf("%d managed objects", len(managedBefore))
	}
	for _, g := range e.readAll(e.src, "app1") {
		if g != 1 {
			t.Fatalf("object at generation %d before", g)
		}
	}

	st := e.begin("app1", e.k2)
	if st.FromGeneration != 1 || st.ToGeneration != 2 || st.OldKeyARN != e.k1 || st.Prefix != "apps/app1/cmk/" {
		t.Fatalf("state %+v", st)
	}
	if a := e.app1("app1"); a.Status != lineage.AppReencrypting || a.PendingGeneration != 2 {
		t.Fatalf("app %+v", a)
	}
	// Begin is idempotent (a retried step).
	again, err := e.svc.Begin(e.ctx, reencrypt.State{Request: st.Request, OldKeyARN: st.OldKeyARN, FromGeneration: 1, Prefix: st.Prefix})
	if err != nil || again.ToGeneration != 2 {
		t.Fatalf("begin again: %+v, %v", again, err)
	}

	items := e.list(st.Prefix)
	if len(items) != 8 {
		t.Fatalf("listed %d CMK-scope objects, want 8", len(items))
	}
	bs := batches(st, items, 3)
	res, err := e.svc.Batch(e.ctx, bs[0])
	if err != nil || res.Objects != 3 {
		t.Fatalf("batch 0: %+v, %v", res, err)
	}
	// B7: midway, every object reads, by the generation in its header.
	gens := e.readAll(e.src, "app1")
	moved := 0
	for _, it := range items {
		if gens[it.Key] == 2 {
			moved++
		}
	}
	if moved != 3 {
		t.Fatalf("%d objects at generation 2 midway, want 3 (%v)", moved, gens)
	}
	// A fresh reader (no cached keys) reads them too.
	e.readAll(e.newSource(), "app1")

	firstRaw := e.raw(bs[0].Items[0].Key)
	for _, b := range bs[1:] {
		if _, err := e.svc.Batch(e.ctx, b); err != nil {
			t.Fatalf("batch: %v", err)
		}
	}
	// A retried batch changes nothing.
	if res, err := e.svc.Batch(e.ctx, bs[0]); err != nil || res.Objects != 3 {
		t.Fatalf("batch 0 again: %+v, %v", res, err)
	}
	if !bytes.Equal(firstRaw[bs[0].Items[0].Key], e.raw(bs[0].Items[0].Key)[bs[0].Items[0].Key]) {
		t.Error("a retried batch rewrote an object already at the new generation")
	}

	out, err := e.svc.Commit(e.ctx, st)
	if err != nil || out.Status != lineage.AppActive || out.ActiveGeneration != 2 || out.RetiredGeneration != 1 {
		t.Fatalf("commit: %+v, %v", out, err)
	}
	if _, err := e.svc.Commit(e.ctx, st); err != nil {
		t.Fatalf("commit again: %v", err)
	}
	if e.genState("app1", 1) != lineage.GenRetired || e.genState("app1", 2) != lineage.GenActive {
		t.Fatalf("generations: 1 %s, 2 %s", e.genState("app1", 1), e.genState("app1", 2))
	}
	if a := e.app1("app1"); a.Status != lineage.AppActive || a.ActiveGeneration != 2 || a.PendingGeneration != 0 {
		t.Fatalf("app %+v", a)
	}
	for k, g := range e.readAll(e.src, "app1") {
		if g != 2 {
			t.Errorf("%s at generation %d after commit", k, g)
		}
	}
	// R4: managed scope untouched, byte for byte; another app untouched.
	for k, b := range e.raw("apps/app1/managed/") {
		if !bytes.Equal(b, managedBefore[k]) {
			t.Errorf("managed-scope object %s changed", k)
		}
	}
	for k, b := range e.raw("apps/other/") {
		if !bytes.Equal(b, otherBefore[k]) {
			t.Errorf("object %s of another app changed", k)
		}
	}
	// Nothing depends on the old key any more: with k1 disabled, a fresh reader reads all.
	e.setKey(e.k1, false)
	e.readAll(e.newSource(), "app1")
	e.setKey(e.k1, true)

	if e.rec.Count(audit.DetailReencryptBegun) != 1 || e.rec.Count(audit.DetailReencryptCommitted) != 1 {
		t.Errorf("events %v", e.rec.Events())
	}
	audits, _ := e.store.ListAudit(e.ctx, "app1")
	var committed *lineage.AuditEntry
	for i := range audits {
		if audits[i].Action == lineage.ActionReencryptCommitted {
			committed = &audits[i]
		}
	}
	if committed == nil || committed.Cause.RequestID != "req-app1" || committed.Cause.Actor != "alice@example.com" || !strings.Contains(committed.Cause.ExecutionArn, "execution:reencrypt:app1") {
		t.Errorf("commit audit entry %+v", committed)
	}
}

func TestValidateRefuses(t *testing.T) {
	e := newEnv(t)
	e.app("cmk", lineage.KeyModelCMK)
	e.app("managed", lineage.KeyModelManaged)
	disabled := testenv.NewKMSKey(t, e.kms)
	e.setKey(disabled, false)
	cases := []struct {
		name string
		req  reencrypt.Request
		code string // Refused code, or "" for another error type
		want error
	}{
		{"same key", reencrypt.Request{AppID: "cmk", KeyARN: e.k1}, "unprocessable", nil},
		{"provider key", reencrypt.Request{AppID: "cmk", KeyARN: e.provider}, "unprocessable", nil},
		{"alias", reencrypt.Request{AppID: "cmk", KeyARN: "arn:aws:kms:us-east-1:111122223333:alias/customer"}, "unprocessable", nil},
		{"managed app", reencrypt.Request{AppID: "managed", KeyARN: e.k2}, "unprocessable", nil},
		{"disabled key", reencrypt.Request{AppID: "cmk", KeyARN: disabled}, "unprocessable", nil},
		{"unknown key", reencrypt.Request{AppID: "cmk", KeyARN: "arn:aws:kms:us-east-1:111122223333:key/00000000-0000-0000-0000-000000000000"}, "unprocessable", nil},
		{"unknown app", reencrypt.Request{AppID: "nope", KeyARN: e.k2}, "", &wferr.NotFound{}},
		{"no key", reencrypt.Request{AppID: "cmk"}, "", &wferr.Invalid{}},
		{"key outside the org's accounts", reencrypt.Request{AppID: "cmk", KeyARN: "arn:aws:kms:us-east-1:444455556666:key/00000000-0000-0000-0000-000000000000"}, "unprocessable", nil},
	}
	for _, c := range cases {
		_, err := e.svc.Validate(e.ctx, c.req)
		var rf *wferr.Refused
		switch {
		case c.code != "":
			if !errors.As(err, &rf) || rf.Code != c.code {
				t.Errorf("%s: err = %T %v, want Refused %s", c.name, err, err, c.code)
			}
		default:
			if fmt.Sprintf("%T", err) != fmt.Sprintf("%T", c.want) {
				t.Errorf("%s: err = %T %v, want %T", c.name, err, err, c.want)
			}
		}
	}
	// B10: a key outside the org's accounts, a disabled and an unknown key all get the one
	// generic answer, with nothing of KMS's error in it.
	for _, k := range []string{disabled, "arn:aws:kms:us-east-1:111122223333:key/00000000-0000-0000-0000-000000000000",
		"arn:aws:kms:us-east-1:444455556666:key/00000000-0000-0000-0000-000000000000"} {
		_, err := e.svc.Validate(e.ctx, reencrypt.Request{AppID: "cmk", KeyARN: k})
		var rf *wferr.Refused
		if !errors.As(err, &rf) || rf.Msg != lineage.KeyRefusedMessage {
			t.Errorf("key %s: %v, want the generic refusal", k, err)
		}
	}
	// A running re-encryption refuses a second one (409).
	e.begin("cmk", e.k2)
	_, err := e.svc.Validate(e.ctx, reencrypt.Request{AppID: "cmk", KeyARN: testenv.NewKMSKey(t, e.kms)})
	var rf *wferr.Refused
	if !errors.As(err, &rf) || rf.Code != "conflict" {
		t.Errorf("second re-encryption: %v", err)
	}
	if a := e.app1("managed"); a.Status != lineage.AppActive || a.LatestGeneration != 1 {
		t.Errorf("refusals changed an app: %+v", a)
	}
}

func TestBeginWaitsForBackupLease(t *testing.T) {
	e := newEnv(t)
	e.app("app1", lineage.KeyModelCMK)
	if _, err := e.store.AcquireBackupLease(e.ctx, "app1", "backup-1", 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	st, err := e.svc.Validate(e.ctx, reencrypt.Request{AppID: "app1", KeyARN: e.k2, RequestedBy: "bob", RequestID: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Begin(e.ctx, st)
	var lh *wferr.LeaseHeld
	if !errors.As(err, &lh) {
		t.Fatalf("begin while leased: %T %v, want *wferr.LeaseHeld", err, err)
	}
	if a := e.app1("app1"); a.Status != lineage.AppActive || a.PendingGeneration != 0 {
		t.Fatalf("app changed: %+v", a)
	}
	// A crashed backup never blocks: the lease expires.
	e.clk.Advance(11 * time.Minute)
	st, err = e.svc.Begin(e.ctx, st)
	if err != nil || st.ToGeneration != 2 {
		t.Fatalf("begin after the lease expired: %+v, %v", st, err)
	}
	// And no backup lease is granted while re-encrypting (R5).
	if _, err := e.store.AcquireBackupLease(e.ctx, "app1", "backup-2", time.Minute); !errors.Is(err, lineage.ErrReencrypting) {
		t.Errorf("lease during re-encryption: %v", err)
	}
}

func TestOldKeyRevokedDuringReencryption(t *testing.T) {
	e := newEnv(t)
	e.app("app1", lineage.KeyModelCMK)
	st := e.begin("app1", e.k2)
	bs := batches(st, e.list(st.Prefix), 3)
	if _, err := e.svc.Batch(e.ctx, bs[0]); err != nil {
		t.Fatal(err)
	}
	// The customer disables the OLD key midway (B8).
	e.setKey(e.k1, false)
	res, err := e.rev.RevokeKey(e.ctx, e.k1, "DisableKey", lineage.Cause{EventID: "ev-old", Actor: "cloudtrail"})
	if err != nil || !res.Changed || res.Count(lineage.EffectPendingRevoked) != 0 {
		t.Fatalf("revoke old key: %+v, %v", res, err)
	}
	var kr *wferr.KeyRevoked
	if _, err := e.svc.Batch(e.ctx, bs[1]); !errors.As(err, &kr) {
		t.Fatalf("batch after the old key was revoked: %T %v", err, err)
	}
	if _, err := e.svc.Commit(e.ctx, st); !errors.As(err, &kr) {
		t.Fatalf("commit: %T %v, want KeyRevoked", err, err)
	}
	st.Error = &reencrypt.StepError{Error: "KeyRevoked", Cause: "old key revoked"}
	out, err := e.svc.Abort(e.ctx, st)
	if err != nil || out.Status != lineage.AppDeactivated {
		t.Fatalf("abort: %+v, %v", out, err)
	}
	if _, err := e.svc.Abort(e.ctx, st); err != nil {
		t.Fatalf("abort again: %v", err)
	}
	a := e.app1("app1")
	if a.Status != lineage.AppDeactivated || a.ActiveGeneration != 1 || a.PendingGeneration != 0 {
		t.Fatalf("app %+v", a)
	}
	if e.genState("app1", 1) != lineage.GenRevoked || e.genState("app1", 2) != lineage.GenRetired {
		t.Fatalf("generations 1 %s, 2 %s", e.genState("app1", 1), e.genState("app1", 2))
	}
	// The key comes back: the app is reactivated on generation 1; the retired generation 2
	// stays retired, and objects already moved to it still read (by their header).
	e.setKey(e.k1, true)
	rr, err := e.rev.HandleEvent(e.ctx, revocation.KeyEvent{ID: "ev-en", Name: revocation.EventEnableKey, Time: e.clk.Now().Add(time.Second), KeyARN: e.k1,
		Source: "aws.kms", EnvelopeAccount: strings.Split(e.k1, ":")[4], RecipientAccount: strings.Split(e.k1, ":")[4]})
	if err != nil || !rr.Changed || !rr.Key.Usable() {
		t.Fatalf("reactivate: %+v, %v", rr, err)
	}
	if e.genState("app1", 1) != lineage.GenActive || e.genState("app1", 2) != lineage.GenRetired {
		t.Fatalf("after reactivation: generations 1 %s, 2 %s", e.genState("app1", 1), e.genState("app1", 2))
	}
	e.readAll(e.newSource(), "app1")
	if e.rec.Count(audit.DetailReencryptAborted) != 1 {
		t.Errorf("aborted events: %d", e.rec.Count(audit.DetailReencryptAborted))
	}
}

func TestNewKeyRevokedDuringReencryption(t *testing.T) {
	e := newEnv(t)
	e.app("app1", lineage.KeyModelCMK)
	st := e.begin("app1", e.k2)
	bs := batches(st, e.list(st.Prefix), 3)
	if _, err := e.svc.Batch(e.ctx, bs[0]); err != nil {
		t.Fatal(err)
	}
	e.setKey(e.k2, false)
	res, err := e.rev.RevokeKey(e.ctx, e.k2, "DisableKey", lineage.Cause{EventID: "ev-new", Actor: "cloudtrail"})
	if err != nil || res.Count(lineage.EffectPendingRevoked) != 1 || res.Count(lineage.EffectDeactivated) != 0 {
		t.Fatalf("revoke new key: %+v, %v", res, err)
	}
	var kr *wferr.KeyRevoked
	if _, err := e.svc.Batch(e.ctx, bs[1]); !errors.As(err, &kr) {
		t.Fatalf("batch after the new key was revoked: %T %v", err, err)
	}
	if _, err := e.svc.Commit(e.ctx, st); !errors.As(err, &kr) {
		t.Fatalf("commit: %T %v, want KeyRevoked", err, err)
	}
	out, err := e.svc.Abort(e.ctx, st)
	if err != nil || out.Status != lineage.AppActive || out.ActiveGeneration != 1 {
		t.Fatalf("abort: %+v, %v", out, err)
	}
	// The aborted generation is retired for good, whatever its key does next (K7).
	if e.genState("app1", 1) != lineage.GenActive || e.genState("app1", 2) != lineage.GenRetired {
		t.Fatalf("generations 1 %s, 2 %s", e.genState("app1", 1), e.genState("app1", 2))
	}
	// The old generation stays active: new writes and the unmoved objects work.
	if _, err := e.src.Put(e.ctx, "app1", objects.ScopeCMK, "after-abort.txt", strings.NewReader("still writable")); err != nil {
		t.Fatalf("write after abort: %v", err)
	}
	for _, it := range bs[1].Items {
		_, path, _ := strings.Cut(strings.TrimPrefix(it.Key, "apps/app1/"), "/")
		var buf bytes.Buffer
		if _, err := e.src.Get(e.ctx, "app1", objects.ScopeCMK, path, &buf); err != nil {
			t.Fatalf("read unmoved %s: %v", it.Key, err)
		}
	}
}

func TestBatchKMSErrorFeedsRevocation(t *testing.T) {
	e := newEnv(t)
	e.app("app1", lineage.KeyModelCMK)
	st := e.begin("app1", e.k2)
	// The new key is disabled and no CloudTrail event arrives (best effort, B2).
	e.setKey(e.k2, false)
	svc, err := reencrypt.New(reencrypt.Config{Store: e.store, Keys: e.keys, Objects: e.newSource(), Revoker: e.rev, Emitter: e.rec, ProviderKeyARN: e.provider})
	if err != nil {
		t.Fatal(err)
	}
	_, err = svc.Batch(e.ctx, batches(st, e.list(st.Prefix), 3)[0])
	var kr *wferr.KeyRevoked
	if !errors.As(err, &kr) {
		t.Fatalf("batch on a disabled new key: %T %v", err, err)
	}
	if e.genState("app1", 2) != lineage.GenRevoked {
		t.Fatalf("pending generation is %s, want REVOKED (fed to the revocation path)", e.genState("app1", 2))
	}
	if out, err := svc.Abort(e.ctx, st); err != nil || out.Status != lineage.AppActive {
		t.Fatalf("abort: %+v, %v", out, err)
	}
}

func TestAbortBeforeBeginChangesNothing(t *testing.T) {
	e := newEnv(t)
	e.app("app1", lineage.KeyModelCMK)
	st, err := e.svc.Validate(e.ctx, reencrypt.Request{AppID: "app1", KeyARN: e.k2})
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.svc.Abort(e.ctx, st)
	if err != nil || out.Status != lineage.AppActive || out.RetiredGeneration != 0 {
		t.Fatalf("abort: %+v, %v", out, err)
	}
	// A Begin that committed but whose reply was lost: Abort finds its pending generation.
	if _, err := e.svc.Begin(e.ctx, st); err != nil {
		t.Fatal(err)
	}
	out, err = e.svc.Abort(e.ctx, st) // st.ToGeneration is still 0
	if err != nil || out.Status != lineage.AppActive || out.RetiredGeneration != 2 {
		t.Fatalf("abort of a lost begin: %+v, %v", out, err)
	}
	if e.genState("app1", 2) != lineage.GenRetired {
		t.Errorf("generation 2 is %s", e.genState("app1", 2))
	}
}

func TestBatchRefusesManagedScope(t *testing.T) {
	e := newEnv(t)
	e.app("app1", lineage.KeyModelCMK)
	st := e.begin("app1", e.k2)
	managed := e.list("apps/app1/managed/")
	_, err := e.svc.Batch(e.ctx, batches(st, managed, 3)[0])
	var inv *wferr.Invalid
	if !errors.As(err, &inv) {
		t.Fatalf("managed-scope batch: %T %v", err, err)
	}
}
