package objects_test

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/objects"
	"github.com/keyline/keyline/internal/objects/objectstest"
	"github.com/keyline/keyline/internal/sealing"
)

// beginTo2 starts re-encrypting app1 to generation 2 under a new key and returns that key.
func beginTo2(t *testing.T, e *objectstest.Env) string {
	t.Helper()
	ctx := context.Background()
	newKey := e.CMKApp(t, "org1", "keyholder") // any customer key
	wrapped, err := objects.NewGenerationKey(ctx, e.Keys, "org1", "app1", 2, newKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store.BeginReencrypt(ctx, "app1", 2, newKey, wrapped, lineage.Cause{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	return newKey
}

func generationAtRest(t *testing.T, e *objectstest.Env, key string) int {
	t.Helper()
	h, err := sealing.ReadHeader(bytes.NewReader(e.Raw(t, objectstest.DataBucket, key)))
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	return h.Generation
}

// A move keeps the previous sealed bytes in the stash (outside apps/); a rollback puts them
// back byte for byte (multipart objects too), seals a client's write again, and is
// idempotent; dropping the stash empties it.
func TestReencryptStashAndRollback(t *testing.T) {
	e := objectstest.New(t)
	e.Org(t, "org1")
	e.CMKApp(t, "org1", "app1")
	ctx := context.Background()
	small, big := randBytes(t, 70_000), randBytes(t, 12<<20) // big: a multipart upload (5 MiB parts)
	e.Put(t, "app1", objects.ScopeCMK, "small", small)
	e.Put(t, "app1", objects.ScopeCMK, "big", big)
	e.Put(t, "app1", objects.ScopeCMK, "client", []byte("before"))
	before := map[string][]byte{}
	for _, p := range []string{"small", "big", "client"} {
		before[p] = e.Raw(t, objectstest.DataBucket, "apps/app1/cmk/"+p)
	}
	beginTo2(t, e)
	for _, p := range []string{"small", "big", "client"} {
		if info, err := e.Source.ReencryptObject(ctx, "app1", "apps/app1/cmk/"+p, 2); err != nil || info.Generation != 2 {
			t.Fatalf("reencrypt %s: %+v, %v", p, info, err)
		}
		if got := e.Raw(t, objectstest.DataBucket, "reencrypt-stash/app1/2/cmk/"+p); !bytes.Equal(got, before[p]) {
			t.Fatalf("stash copy of %s differs from the object before it moved", p)
		}
	}
	if keys := e.KeysUnder(t, objectstest.DataBucket, "apps/"); len(keys) != 3 {
		t.Fatalf("apps/ holds %v", keys)
	}
	// A client overwrites a moved object (under the pending generation); a new one too.
	e.Put(t, "app1", objects.ScopeCMK, "client", []byte("newest"))
	e.Put(t, "app1", objects.ScopeCMK, "new", []byte("created meanwhile"))
	if _, err := e.Store.AbortReencrypt(ctx, "app1", 2, "test", lineage.Cause{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	st, err := e.Source.RollbackReencrypt(ctx, "app1", 1, 2)
	if err != nil || st.Checked != 4 || st.Restored != 2 || st.Resealed != 2 || st.StrandedCount != 0 {
		t.Fatalf("rollback: %+v, %v", st, err)
	}
	for _, p := range []string{"small", "big"} {
		if got := e.Raw(t, objectstest.DataBucket, "apps/app1/cmk/"+p); !bytes.Equal(got, before[p]) {
			t.Errorf("%s not put back byte for byte", p)
		}
	}
	for p, want := range map[string][]byte{"small": small, "big": big, "client": []byte("newest"), "new": []byte("created meanwhile")} {
		if g := generationAtRest(t, e, "apps/app1/cmk/"+p); g != 1 {
			t.Errorf("%s under generation %d after the rollback", p, g)
		}
		if got := e.Get(t, "app1", objects.ScopeCMK, p); !bytes.Equal(got, want) {
			t.Errorf("%s reads back different data", p)
		}
	}
	again, err := e.Source.RollbackReencrypt(ctx, "app1", 1, 2)
	if err != nil || again.Restored+again.Resealed+again.StrandedCount != 0 {
		t.Fatalf("rollback again: %+v, %v", again, err)
	}
	if n, err := e.Source.DropReencryptStash(ctx, "app1", 2); err != nil || n != 3 {
		t.Fatalf("drop: %d, %v", n, err)
	}
	if n, err := e.Source.DropReencryptStash(ctx, "app1", 2); err != nil || n != 0 {
		t.Fatalf("drop again: %d, %v", n, err)
	}
	if keys := e.KeysUnder(t, objectstest.DataBucket, "reencrypt-stash/"); len(keys) != 0 {
		t.Fatalf("stash left: %v", keys)
	}
}

// abortingLineage aborts the re-encryption to generation 2 just before the second lookup
// of generation 2, i.e. while ReencryptObject's write is landing: an abort racing a batch.
type abortingLineage struct {
	*lineage.Store
	lookups atomic.Int32
}

func (a *abortingLineage) GetGeneration(ctx context.Context, appID string, n int) (lineage.Generation, error) {
	if n == 2 && a.lookups.Add(1) == 2 {
		if _, err := a.Store.AbortReencrypt(ctx, appID, 2, "raced", lineage.Cause{Actor: "test"}); err != nil {
			return lineage.Generation{}, err
		}
	}
	return a.Store.GetGeneration(ctx, appID, n)
}

// A move that lands after the re-encryption was aborted is undone by the mover itself.
func TestReencryptObjectRacingAbortMovesBack(t *testing.T) {
	e := objectstest.New(t)
	e.Org(t, "org1")
	e.CMKApp(t, "org1", "app1")
	ctx := context.Background()
	d := randBytes(t, 30_000)
	e.Put(t, "app1", objects.ScopeCMK, "x", d)
	before := e.Raw(t, objectstest.DataBucket, "apps/app1/cmk/x")
	beginTo2(t, e)
	src, err := objects.NewS3(objects.Config{S3: e.S3.Client, Bucket: objectstest.DataBucket, Lineage: &abortingLineage{Store: e.Store},
		Keys: e.Keys, ProviderKeyARN: e.ProviderKey, Logger: e.Logger})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if _, err := src.ReencryptObject(ctx, "app1", "x", 2); !errors.Is(err, objects.ErrGenerationNotUsable) {
		t.Fatalf("reencrypt racing an abort: %v, want ErrGenerationNotUsable", err)
	}
	if got := e.Raw(t, objectstest.DataBucket, "apps/app1/cmk/x"); !bytes.Equal(got, before) {
		t.Fatalf("object not moved back (generation %d at rest)", generationAtRest(t, e, "apps/app1/cmk/x"))
	}
	if got := e.Get(t, "app1", objects.ScopeCMK, "x"); !bytes.Equal(got, d) {
		t.Fatal("object reads back different data")
	}
}

// The stash prefix may not overlap the objects' prefix (it would be listed and backed up).
func TestStashPrefixMustNotOverlap(t *testing.T) {
	e := objectstest.New(t)
	_, err := objects.NewS3(objects.Config{S3: e.S3.Client, Bucket: objectstest.DataBucket, Lineage: e.Store, Keys: e.Keys, StashPrefix: "apps/stash/"})
	if err == nil {
		t.Fatal("a stash under apps/ was accepted")
	}
}

// B9: with the old generation's key revoked in the lineage, a rollback seals nothing new
// under it, even in a process whose cache still holds its data key and while KMS would
// still answer: a client's write under the pending generation is left stranded (the
// abort waits for the key), a moved object is put back from its stash (old bytes, nothing
// new sealed).
func TestRollbackSealsNothingUnderARevokedOldKey(t *testing.T) {
	e := objectstest.New(t)
	e.Org(t, "org1")
	oldKey := e.CMKApp(t, "org1", "app1")
	ctx := context.Background()
	e.Put(t, "app1", objects.ScopeCMK, "moved", []byte("moved"))
	e.Get(t, "app1", objects.ScopeCMK, "moved") // the old generation's data key is cached
	beginTo2(t, e)
	if _, err := e.Source.ReencryptObject(ctx, "app1", "apps/app1/cmk/moved", 2); err != nil {
		t.Fatal(err)
	}
	e.Put(t, "app1", objects.ScopeCMK, "client", []byte("written during"))
	if _, err := e.Store.RevokeKey(ctx, oldKey, "DisableKey", lineage.KeyEventRef{ID: "ev-old", Time: time.Now()}, lineage.Cause{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store.AbortReencrypt(ctx, "app1", 2, "test", lineage.Cause{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	st, err := e.Source.RollbackReencrypt(ctx, "app1", 1, 2)
	if err != nil || st.Restored != 1 || st.Resealed != 0 || st.StrandedCount != 1 || len(st.Stranded) != 1 || st.Stranded[0] != "apps/app1/cmk/client" {
		t.Fatalf("rollback with the old key revoked: %+v, %v", st, err)
	}
	if g := generationAtRest(t, e, "apps/app1/cmk/client"); g != 2 {
		t.Fatalf("the client's write sealed again under generation %d, want it left under 2", g)
	}
	if g := generationAtRest(t, e, "apps/app1/cmk/moved"); g != 1 {
		t.Fatalf("the moved object under generation %d, want it put back under 1", g)
	}
}
