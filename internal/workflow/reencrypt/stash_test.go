package reencrypt_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/keyline/keyline/internal/audit"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/objects"
	"github.com/keyline/keyline/internal/sealing"
	"github.com/keyline/keyline/internal/workflow/reencrypt"
	"github.com/keyline/keyline/internal/workflow/wferr"
)

const stashRoot = "reencrypt-stash/"

// headers returns the generation and key ARN in the sealed header of every object under
// prefix, read from the raw bytes at rest (no key involved).
func (e *env) headers(prefix string) map[string]*sealing.Header {
	e.t.Helper()
	out := map[string]*sealing.Header{}
	for k, b := range e.raw(prefix) {
		h, err := sealing.ReadHeader(bytes.NewReader(b))
		if err != nil {
			e.t.Fatalf("object %s: %v", k, err)
		}
		out[k] = h
	}
	return out
}

// service returns a re-encryption service on a fresh data source (no cached data keys), as a
// new Lambda instance would have.
func (e *env) service() *reencrypt.Service {
	e.t.Helper()
	svc, err := reencrypt.New(reencrypt.Config{Store: e.store, Keys: e.keys, Objects: e.newSource(), Revoker: e.rev, Emitter: e.rec,
		ProviderKeyARN: e.provider, Concurrency: 3, Clock: e.clk})
	if err != nil {
		e.t.Fatal(err)
	}
	return svc
}

