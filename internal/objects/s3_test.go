package objects_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/objects"
	"github.com/keyline/keyline/internal/objects/objectstest"
	"github.com/keyline/keyline/internal/sealing"
	"github.com/keyline/keyline/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func randBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPutGetRoundTripAndKeyCache(t *testing.T) {
	e := objectstest.New(t)
	e.Org(t, "org1")
	keyARN := e.CMKApp(t, "org1", "app1")
	e.Keys.Reset()
	want := map[string][]byte{}
	for i := range 5 {
		p := fmt.Sprintf("dir/obj-%d", i)
		want[p] = randBytes(t, 1000*i+1)
		info := e.Put(t, "app1", objects.ScopeCMK, p, want[p])
		if info.Generation != 1 || info.KeyARN != keyARN || info.Size != int64(len(want[p])) {
			t.Fatalf("put info %+v: want generation 1 under %s, size %d", info, keyARN, len(want[p]))
		}
	}
	big := randBytes(t, 3<<20)
	e.Put(t, "app1", objects.ScopeManaged, "big", big)
	for p, w := range want {
		if got := e.Get(t, "app1", objects.ScopeCMK, p); !bytes.Equal(got, w) {
			t.Fatalf("%s: round trip differs", p)
		}
	}
	if got := e.Get(t, "app1", objects.ScopeManaged, "big"); !bytes.Equal(got, big) {
		t.Fatal("managed object differs")
	}
	c := e.Keys.Counts()
	// The generation key and the managed-scope key are each unwrapped once (cached), and the
	// managed-scope key is generated once: never a call per object.
	if c.Decrypt != 2 || c.GenerateDataKey != 1 {
		t.Fatalf("KMS calls %+v: want the generation key and the managed-scope key unwrapped once each, one scope key generated", c)
	}
	// The raw object does not contain the plaintext and names the generation.
	raw := e.Raw(t, objectstest.DataBucket, "apps/app1/cmk/dir/obj-4")
	if bytes.Contains(raw, want["dir/obj-4"][:64]) {
		t.Fatal("stored object contains plaintext")
	}
	h, err := sealing.ReadHeader(bytes.NewReader(raw))
	if err != nil || h.KeyARN != keyARN || h.Generation != 1 {
		t.Fatalf("header %+v, %v", h, err)
	}
}

func TestPutRefusals(t *testing.T) {
	e := objectstest.New(t)
	e.Org(t, "org1")
	e.ManagedApp(t, "org1", "m1")
	ctx := context.Background()
	if _, err := e.Source.Put(ctx, "m1", objects.ScopeCMK, "x", bytes.NewReader([]byte("x"))); !errors.Is(err, objects.ErrScopeNotAllowed) {
		t.Fatalf("managed app CMK-scope put: %v, want ErrScopeNotAllowed", err)
	}
	for _, p := range []string{"", "../x", "a//b", "/a", "a/./b"} {
		if _, err := e.Source.Put(ctx, "m1", objects.ScopeManaged, p, bytes.NewReader(nil)); !errors.Is(err, objects.ErrInvalid) {
			t.Fatalf("path %q: %v, want ErrInvalid", p, err)
		}
	}
	if _, err := e.Source.Put(ctx, "nope", objects.ScopeManaged, "x", bytes.NewReader(nil)); !errors.Is(err, objects.ErrNotFound) {
		t.Fatalf("unknown app: %v", err)
	}
	if _, err := e.Source.Get(ctx, "m1", objects.ScopeManaged, "missing", io.Discard); !errors.Is(err, objects.ErrNotFound) {
		t.Fatalf("missing object: %v", err)
	}
	if got := e.KeysUnder(t, objectstest.DataBucket, "apps/"); len(got) != 0 {
		t.Fatalf("refused puts wrote %v", got)
	}
}

