package objects

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/keyline/keyline/internal/fanout"
	"github.com/keyline/keyline/internal/keys"
	"github.com/keyline/keyline/internal/sealing"
)

// The re-encryption stash.
//
// Moving an object from generation n to n+1 (ReencryptObject) first copies its current sealed
// bytes (under n) to the stash, <StashPrefix><appId>/<n+1>/cmk/<path>, with a random id in
// its metadata (keyline-stash-id); then it overwrites the object with its n+1 sealing,
// conditional on the object being unchanged since it was stashed, naming that id in the new
// object's metadata (keyline-origin: "reencrypt;to=<n+1>;stash=<id>"). Every write of the data
// source sets keyline-origin (Put and restores to "write"), so a client write replaces the tag
// — also on stores that carry metadata over from the object a write replaces — and the tag
// tells a moved object from one written since.
//
// If the re-encryption aborts, RollbackReencrypt puts every moved object back from its stash
// copy — a plain copy of sealed bytes, no KMS call, so it works when the new key was revoked
// (B8) — and DropReencryptStash deletes the stash. A commit drops the stash as well.
//
// The stash is outside the apps' prefix, so it is never listed, snapshotted or re-encrypted,
// and readers never see it (B7).

// DefaultStashPrefix is where the re-encryption stash lives in the data bucket: outside the
// apps' prefix, so that it is never listed, backed up or re-encrypted.
const DefaultStashPrefix = "reencrypt-stash/"

// metaOrigin is the object metadata (x-amz-meta-keyline-origin) saying which operation wrote
// an object: originWrite (Put, restore), originRollback, or movedOrigin(...) for a move of
// a re-encryption, naming its stash copy.
const (
	metaOrigin     = "keyline-origin"
	originWrite    = "write"
	originRollback = "rollback"
)

// metaStashID is the metadata of a stash copy naming it (the moved object names it too).
const metaStashID = "keyline-stash-id"

func movedOrigin(to int, stashID string) string {
	return "reencrypt;to=" + strconv.Itoa(to) + ";stash=" + stashID
}