// B8: the new key is revoked after some objects moved; the abort puts every moved object
// back under generation 1 at rest, from the stash (no KMS call under the revoked key), and
// a second abort changes nothing.
func TestAbortAfterNewKeyRevokedRestoresMovedObjects(t *testing.T) {
	e := newEnv(t)
	e.app("app1", lineage.KeyModelCMK)
	before := e.raw("apps/app1/")
	st := e.begin("app1", e.k2)
	bs := batches(st, e.list(st.Prefix), 3)
	for _, b := range bs[:2] {
		if _, err := e.svc.Batch(e.ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	moved := 0
	for k, h := range e.headers(st.Prefix) {
		if h.Generation == 2 {
			moved++
			// The stash holds the bytes the object had before it moved.
			sk := stashRoot + "app1/2/cmk/" + strings.TrimPrefix(k, st.Prefix)
			if got := e.raw(sk)[sk]; !bytes.Equal(got, before[k]) {
				t.Fatalf("stash copy of %s differs from the object before it moved", k)
			}
		}
	}
	if moved != 6 {
		t.Fatalf("%d objects moved, want 6", moved)
	}
	e.setKey(e.k2, false)
	if _, err := e.rev.RevokeKey(e.ctx, e.k2, "DisableKey", lineage.Cause{EventID: "ev-new", Actor: "cloudtrail"}); err != nil {
		t.Fatal(err)
	}
	st.Error = &reencrypt.StepError{Error: "KeyRevoked", Cause: "new key revoked"}
	svc := e.service() // no cached data key of generation 2
	out, err := svc.Abort(e.ctx, st)
	if err != nil || out.Status != lineage.AppActive || out.ActiveGeneration != 1 || out.Rollback == nil {
		t.Fatalf("abort: %+v, %v", out, err)
	}
	if out.Rollback.Restored != 6 || out.Rollback.Resealed != 0 || out.Rollback.StrandedCount != 0 || out.Rollback.Checked != 8 || out.StashDropped != 6 {
		t.Fatalf("rollback %+v, stash dropped %d", *out.Rollback, out.StashDropped)
	}
	// At rest, every CMK-scope object is under generation 1 and the old key, byte for byte
	// what it was before the re-encryption; the managed scope was never touched.
	for k, h := range e.headers(st.Prefix) {
		if h.Generation != 1 || h.KeyARN != e.k1 {
			t.Errorf("%s under generation %d (%s) after the abort", k, h.Generation, h.KeyARN)
		}
	}
	after := e.raw("apps/app1/")
	for k, b := range before {
		if !bytes.Equal(after[k], b) {
			t.Errorf("%s differs from before the re-encryption", k)
		}
	}
	if len(after) != len(before) {
		t.Errorf("%d objects after, %d before", len(after), len(before))
	}
	if left := e.list(stashRoot); len(left) != 0 {
		t.Errorf("stash left after the abort: %v", left)
	}
	// A reader with no cached key reads everything, with the new key still disabled.
	e.readAll(e.newSource(), "app1")

	// Abort again (Step Functions delivers at least once): nothing changes, no second event.
	again, err := e.service().Abort(e.ctx, st)
	if err != nil || again.Status != lineage.AppActive || again.Rollback == nil || again.Rollback.Restored != 0 || again.Rollback.Resealed != 0 || again.StashDropped != 0 {
		t.Fatalf("abort again: %+v, %v", again, err)
	}
	for k, b := range e.raw("apps/app1/") {
		if !bytes.Equal(after[k], b) {
			t.Errorf("a second abort changed %s", k)
		}
	}
	if n := e.rec.Count(audit.DetailReencryptAborted); n != 1 {
		t.Errorf("%d aborted events, want 1", n)
	}
}

// Objects written by a client during the re-encryption go under the pending generation; an
// abort seals them again under the previous one when the pending key still opens them, and
// never puts older data over them.
func TestAbortResealsClientWrites(t *testing.T) {
	e := newEnv(t)
	e.app("app1", lineage.KeyModelCMK)
	st := e.begin("app1", e.k2)
	items := e.list(st.Prefix)
	if _, err := e.svc.Batch(e.ctx, batches(st, items, 3)[0]); err != nil {
		t.Fatal(err)
	}
	// A new object, and an overwrite of an object the batch already moved.
	_, overwritten, _ := strings.Cut(strings.TrimPrefix(items[0].Key, "apps/app1/"), "/")
	for path, body := range map[string]string{"written-during.txt": "new during re-encryption", overwritten: "overwritten during re-encryption"} {
		info, err := e.src.Put(e.ctx, "app1", objects.ScopeCMK, path, strings.NewReader(body))
		if err != nil || info.Generation != 2 {
			t.Fatalf("put %s: %+v, %v", path, info, err)
		}
		e.data["app1/cmk/"+path] = body
	}
	st.Error = &reencrypt.StepError{Error: "States.TaskFailed", Cause: "a batch failed"}
	out, err := e.service().Abort(e.ctx, st)
	if err != nil || out.Status != lineage.AppActive || out.Rollback == nil {
		t.Fatalf("abort: %+v, %v", out, err)
	}
	if out.Rollback.Restored != 2 || out.Rollback.Resealed != 2 || out.Rollback.StrandedCount != 0 || out.StashDropped != 3 {
		t.Fatalf("rollback %+v, stash dropped %d", *out.Rollback, out.StashDropped)
	}
	for k, h := range e.headers(st.Prefix) {
		if h.Generation != 1 || h.KeyARN != e.k1 {
			t.Errorf("%s under generation %d after the abort", k, h.Generation)
		}
	}
	// The client's data is what reads back (not the stashed older version).
	for k, g := range e.readAll(e.newSource(), "app1") {
		if g != 1 {
			t.Errorf("%s reads at generation %d", k, g)
		}
	}
}

// clientWriteDuringReencryption makes app1 (a CMK app), begins its re-encryption to k2 and
// moves the first batch of three, then writes body as a client over the second listed
// object (moved already, so the write lands under the pending generation). It returns the
// re-encryption's state, the listed items and the written object's path.
func (e *env) clientWriteDuringReencryption(body string) (reencrypt.State, []reencrypt.Item, string) {
	e.t.Helper()
	e.app("app1", lineage.KeyModelCMK)
	st := e.begin("app1", e.k2)
	items := e.list(st.Prefix)
	if _, err := e.svc.Batch(e.ctx, batches(st, items, 3)[0]); err != nil {
		e.t.Fatal(err)
	}
	_, path, _ := strings.Cut(strings.TrimPrefix(items[1].Key, "apps/app1/"), "/")
	if _, err := e.src.Put(e.ctx, "app1", objects.ScopeCMK, path, strings.NewReader(body)); err != nil {
		e.t.Fatal(err)
	}
	return st, items, path
}

// With the new key revoked, an object a client wrote during the re-encryption cannot be
// opened: it is left as it is (not overwritten with older data, not deleted), reported as
// stranded, and reads again once the key is back.
func TestAbortLeavesUnopenableClientWritesStranded(t *testing.T) {
	e := newEnv(t)
	st, items, overwritten := e.clientWriteDuringReencryption("newest")
	e.data["app1/cmk/"+overwritten] = "newest"
	clientRaw := e.raw(items[1].Key)[items[1].Key]
	e.setKey(e.k2, false)
	if _, err := e.rev.RevokeKey(e.ctx, e.k2, "DisableKey", lineage.Cause{EventID: "ev-new", Actor: "cloudtrail"}); err != nil {
		t.Fatal(err)
	}
	// The abort puts back what it can and says it is waiting for the key (the state
	// machine retries it); once the machine stops waiting, it ends listing the write.
	var stranded *wferr.Stranded
	if _, err := e.service().Abort(e.ctx, st); !errors.As(err, &stranded) {
		t.Fatalf("abort with a stranded write: %v, want wferr.Stranded", err)
	}
	if a := e.app1("app1"); a.Status != lineage.AppActive || a.ActiveGeneration != 1 || a.PendingGeneration != 0 {
		t.Fatalf("app after the first abort attempt: %+v", a)
	}
	st.AcceptStranded = true
	out, err := e.service().Abort(e.ctx, st)
	if err != nil || out.Status != lineage.AppActive || out.Rollback == nil {
		t.Fatalf("abort: %+v, %v", out, err)
	}
	if out.Rollback.Restored != 0 || out.Rollback.StrandedCount != 1 || len(out.Rollback.Stranded) != 1 || out.Rollback.Stranded[0] != items[1].Key {
		t.Fatalf("rollback %+v", *out.Rollback)
	}
	if got := e.raw(items[1].Key)[items[1].Key]; !bytes.Equal(got, clientRaw) {
		t.Fatal("the stranded client write was changed")
	}
	for k, h := range e.headers(st.Prefix) {
		if want := 1; k == items[1].Key {
			if h.Generation != 2 {
				t.Errorf("stranded %s under generation %d", k, h.Generation)
			}
		} else if h.Generation != want {
			t.Errorf("%s under generation %d after the abort", k, h.Generation)
		}
	}
	// Retried, the abort still never fails and still leaves it.
	if out, err := e.service().Abort(e.ctx, st); err != nil || out.Rollback.StrandedCount != 1 {
		t.Fatalf("abort again: %+v, %v", out, err)
	}
	// B9: while the lineage records k2 revoked, the stranded write is not served, by any
	// process, whatever KMS says: it becomes readable when the key's recorded state is usable.
	e.setKey(e.k2, true)
	if _, err := e.newSource().Get(e.ctx, "app1", objects.ScopeCMK, overwritten, io.Discard); !errors.Is(err, objects.ErrKeyRevoked) {
		t.Fatalf("read of the stranded write under the revoked generation: %v, want ErrKeyRevoked", err)
	}
}

// I3: an object a client wrote during the re-encryption under the pending generation is
// not left there when the abort ends. While the key it needs is revoked the abort waits
// (wferr.Stranded, retried by the state machine); once the key is back, the retried abort
// seals it under the previous generation, with the same bytes.
func TestAbortWaitsForTheKeyOfStrandedWrites(t *testing.T) {
	for _, revoked := range []string{"new key", "old key"} {
		t.Run(revoked, func(t *testing.T) {
			e := newEnv(t)
			st, items, path := e.clientWriteDuringReencryption("written during")
			key := e.k2
			if revoked == "old key" {
				key = e.k1
			}
			e.setKey(key, false)
			if _, err := e.rev.RevokeKey(e.ctx, key, "DisableKey", lineage.Cause{EventID: "ev-off", Actor: "cloudtrail"}); err != nil {
				t.Fatal(err)
			}
			var stranded *wferr.Stranded
			if _, err := e.service().Abort(e.ctx, st); !errors.As(err, &stranded) {
				t.Fatalf("abort while the key is revoked: %v, want wferr.Stranded", err)
			}
			if g := e.headers(st.Prefix)[items[1].Key].Generation; g != 2 {
				t.Fatalf("the client write under generation %d while it waits, want 2 (left as it is)", g)
			}
			e.setKey(key, true)
			if _, err := e.rev.ReactivateKey(e.ctx, key, lineage.Cause{EventID: "ev-on", Actor: "cloudtrail"}); err != nil {
				t.Fatal(err)
			}
			out, err := e.service().Abort(e.ctx, st)
			if err != nil || out.Rollback == nil || out.Rollback.StrandedCount != 0 || out.Rollback.Resealed != 1 {
				t.Fatalf("abort once the key is back: %+v %+v, %v", out, out.Rollback, err)
			}
			for k, h := range e.headers(st.Prefix) {
				if h.Generation != 1 {
					t.Errorf("%s under generation %d after the abort, want 1", k, h.Generation)
				}
			}
			var b strings.Builder
			if _, err := e.newSource().Get(e.ctx, "app1", objects.ScopeCMK, path, &b); err != nil || b.String() != "written during" {
				t.Fatalf("the client write after the abort: %q, %v", b.String(), err)
			}
		})
	}
}

// Commit drops the stash of the moved objects' previous versions.
func TestCommitDropsStash(t *testing.T) {
	e := newEnv(t)
	e.app("app1", lineage.KeyModelCMK)
	st := e.begin("app1", e.k2)
	for _, b := range batches(st, e.list(st.Prefix), 3) {
		if _, err := e.svc.Batch(e.ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(e.list(stashRoot + "app1/2/")); n != 8 {
		t.Fatalf("%d stashed objects before the commit, want 8", n)
	}
	out, err := e.svc.Commit(e.ctx, st)
	if err != nil || out.ActiveGeneration != 2 || out.StashDropped != 8 {
		t.Fatalf("commit: %+v, %v", out, err)
	}
	if left := e.list(stashRoot); len(left) != 0 {
		t.Fatalf("stash left after the commit: %v", left)
	}
	if out, err := e.svc.Commit(e.ctx, st); err != nil || out.StashDropped != 0 {
		t.Fatalf("commit again: %+v, %v", out, err)
	}
	for k, g := range e.readAll(e.newSource(), "app1") {
		if g != 2 {
			t.Errorf("%s at generation %d after the commit", k, g)
		}
	}
}

// The stash is invisible: not listed by the data source, not in a snapshot, not in the
// re-encryption Map's own listing, and reads are unaffected (B7).
func TestStashNeverListed(t *testing.T) {
	e := newEnv(t)
	e.app("app1", lineage.KeyModelCMK)
	st := e.begin("app1", e.k2)
	for _, b := range batches(st, e.list(st.Prefix), 3)[:2] {
		if _, err := e.svc.Batch(e.ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	stash := e.list(stashRoot)
	if len(stash) != 6 {
		t.Fatalf("%d stashed objects, want 6", len(stash))
	}
	for _, it := range stash {
		if strings.HasPrefix(it.Key, "apps/") {
			t.Fatalf("stash object %s under apps/", it.Key)
		}
	}
	var listed []string
	cursor := ""
	for {
		p, err := e.src.List(e.ctx, "app1", "", cursor, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range p.Items {
			listed = append(listed, it.Key)
		}
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	if len(listed) != 11 {
		t.Fatalf("listed %d objects, want 11 (8 CMK + 3 managed): %v", len(listed), listed)
	}
	for _, k := range listed {
		if strings.Contains(k, "reencrypt-stash") {
			t.Fatalf("listing shows the stash: %s", k)
		}
	}
	if n := len(e.list(st.Prefix)); n != 8 {
		t.Fatalf("the Map lists %d objects, want 8", n)
	}
	var snap bytes.Buffer
	stats, err := e.src.Snapshot(e.ctx, "app1", &snap)
	if err != nil || stats.Objects != 11 {
		t.Fatalf("snapshot: %+v, %v", stats, err)
	}
	sr, err := objects.NewSnapshotReader(&snap)
	if err != nil {
		t.Fatal(err)
	}
	for {
		rec, body, err := sr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := e.data["app1/"+string(rec.Scope)+"/"+rec.Path]; !ok {
			t.Errorf("snapshot record %s/%s is not an object of the app", rec.Scope, rec.Path)
		}
		_, _ = io.Copy(io.Discard, body)
	}
	e.readAll(e.newSource(), "app1")
}