func TestGetDetectsTampering(t *testing.T) {
	e := objectstest.New(t)
	e.Org(t, "org1")
	e.CMKApp(t, "org1", "app1")
	e.Put(t, "app1", objects.ScopeCMK, "f", randBytes(t, 100_000))
	key := "apps/app1/cmk/f"
	raw := e.Raw(t, objectstest.DataBucket, key)
	bad := bytes.Clone(raw)
	bad[len(bad)/2] ^= 1
	e.PutRaw(t, objectstest.DataBucket, key, bad)
	if _, err := e.Source.Get(context.Background(), "app1", objects.ScopeCMK, "f", io.Discard); !errors.Is(err, sealing.ErrTampered) {
		t.Fatalf("tampered: %v, want ErrTampered", err)
	}
	e.PutRaw(t, objectstest.DataBucket, key, raw[:len(raw)-40])
	if _, err := e.Source.Get(context.Background(), "app1", objects.ScopeCMK, "f", io.Discard); !errors.Is(err, sealing.ErrTruncated) && !errors.Is(err, sealing.ErrTampered) {
		t.Fatalf("truncated: %v, want ErrTruncated", err)
	}
}

func TestListDeleteAndDeleteAll(t *testing.T) {
	e := objectstest.New(t)
	e.Org(t, "org1")
	e.CMKApp(t, "org1", "app1")
	for i := range 7 {
		e.Put(t, "app1", objects.ScopeCMK, fmt.Sprintf("o%d", i), []byte("x"))
	}
	e.Put(t, "app1", objects.ScopeManaged, "m", []byte("y"))
	ctx := context.Background()
	var all []objects.Info
	cursor := ""
	for {
		p, err := e.Source.List(ctx, "app1", objects.ScopeCMK, cursor, 3)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, p.Items...)
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	if len(all) != 7 || all[0].Path != "o0" || all[0].Scope != objects.ScopeCMK {
		t.Fatalf("listed %+v", all)
	}
	if err := e.Source.Delete(ctx, "app1", objects.ScopeCMK, "o0"); err != nil {
		t.Fatal(err)
	}
	if err := e.Source.Delete(ctx, "app1", objects.ScopeCMK, "o0"); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	n, err := e.Source.DeleteAll(ctx, "app1")
	if err != nil || n != 7 {
		t.Fatalf("DeleteAll: %d, %v; want 7", n, err)
	}
}

func snapshot(t *testing.T, e *objectstest.Env, appID string) ([]byte, objects.SnapshotStats) {
	t.Helper()
	var buf bytes.Buffer
	st, err := e.Source.Snapshot(context.Background(), appID, &buf)
	if err != nil {
		t.Fatalf("snapshot %s: %v", appID, err)
	}
	return buf.Bytes(), st
}

func TestSnapshotRestoreVerbatimAndResealed(t *testing.T) {
	e := objectstest.New(t)
	e.Org(t, "org1")
	e.CMKApp(t, "org1", "src")
	e.CMKApp(t, "org1", "dst")
	data := map[string][]byte{"a": randBytes(t, 10), "b/c": randBytes(t, 2<<20), "empty": {}}
	for p, d := range data {
		e.Put(t, "src", objects.ScopeCMK, p, d)
	}
	e.Put(t, "src", objects.ScopeManaged, "settings", []byte("managed"))
	snap, st := snapshot(t, e, "src")
	if st.Objects != 4 || st.Bytes != int64(len(snap)) {
		t.Fatalf("stats %+v, stream %d bytes", st, len(snap))
	}
	ctx := context.Background()
	if vs, err := e.Source.VerifySnapshot(ctx, bytes.NewReader(snap)); err != nil || vs.Objects != 4 {
		t.Fatalf("verify: %+v %v", vs, err)
	}
	// Into another app: re-sealed under its keys.
	rs, err := e.Source.RestoreSnapshot(ctx, "dst", bytes.NewReader(snap))
	if err != nil || rs.Objects != 4 || rs.Resealed != 4 {
		t.Fatalf("restore into dst: %+v %v", rs, err)
	}
	for p, d := range data {
		if got := e.Get(t, "dst", objects.ScopeCMK, p); !bytes.Equal(got, d) {
			t.Fatalf("dst %s differs", p)
		}
	}
	if got := e.Get(t, "dst", objects.ScopeManaged, "settings"); string(got) != "managed" {
		t.Fatalf("dst managed: %q", got)
	}
	// Into itself: copied verbatim; a second snapshot is byte-identical.
	n, _ := e.Source.DeleteAll(ctx, "src")
	if n != 4 {
		t.Fatalf("deleted %d", n)
	}
	rs, err = e.Source.RestoreSnapshot(ctx, "src", bytes.NewReader(snap))
	if err != nil || rs.Copied != 4 {
		t.Fatalf("restore into src: %+v %v", rs, err)
	}
	again, _ := snapshot(t, e, "src")
	if !bytes.Equal(again, snap) {
		t.Fatal("snapshot after a verbatim restore differs")
	}
}