func newStashID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("objects: stash id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// rollbackWorkers is how many objects a rollback handles at once.
const rollbackWorkers = 8

// maxStrandedListed caps the keys listed in RollbackStats.Stranded.
const maxStrandedListed = 100

// RollbackStats summarizes a RollbackReencrypt.
type RollbackStats struct {
	// Checked is how many CMK-scope objects were looked at.
	Checked int `json:"checked"`
	// Restored objects were put back from their stash copy (sealed under the old generation).
	Restored int `json:"restored"`
	// Resealed objects had no stash copy (written by a client during the re-encryption, under
	// the pending generation) and were opened and sealed again under the old generation.
	Resealed int `json:"resealed"`
	// StrandedCount objects are left under the aborted generation: written by a client during
	// the re-encryption (so newer than any stash copy) and not openable now, because that
	// generation's key is revoked (or the old generation's key is). They are kept as they are
	// — never overwritten with older data, never deleted — and become readable again if the
	// key comes back. Stranded lists up to 100 of their keys.
	StrandedCount int      `json:"strandedCount,omitempty"`
	Stranded      []string `json:"stranded,omitempty"`
}

// StashPrefix is the stash of a re-encryption of appID to generation gen.
func (s *S3Source) StashPrefix(appID string, gen int) string {
	return s.cfg.StashPrefix + appID + "/" + strconv.Itoa(gen) + "/"
}

func (s *S3Source) stashKey(appID string, gen int, path string) string {
	return s.StashPrefix(appID, gen) + string(ScopeCMK) + "/" + path
}

func metaGet(m map[string]string, k string) string {
	for mk, v := range m {
		if strings.EqualFold(mk, k) {
			return v
		}
	}
	return ""
}

func isConflict(err error) bool {
	var re *smithyhttp.ResponseError
	return errors.As(err, &re) && (re.HTTPStatusCode() == http.StatusPreconditionFailed || re.HTTPStatusCode() == http.StatusConflict)
}

// cmkPath checks that key (a bucket key of appID's CMK scope, or a path) names a CMK-scope
// object of appID and returns its path.
func (s *S3Source) cmkPath(appID, key string) (string, error) {
	if err := validApp(appID); err != nil {
		return "", err
	}
	path := key
	if a, sc, p, ok := s.parseKey(key); ok {
		if a != appID {
			return "", &InvalidError{What: "key " + quote(key) + " of another app"}
		}
		if sc != ScopeCMK {
			return "", fmt.Errorf("%w: %s is managed scope, which a CMK re-encryption never alters (R4)", ErrScopeNotAllowed, key)
		}
		path = p
	}
	if err := validPath(path); err != nil {
		return "", &InvalidError{What: err.Error()}
	}
	return path, nil
}

// ReencryptObject implements Source. The object's previous sealed bytes are kept in the
// stash (see DefaultStashPrefix) until the re-encryption commits or aborts. If the target
// generation stopped being usable while the object moved (an abort raced this call), the
// object is moved back and ErrGenerationNotUsable returned.
func (s *S3Source) ReencryptObject(ctx context.Context, appID, key string, toGeneration int) (Info, error) {
	path, err := s.cmkPath(appID, key)
	if err != nil {
		return Info{}, err
	}
	k, err := s.generationKey(ctx, appID, toGeneration, true)
	if err != nil {
		return Info{}, err
	}
	full := s.objectKey(appID, ScopeCMK, path)
	for attempt := 0; ; attempt++ {
		info, moved, retry, err := s.moveOnce(ctx, appID, path, full, k, true)
		if retry && attempt < 3 {
			continue
		}
		if err != nil || moved == 0 {
			return info, err
		}
		return info, s.checkStillPending(ctx, appID, path, full, moved, toGeneration)
	}
}

// checkStillPending undoes a move whose target generation was retired or revoked while the
// move ran (an abort's rollback may have passed this object already).
func (s *S3Source) checkStillPending(ctx context.Context, appID, path, key string, from, to int) error {
	gen, err := s.cfg.Lineage.GetGeneration(ctx, appID, to)
	if err != nil {
		return mapLineage(err)
	}
	if gen.Usable() {
		return nil
	}
	back, err := s.generationKey(ctx, appID, from, false)
	if err == nil {
		var st RollbackStats
		_, err = s.rollbackOne(ctx, appID, path, key, to, back, &st)
		if err == nil && st.StrandedCount > 0 {
			err = errors.New("could not be moved back")
		}
	}
	if err != nil {
		s.log.ErrorContext(ctx, "re-encryption: object moved to a generation retired meanwhile, not moved back",
			"app", appID, "key", key, "generation", to, "state", gen.State, "error", err)
	}
	return fmt.Errorf("%w: generation %d of app %s became %s while %s moved to it", ErrGenerationNotUsable, to, appID, gen.State, key)
}

// moveOnce moves the object at key to k's generation. With stash, its current sealed bytes are
// first copied to the stash and the new object is tagged with the copy's ETag. moved is the
// generation the object was moved from (0 when it was already at k's generation); retry
// says the object changed meanwhile and should be read again.
func (s *S3Source) moveOnce(ctx context.Context, appID, path, key string, k wrappedKey, stash bool) (info Info, moved int, retry bool, err error) {
	info = Info{AppID: appID, Scope: ScopeCMK, Path: path, Key: key, Size: -1}
	get := func() (*s3.GetObjectOutput, *sealing.Header, error) {
		out, err := s.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(key)})
		if err != nil {
			if isNotFound(err) {
				return nil, nil, fmt.Errorf("%w: object %s (deleted meanwhile?)", ErrNotFound, key)
			}
			return nil, nil, fmt.Errorf("objects: get %s: %w", key, err)
		}
		h, err := sealing.ReadHeader(out.Body)
		if err != nil {
			out.Body.Close()
			return nil, nil, fmt.Errorf("objects: %s: %w", key, err)
		}
		return out, h, nil
	}
	out, h, err := get()
	if err != nil {
		return info, 0, false, err
	}
	etag := aws.ToString(out.ETag)
	if h.Generation == k.Generation {
		out.Body.Close()
		info.SealedSize, info.Generation, info.KeyARN = aws.ToInt64(out.ContentLength), h.Generation, h.KeyARN
		return info, 0, false, nil // already there: idempotent
	}
	var meta map[string]string
	if stash {
		// Keep the bytes about to be replaced; then read the object again, and go on only
		// if it is still the version just stashed.
		id, err := newStashID()
		if err != nil {
			out.Body.Close()
			return info, 0, false, err
		}
		sk := s.stashKey(appID, k.Generation, path)
		in := uploadInput(s.cfg.Bucket, sk, io.MultiReader(bytes.NewReader(h.Bytes()), out.Body), aws.ToInt64(out.ContentLength))
		in.Metadata = map[string]string{metaStashID: id}
		_, err = s.tm.UploadObject(ctx, in)
		out.Body.Close()
		if err != nil {
			return info, 0, false, fmt.Errorf("objects: stash %s: %w", key, err)
		}
		meta = map[string]string{metaOrigin: movedOrigin(k.Generation, id)}
		if out, h, err = get(); err != nil {
			return info, 0, false, err
		}
		if aws.ToString(out.ETag) != etag {
			out.Body.Close()
			return info, 0, true, fmt.Errorf("objects: %s changed while it was stashed", key)
		}
	}
	if meta == nil {
		meta = map[string]string{metaOrigin: originRollback}
	}
	defer out.Body.Close()
	exp, err := s.expectFor(ctx, appID, ScopeCMK, h)
	if err != nil {
		return info, 0, false, err
	}
	plain, _, err := sealing.NewReader(ctx, io.MultiReader(bytes.NewReader(h.Bytes()), out.Body), s.cache, exp)
	if err != nil {
		return info, 0, false, fmt.Errorf("objects: %s: %w", key, err)
	}
	var n int64
	sealed, err := s.sealInto(ctx, k, plain, &n)
	if err != nil {
		return info, 0, false, err
	}
	defer sealed.Close()
	cr := &countReader{r: sealed}
	in := uploadInput(s.cfg.Bucket, key, cr, -1)
	in.IfMatch = aws.String(etag)
	in.Metadata = meta
	if _, err := s.tm.UploadObject(ctx, in); err != nil {
		if isConflict(err) {
			return info, 0, true, fmt.Errorf("objects: upload %s: %w", key, err) // written meanwhile: read it again
		}
		return info, 0, false, fmt.Errorf("objects: upload %s: %w", key, err)
	}
	info.SealedSize, info.Size, info.Generation, info.KeyARN = cr.n, n, k.Generation, k.KeyARN
	return info, h.Generation, false, nil
}

// RollbackReencrypt undoes a re-encryption of appID from generation from to generation to
// that was aborted: every CMK-scope object sealed under to is put back under from — from its
// stash copy when it was moved by the re-encryption (no KMS call: this works when to's key is
// revoked), else (written by a client during the re-encryption) opened and sealed again under
// from. An object that cannot be opened (to's key revoked) is left as it is and counted as
// stranded: newer data is never replaced with older data, nor deleted. Objects written
// under from meanwhile are left alone. The call is idempotent and pages through the app's
// objects; the stash is kept (DropReencryptStash deletes it). An error leaves everything
// consistent, and a repeated call carries on.
func (s *S3Source) RollbackReencrypt(ctx context.Context, appID string, from, to int) (RollbackStats, error) {
	if err := validApp(appID); err != nil {
		return RollbackStats{}, err
	}
	if from < 1 || to <= from {
		return RollbackStats{}, &InvalidError{What: fmt.Sprintf("rollback from generation %d to %d", to, from)}
	}
	back, err := s.generationKey(ctx, appID, from, false)
	if err != nil {
		return RollbackStats{}, err
	}
	var (
		st     RollbackStats
		mu     sync.Mutex
		cursor string
	)
	for {
		p, err := s.List(ctx, appID, ScopeCMK, cursor, 1000)
		if err != nil {
			return st, err
		}
		err = fanout.Each(ctx, rollbackWorkers, p.Items, func(ctx context.Context, it Info) error {
			var one RollbackStats
			_, err := s.rollbackOne(ctx, appID, it.Path, it.Key, to, back, &one)
			mu.Lock()
			defer mu.Unlock()
			st.Checked++
			st.Restored += one.Restored
			st.Resealed += one.Resealed
			st.StrandedCount += one.StrandedCount
			if len(st.Stranded) < maxStrandedListed {
				st.Stranded = append(st.Stranded, one.Stranded...)
			}
			if err != nil {
				return fmt.Errorf("objects: rollback %s: %w", it.Key, err)
			}
			return nil
		})
		if err != nil {
			return st, err
		}
		if p.Next == "" {
			return st, nil
		}
		cursor = p.Next
	}
}