func TestSnapshotStreamDefects(t *testing.T) {
	e := objectstest.New(t)
	e.Org(t, "org1")
	e.CMKApp(t, "org1", "src")
	e.CMKApp(t, "org1", "dst")
	e.Put(t, "src", objects.ScopeCMK, "a", randBytes(t, 5000))
	snap, _ := snapshot(t, e, "src")
	ctx := context.Background()
	for name, bad := range map[string][]byte{
		"truncated":  snap[:len(snap)-3],
		"no-end":     snap[:len(snap)-2],
		"bad-magic":  append([]byte("XX"), snap[2:]...),
		"extra-tail": append(bytes.Clone(snap), 0),
	} {
		if _, err := e.Source.VerifySnapshot(ctx, bytes.NewReader(bad)); !errors.Is(err, objects.ErrCorruptSnapshot) {
			t.Errorf("%s: verify gave %v, want ErrCorruptSnapshot", name, err)
		}
	}
	flipped := bytes.Clone(snap)
	flipped[len(flipped)-100] ^= 0x40
	if _, err := e.Source.VerifySnapshot(ctx, bytes.NewReader(flipped)); !errors.Is(err, sealing.ErrTampered) {
		t.Errorf("flipped object byte: %v, want ErrTampered", err)
	}
	if _, err := e.Source.RestoreSnapshot(ctx, "dst", bytes.NewReader(flipped)); !errors.Is(err, sealing.ErrTampered) {
		t.Errorf("restore of a flipped object: %v, want ErrTampered", err)
	}
	if got := e.KeysUnder(t, objectstest.DataBucket, "apps/dst/"); len(got) != 0 {
		t.Errorf("a tampered object was written: %v", got)
	}
}