// headerRange is enough bytes of an object to hold its sealed header.
const headerRange = "bytes=0-66559"

// rollbackOne puts one object back under back's generation if it is sealed under to, and
// counts what it did in st. It returns whether it changed the object.
func (s *S3Source) rollbackOne(ctx context.Context, appID, path, key string, to int, back wrappedKey, st *RollbackStats) (bool, error) {
	for attempt := 0; ; attempt++ {
		changed, retry, err := s.rollbackOnce(ctx, appID, path, key, to, back, st)
		if retry && attempt < 3 {
			continue
		}
		return changed, err
	}
}

func (s *S3Source) rollbackOnce(ctx context.Context, appID, path, key string, to int, back wrappedKey, st *RollbackStats) (changed, retry bool, err error) {
	out, err := s.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(key), Range: aws.String(headerRange)})
	if err != nil {
		if isNotFound(err) {
			return false, false, nil // deleted meanwhile: nothing to put back
		}
		return false, false, fmt.Errorf("get %s: %w", key, err)
	}
	h, herr := sealing.ReadHeader(out.Body)
	out.Body.Close()
	if herr != nil {
		// Not a sealed object of ours (or damaged): not this rollback's business.
		s.log.WarnContext(ctx, "rollback: unreadable header, left alone", "app", appID, "key", key, "error", herr)
		return false, false, nil
	}
	if h.Generation != to {
		return false, false, nil // never moved, or put back already
	}
	liveETag := aws.ToString(out.ETag)
	if id, ok := strings.CutPrefix(metaGet(out.Metadata, metaOrigin), movedOrigin(to, "")); ok && id != "" {
		restored, retry, err := s.restoreStashed(ctx, appID, path, key, liveETag, id, to)
		if err != nil || retry || restored {
			if restored {
				st.Restored++
			}
			return restored, retry, err
		}
		// No usable stash copy: fall through and seal it again.
	}
	// Written under the pending generation by a client (or its stash copy is gone): open it
	// and seal it under the old generation, if its key still opens it and the old one's is
	// not revoked (B9: nothing new is sealed under a revoked key, whatever a cache holds).
	if back.Revoked {
		return false, false, s.strand(ctx, appID, key, to, st, fmt.Errorf("%w: the key of generation %d is revoked", ErrKeyRevoked, back.Generation))
	}
	_, moved, retry, err := s.moveOnce(ctx, appID, path, key, back, false)
	switch {
	case retry:
		return false, true, err
	case err == nil:
		if moved != 0 {
			st.Resealed++
		}
		return moved != 0, false, nil
	case errors.Is(err, ErrNotFound):
		return false, false, nil
	case errors.Is(err, keys.ErrTransient), ctx.Err() != nil:
		return false, false, err
	case errors.Is(err, keys.ErrRevoked), errors.Is(err, ErrKeyRevoked), errors.Is(err, ErrGenerationNotUsable), errors.Is(err, sealing.ErrWrongKey),
		errors.Is(err, sealing.ErrWrongContext):
		return false, false, s.strand(ctx, appID, key, to, st, err)
	}
	return false, false, err
}