func TestReencryptObject(t *testing.T) {
	e := objectstest.New(t)
	e.Org(t, "org1")
	e.CMKApp(t, "org1", "app1")
	ctx := context.Background()
	d := randBytes(t, 70_000)
	e.Put(t, "app1", objects.ScopeCMK, "x", d)
	e.Put(t, "app1", objects.ScopeManaged, "m", []byte("keep"))
	newKey := e.CMKApp(t, "org1", "other") // any key
	wrapped, err := objects.NewGenerationKey(ctx, e.Keys, "org1", "app1", 2, newKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store.BeginReencrypt(ctx, "app1", 2, newKey, wrapped, lineage.Cause{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	info, err := e.Source.ReencryptObject(ctx, "app1", "apps/app1/cmk/x", 2)
	if err != nil || info.Generation != 2 || info.KeyARN != newKey {
		t.Fatalf("reencrypt: %+v %v", info, err)
	}
	raw := e.Raw(t, objectstest.DataBucket, "apps/app1/cmk/x")
	again, err := e.Source.ReencryptObject(ctx, "app1", "x", 2)
	if err != nil || again.Generation != 2 {
		t.Fatalf("second reencrypt: %+v %v", again, err)
	}
	if !bytes.Equal(raw, e.Raw(t, objectstest.DataBucket, "apps/app1/cmk/x")) {
		t.Fatal("re-encrypting an object already at the generation rewrote it")
	}
	if got := e.Get(t, "app1", objects.ScopeCMK, "x"); !bytes.Equal(got, d) {
		t.Fatal("re-encrypted object differs")
	}
	if _, err := e.Source.ReencryptObject(ctx, "app1", "apps/app1/managed/m", 2); !errors.Is(err, objects.ErrScopeNotAllowed) {
		t.Fatalf("managed-scope reencrypt: %v, want ErrScopeNotAllowed (R4)", err)
	}
	// New writes while re-encrypting go to the pending generation.
	if info := e.Put(t, "app1", objects.ScopeCMK, "new", []byte("n")); info.Generation != 2 {
		t.Fatalf("write during re-encryption under generation %d, want 2", info.Generation)
	}
}

// I4: a snapshot holds only what the app's active generation opens. An object left under
// another generation (here: written during a re-encryption that was then aborted, and whose
// key the customer then disabled: a stranded write) is left out of the snapshot, so a backup
// taken afterwards, listed restorable, restores.
func TestSnapshotLeavesOutObjectsOfOtherGenerations(t *testing.T) {
	e := objectstest.New(t)
	e.Org(t, "org1")
	e.CMKApp(t, "org1", "src")
	e.CMKApp(t, "org1", "dst")
	ctx := context.Background()
	keep := randBytes(t, 3000)
	e.Put(t, "src", objects.ScopeCMK, "keep", keep)
	e.Put(t, "src", objects.ScopeManaged, "settings", []byte("managed"))
	newKey := testenv.NewKMSKey(t, e.KMS)
	wrapped, err := objects.NewGenerationKey(ctx, e.Keys, "org1", "src", 2, newKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store.BeginReencrypt(ctx, "src", 2, newKey, wrapped, lineage.Cause{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	if info := e.Put(t, "src", objects.ScopeCMK, "stranded", []byte("written during the re-encryption")); info.Generation != 2 {
		t.Fatalf("write during the re-encryption under generation %d, want 2", info.Generation)
	}
	if _, err := e.Store.AbortReencrypt(ctx, "src", 2, "test: aborted", lineage.Cause{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.KMS.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(newKey)}); err != nil {
		t.Fatal(err)
	}
	snap, st := snapshot(t, e, "src")
	if st.Objects != 2 || st.LeftOut != 1 {
		t.Fatalf("snapshot stats %+v: want the 2 objects of the active generation and 1 left out", st)
	}
	rs, err := e.Source.RestoreSnapshot(ctx, "dst", bytes.NewReader(snap))
	if err != nil || rs.Objects != 2 {
		t.Fatalf("restore of the snapshot: %+v %v", rs, err)
	}
	if got := e.Get(t, "dst", objects.ScopeCMK, "keep"); !bytes.Equal(got, keep) {
		t.Fatal("restored object differs")
	}
}

// revokeOnEOF is a body that has the app's key revoked once it has been read to the end: the
// revocation lands while the write's bytes are uploaded.
type revokeOnEOF struct {
	r      io.Reader
	revoke func()
	done   bool
}

func (b *revokeOnEOF) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		b.revoke()
	}
	return n, err
}

// I6: a write whose bytes land while its key's revocation is applied is acknowledged: it
// replaced the object, so a refusal would tell the client nothing was stored while the
// previous content is gone. A write that starts after the revocation is refused and
// changes nothing (B9).
func TestPutRacingARevocationTellsWhatHappened(t *testing.T) {
	e := objectstest.New(t)
	e.Org(t, "org1")
	keyARN := e.CMKApp(t, "org1", "app1")
	ctx := context.Background()
	e.Put(t, "app1", objects.ScopeCMK, "x", []byte("first"))
	body := &revokeOnEOF{r: bytes.NewReader([]byte("second")), revoke: func() {
		if _, err := e.Store.RevokeKey(ctx, keyARN, "DisableKey", lineage.KeyEventRef{ID: "ev-1", Time: time.Now()}, lineage.Cause{Actor: "test"}); err != nil {
			t.Errorf("revoke: %v", err)
		}
	}}
	info, err := e.Source.Put(ctx, "app1", objects.ScopeCMK, "x", body)
	if err != nil || info.Generation != 1 {
		t.Fatalf("write racing the revocation: %+v, %v; want it acknowledged (its bytes replaced the object)", info, err)
	}
	before := e.Raw(t, objectstest.DataBucket, "apps/app1/cmk/x")
	if _, err := e.Source.Put(ctx, "app1", objects.ScopeCMK, "x", bytes.NewReader([]byte("third"))); !errors.Is(err, objects.ErrAppNotWritable) {
		t.Fatalf("write after the revocation: %v, want ErrAppNotWritable", err)
	}
	if after := e.Raw(t, objectstest.DataBucket, "apps/app1/cmk/x"); !bytes.Equal(before, after) {
		t.Fatal("a refused write changed the object")
	}
	if _, err := e.Store.ReactivateKey(ctx, keyARN, 0, lineage.KeyEventRef{ID: "ev-2", Time: time.Now()}, lineage.Cause{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	if got := e.Get(t, "app1", objects.ScopeCMK, "x"); string(got) != "second" {
		t.Fatalf("after the key is back: %q, want the acknowledged write", got)
	}
}