// strand counts an object written during the re-encryption that cannot be put back now.
func (s *S3Source) strand(ctx context.Context, appID, key string, to int, st *RollbackStats, why error) error {
	s.log.WarnContext(ctx, "rollback: object written during the re-encryption cannot be put back now; left under its generation",
		"app", appID, "key", key, "generation", to, "error", why)
	st.StrandedCount++
	if len(st.Stranded) < maxStrandedListed {
		st.Stranded = append(st.Stranded, key)
	}
	return nil
}

// restoreStashed puts the stash copy of the object at key back, if it is the copy the moved
// object names (id) and the live object is still liveETag.
func (s *S3Source) restoreStashed(ctx context.Context, appID, path, key, liveETag, id string, to int) (restored, retry bool, err error) {
	sk := s.stashKey(appID, to, path)
	out, err := s.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(sk)})
	if err != nil {
		if isNotFound(err) {
			return false, false, nil
		}
		return false, false, fmt.Errorf("get %s: %w", sk, err)
	}
	defer out.Body.Close()
	if metaGet(out.Metadata, metaStashID) != id {
		s.log.WarnContext(ctx, "rollback: stash copy is not the one the moved object names", "app", appID, "key", key)
		return false, false, nil
	}
	h, err := sealing.ReadHeader(out.Body)
	if err != nil || h.Generation == to {
		s.log.WarnContext(ctx, "rollback: stash copy unusable", "app", appID, "key", key, "error", err)
		return false, false, nil
	}
	in := uploadInput(s.cfg.Bucket, key, io.MultiReader(bytes.NewReader(h.Bytes()), out.Body), aws.ToInt64(out.ContentLength))
	in.IfMatch = aws.String(liveETag)
	in.Metadata = map[string]string{metaOrigin: originRollback}
	if _, err := s.tm.UploadObject(ctx, in); err != nil {
		if isConflict(err) {
			return false, true, fmt.Errorf("put back %s: written meanwhile: %w", key, err)
		}
		return false, false, fmt.Errorf("put back %s: %w", key, err)
	}
	return true, false, nil
}

// DropReencryptStash deletes the stash of a re-encryption of appID to generation gen and
// returns how many objects it held. Idempotent.
func (s *S3Source) DropReencryptStash(ctx context.Context, appID string, gen int) (int, error) {
	if err := validApp(appID); err != nil {
		return 0, err
	}
	if gen < 1 {
		return 0, &InvalidError{What: "generation " + strconv.Itoa(gen)}
	}
	prefix := s.StashPrefix(appID, gen)
	n := 0
	p := s3.NewListObjectsV2Paginator(s.s3, &s3.ListObjectsV2Input{Bucket: aws.String(s.cfg.Bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return n, fmt.Errorf("objects: list %s: %w", prefix, err)
		}
		if len(page.Contents) == 0 {
			continue
		}
		ids := make([]s3types.ObjectIdentifier, 0, len(page.Contents))
		for _, o := range page.Contents {
			ids = append(ids, s3types.ObjectIdentifier{Key: o.Key})
		}
		out, err := s.s3.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(s.cfg.Bucket),
			Delete: &s3types.Delete{Objects: ids, Quiet: aws.Bool(true)}})
		if err != nil {
			return n, fmt.Errorf("objects: delete stash %s: %w", prefix, err)
		}
		if len(out.Errors) > 0 {
			return n, fmt.Errorf("objects: delete %s: %s", aws.ToString(out.Errors[0].Key), aws.ToString(out.Errors[0].Message))
		}
		n += len(ids)
	}
	return n, nil
}
