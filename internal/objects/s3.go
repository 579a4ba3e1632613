package objects

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/keyline/keyline/internal/clock"
	"github.com/keyline/keyline/internal/decl"
	"github.com/keyline/keyline/internal/keys"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/sealing"
)

// Lineage is what the S3 source needs of the lineage store (*lineage.Store satisfies it).
type Lineage interface {
	GetApp(ctx context.Context, appID string) (lineage.App, error)
	GetGeneration(ctx context.Context, appID string, n int) (lineage.Generation, error)
	// GetScopeKey and CreateScopeKey keep each app's managed-scope wrapped key.
	GetScopeKey(ctx context.Context, appID, scope string) (lineage.ScopeKey, error)
	CreateScopeKey(ctx context.Context, k lineage.ScopeKey) error
}

// Multipart upload defaults, for objects and for backups alike (the deployment may set
// its own per function: infra's KEYLINE_PART_SIZE_MIB and KEYLINE_UPLOAD_CONCURRENCY).
const (
	// DefaultPartSize is the size of each part of a multipart upload.
	DefaultPartSize = decl.PartSizeMiB << 20
	// DefaultConcurrency is how many parts of one upload are sent at once.
	DefaultConcurrency = decl.UploadConcurrency
)

// Config configures an S3Source.
type Config struct {
	S3     *s3.Client
	Bucket string
	// Prefix roots the objects (default "apps/"): keys are <Prefix><appId>/<scope>/<path>.
	Prefix string
	// StashPrefix roots the re-encryption stash (default "reencrypt-stash/"): the sealed bytes
	// an object had before a re-encryption moved it, kept at
	// <StashPrefix><appId>/<generation>/<scope>/<path> until the re-encryption commits or
	// aborts. It must lie outside Prefix, so that listings, snapshots and the re-encryption's
	// own Map never see it.
	StashPrefix string
	// Lineage is the lineage store: apps, generations and the managed-scope key items.
	Lineage        Lineage
	Keys           keys.Provider
	ProviderKeyARN string
	// PartSize and Concurrency tune multipart uploads (defaults DefaultPartSize and
	// DefaultConcurrency).
	PartSize    int64
	Concurrency int
	Logger      *slog.Logger
	Clock       clock.Clock
}

// S3Source is the reference data source on S3. It is safe for concurrent use; Close destroys
// its cached data keys.
type S3Source struct {
	cfg    Config
	s3     *s3.Client
	tm     *transfermanager.Client
	cache  *sealing.CachingUnwrapper
	scopes *scopeKeys
	orgs   *orgCache
	log    *slog.Logger
	clock  clock.Clock
}

// NewS3 returns the S3 source.
func NewS3(cfg Config) (*S3Source, error) {
	if cfg.S3 == nil || cfg.Bucket == "" || cfg.Lineage == nil || cfg.Keys == nil {
		return nil, errors.New("objects: S3 source needs an S3 client, a bucket, the lineage store and a key provider")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "apps/"
	}
	if cfg.StashPrefix == "" {
		cfg.StashPrefix = DefaultStashPrefix
	}
	if strings.HasPrefix(cfg.StashPrefix, cfg.Prefix) || strings.HasPrefix(cfg.Prefix, cfg.StashPrefix) {
		return nil, fmt.Errorf("objects: stash prefix %q overlaps the objects' prefix %q", cfg.StashPrefix, cfg.Prefix)
	}
	if cfg.PartSize <= 0 {
		cfg.PartSize = DefaultPartSize
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	src := &S3Source{
		cfg:   cfg,
		s3:    cfg.S3,
		cache: sealing.NewCachingUnwrapper(sealing.ProviderUnwrapper(cfg.Keys)),
		log:   cfg.Logger,
		clock: cfg.Clock,
	}
	src.orgs = &orgCache{orgs: map[string]string{}}
	src.scopes = &scopeKeys{store: cfg.Lineage, providerKey: cfg.ProviderKeyARN, keys: cfg.Keys,
		now: cfg.Clock.Now, cache: map[string]wrappedKey{}}
	src.tm = newTransfer(cfg.S3, cfg.PartSize, cfg.Concurrency)
	return src, nil
}

func newTransfer(c *s3.Client, partSize int64, conc int) *transfermanager.Client {
	calc := c.Options().RequestChecksumCalculation
	return transfermanager.New(c, func(o *transfermanager.Options) {
		o.PartSizeBytes = partSize
		o.MultipartUploadThreshold = partSize
		o.Concurrency = conc
		if calc != aws.RequestChecksumCalculationUnset {
			o.RequestChecksumCalculation = calc
		}
	})
}

// WithPrefix returns a view of the same store rooted at prefix instead (sharing clients and
// key caches), e.g. "drills/<drillId>/" for a drill's scratch target.
func (s *S3Source) WithPrefix(prefix string) *S3Source {
	c := *s
	c.cfg.Prefix = prefix
	return &c
}

// Prefix is the key prefix objects are rooted at.
func (s *S3Source) Prefix() string { return s.cfg.Prefix }

// Bucket is the data bucket.
func (s *S3Source) Bucket() string { return s.cfg.Bucket }

// Unwrapper is the source's caching unwrapper (one KMS Decrypt per distinct data key).
func (s *S3Source) Unwrapper() sealing.Unwrapper { return s.cache }

// Close destroys the cached plaintext data keys.
func (s *S3Source) Close() { s.cache.Close() }

func validPath(p string) error {
	switch {
	case p == "":
		return errors.New("empty path")
	case len(p) > 1024:
		return errors.New("path longer than 1024 bytes")
	case strings.HasPrefix(p, "/"), strings.HasSuffix(p, "/"), strings.Contains(p, "//"):
		return fmt.Errorf("path %q has an empty segment", p)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return fmt.Errorf("path %q has a %q segment", p, seg)
		}
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("path %q has a control character", p)
		}
	}
	return nil
}

func validApp(appID string) error {
	if appID == "" || strings.ContainsAny(appID, "/#") || len(appID) > 256 {
		return &InvalidError{What: "app id " + quote(appID)}
	}
	return nil
}

func (s *S3Source) appPrefix(appID string) string { return s.cfg.Prefix + appID + "/" }

func (s *S3Source) objectKey(appID string, scope Scope, path string) string {
	return s.appPrefix(appID) + string(scope) + "/" + path
}

// parseKey splits a bucket key of this source into app, scope and path.
func (s *S3Source) parseKey(key string) (appID string, scope Scope, path string, ok bool) {
	rest, found := strings.CutPrefix(key, s.cfg.Prefix)
	if !found {
		return "", "", "", false
	}
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) != 3 {
		return "", "", "", false
	}
	sc, err := ParseScope(parts[1])
	if err != nil {
		return "", "", "", false
	}
	return parts[0], sc, parts[2], true
}

// writeKey returns the wrapped key new data of scope is sealed under in the app: for CMK scope
// the active generation's (the pending one while re-encrypting, so that nothing written during
// a re-encryption is left behind); for managed scope the app's managed-scope key.
func (s *S3Source) writeKey(ctx context.Context, appID string, scope Scope) (wrappedKey, error) {
	app, err := s.cfg.Lineage.GetApp(ctx, appID)
	if err != nil {
		return wrappedKey{}, mapLineage(err)
	}
	if app.Status == lineage.AppDeactivated {
		return wrappedKey{}, fmt.Errorf("%w: app %s is deactivated (%s)", ErrAppNotWritable, appID, app.StatusReason)
	}
	switch scope {
	case ScopeManaged:
		return s.scopes.get(ctx, app.OrgID, appID, true)
	case ScopeCMK:
		if app.KeyModel != lineage.KeyModelCMK {
			return wrappedKey{}, fmt.Errorf("%w: app %s uses the provider-managed key model and has no CMK scope", ErrScopeNotAllowed, appID)
		}
		n := app.ActiveGeneration
		if app.Status == lineage.AppReencrypting && app.PendingGeneration > 0 {
			n = app.PendingGeneration
		}
		return s.generationKey(ctx, appID, n, true)
	}
	return wrappedKey{}, &InvalidError{What: "scope " + quote(string(scope))}
}

// generationKey returns generation n's wrapped data key; forWrite requires it ACTIVE or PENDING.
func (s *S3Source) generationKey(ctx context.Context, appID string, n int, forWrite bool) (wrappedKey, error) {
	gen, err := s.cfg.Lineage.GetGeneration(ctx, appID, n)
	if err != nil {
		return wrappedKey{}, mapLineage(err)
	}
	if forWrite && !gen.Usable() {
		if gen.KeyRevoked {
			return wrappedKey{}, fmt.Errorf("%w: %w: generation %d of app %s: %s", ErrGenerationNotUsable, ErrKeyRevoked, n, appID, gen.KeyReason)
		}
		return wrappedKey{}, fmt.Errorf("%w: generation %d of app %s is %s", ErrGenerationNotUsable, n, appID, gen.State)
	}
	if len(gen.WrappedDataKey) == 0 {
		return wrappedKey{}, fmt.Errorf("%w: generation %d of app %s has no data key", ErrGenerationNotUsable, n, appID)
	}
	return wrappedKey{KeyARN: gen.KeyARN, Context: GenerationContext(gen.OrgID, appID, n), Wrapped: gen.WrappedDataKey, Generation: n, Revoked: gen.KeyRevoked}, nil
}

func mapLineage(err error) error {
	if errors.Is(err, lineage.ErrNotFound) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}

// expectFor returns what an object of appID in scope with header h must carry.
func (s *S3Source) expectFor(ctx context.Context, appID string, scope Scope, h *sealing.Header) (sealing.Expect, error) {
	switch scope {
	case ScopeManaged:
		org, err := s.orgOf(ctx, appID)
		if err != nil {
			return sealing.Expect{}, err
		}
		return sealing.Expect{KeyARN: s.cfg.ProviderKeyARN, EncryptionContext: ManagedScopeContext(org, appID)}, nil
	default:
		if h.Generation < 1 {
			return sealing.Expect{}, fmt.Errorf("%w: CMK-scope object names generation %d", sealing.ErrWrongContext, h.Generation)
		}
		gen, err := s.cfg.Lineage.GetGeneration(ctx, appID, h.Generation)
		if err != nil {
			return sealing.Expect{}, mapLineage(err)
		}
		if gen.KeyRevoked || gen.State == lineage.GenRevoked {
			// B9: the key item is the key state every process reads before serving: whatever
			// a cache still holds, nothing sealed under a revoked key is opened. (A REVOKED
			// generation is an item written before the key item existed.)
			reason := gen.KeyReason
			if reason == "" {
				reason = gen.StateReason
			}
			return sealing.Expect{}, fmt.Errorf("%w: generation %d of app %s: key %s revoked (%s)", ErrKeyRevoked, h.Generation, appID, gen.KeyARN, reason)
		}
		return sealing.Expect{KeyARN: gen.KeyARN, Generation: h.Generation, EncryptionContext: GenerationContext(gen.OrgID, appID, h.Generation)}, nil
	}
}

// sealInto returns a reader of plaintext sealed under k, fed by copying from plain in a goroutine.
func (s *S3Source) sealInto(ctx context.Context, k wrappedKey, plain io.Reader, n *int64) (io.ReadCloser, error) {
	dk, err := s.cache.Unwrap(ctx, k.header())
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	go func() {
		defer dk.Destroy()
		w, err := sealing.NewWriter(ctx, pw, dk, sealing.HeaderFields{KeyARN: k.KeyARN, Generation: k.Generation, EncryptionContext: k.Context})
		if err != nil {
			pw.CloseWithError(err)
			return
		}
		c, err := io.Copy(w, plain)
		if n != nil {
			*n = c
		}
		if err != nil {
			pw.CloseWithError(err)
			return
		}
		pw.CloseWithError(w.Close())
	}()
	return pr, nil
}

// uploadInput is an upload of body to key; size < 0 when unknown.
func uploadInput(bucket, key string, body io.Reader, size int64) *transfermanager.UploadObjectInput {
	in := &transfermanager.UploadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: body}
	if size >= 0 {
		in.ContentLength = aws.Int64(size)
	}
	return in
}

func (s *S3Source) upload(ctx context.Context, key string, body io.Reader, size int64, ifMatch string) (int64, error) {
	cr := &countReader{r: body}
	in := uploadInput(s.cfg.Bucket, key, cr, size)
	in.Metadata = map[string]string{metaOrigin: originWrite}
	if ifMatch != "" {
		in.IfMatch = aws.String(ifMatch)
	}
	_, err := s.tm.UploadObject(ctx, in)
	if err != nil {
		return cr.n, fmt.Errorf("objects: upload %s: %w", key, err)
	}
	return cr.n, nil
}

// Put implements Source.
func (s *S3Source) Put(ctx context.Context, appID string, scope Scope, path string, r io.Reader) (Info, error) {
	if err := validApp(appID); err != nil {
		return Info{}, err
	}
	if err := validPath(path); err != nil {
		return Info{}, &InvalidError{What: err.Error()}
	}
	if _, err := ParseScope(string(scope)); err != nil {
		return Info{}, err
	}
	k, err := s.writeKey(ctx, appID, scope)
	if err != nil {
		return Info{}, err
	}
	var plainN int64
	sealed, err := s.sealInto(ctx, k, r, &plainN)
	if err != nil {
		return Info{}, err
	}
	defer sealed.Close()
	key := s.objectKey(appID, scope, path)
	n, err := s.upload(ctx, key, sealed, -1, "")
	if err != nil {
		return Info{}, err
	}
	info := Info{AppID: appID, Scope: scope, Path: path, Key: key, SealedSize: n, Size: plainN, Generation: k.Generation, KeyARN: k.KeyARN}
	if scope == ScopeCMK {
		moved, err := s.settle(ctx, appID, path, key, k.Generation)
		if err != nil {
			return Info{}, err
		}
		if moved.Generation > 0 {
			info.Generation, info.KeyARN, info.SealedSize = moved.Generation, moved.KeyARN, moved.SealedSize
		}
	}
	return info, nil
}

// maxSettleRounds bounds how often settle follows a lineage that keeps changing under a write.
const maxSettleRounds = 4

// settle runs after a CMK-scope write sealed under generation wrote: if a re-encryption
// began, committed or aborted while the object was being written, the object is moved to the
// generation writes go to now, so that nothing acknowledged stays under a generation a
// commit retired (I3). While a re-encryption runs the move keeps the object's previous
// sealing in the stash, like the re-encryption's own moves, so an abort puts it back.
func (s *S3Source) settle(ctx context.Context, appID, path, key string, wrote int) (Info, error) {
	var last Info
	for range maxSettleRounds {
		app, err := s.cfg.Lineage.GetApp(ctx, appID)
		if err != nil {
			return last, mapLineage(err)
		}
		cur := app.ActiveGeneration
		if app.Status == lineage.AppReencrypting && app.PendingGeneration > 0 {
			cur = app.PendingGeneration
		}
		if cur == wrote {
			// Stored where writes go. A revocation applied while the bytes travelled does not
			// undo them (the write read the key state before it sealed anything, B9), and a
			// refusal now would be a lie: the object is replaced, the previous one gone (I6).
			return last, nil
		}
		if app.Status == lineage.AppDeactivated {
			return last, fmt.Errorf("%w: app %s was deactivated while the object was written under generation %d, and writes now go to generation %d (%s)",
				ErrAppNotWritable, appID, wrote, cur, app.StatusReason)
		}
		k, err := s.generationKey(ctx, appID, cur, true)
		if err != nil {
			return last, err
		}
		info, _, retry, err := s.moveOnce(ctx, appID, path, key, k, app.Status == lineage.AppReencrypting)
		if err != nil && !retry {
			if errors.Is(err, ErrNotFound) {
				return last, nil // replaced or deleted meanwhile: that write settles itself
			}
			return last, fmt.Errorf("objects: %s written under generation %d while the app moved to %d: %w", key, wrote, cur, err)
		}
		if err == nil {
			last, wrote = info, cur
		}
	}
	return last, fmt.Errorf("objects: %s: the app's key lineage kept changing while it was written; retry", key)
}

// SweepReencrypt moves every CMK-scope object of appID not sealed under generation to to it
// (stashing its previous sealing, as ReencryptObject does) and returns how many it moved and
// how many it found under to already. A re-encryption calls it before its commit so that
// writes that raced its listing are not left under the old generation (I3).
func (s *S3Source) SweepReencrypt(ctx context.Context, appID string, to int) (moved, at int, err error) {
	cursor := ""
	for {
		p, err := s.List(ctx, appID, ScopeCMK, cursor, 1000)
		if err != nil {
			return moved, at, err
		}
		for _, it := range p.Items {
			info, err := s.ReencryptObject(ctx, appID, it.Key, to)
			switch {
			case errors.Is(err, ErrNotFound):
				continue
			case err != nil:
				return moved, at, err
			case info.Size < 0: // already there (a move reports the plaintext size)
				at++
			default:
				moved++
			}
		}
		if p.Next == "" {
			return moved, at, nil
		}
		cursor = p.Next
	}
}

func isNotFound(err error) bool {
	var nsk *s3types.NoSuchKey
	var nf *s3types.NotFound
	var re *smithyhttp.ResponseError
	return errors.As(err, &nsk) || errors.As(err, &nf) || (errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound)
}

// open reads an object's header and returns a plaintext reader checked against the lineage.
func (s *S3Source) open(ctx context.Context, appID string, scope Scope, key string, body io.Reader) (io.Reader, *sealing.Header, error) {
	h, err := sealing.ReadHeader(body)
	if err != nil {
		return nil, nil, fmt.Errorf("objects: %s: %w", key, err)
	}
	exp, err := s.expectFor(ctx, appID, scope, h)
	if err != nil {
		return nil, h, fmt.Errorf("objects: %s: %w", key, err)
	}
	pr, h2, err := sealing.NewReader(ctx, io.MultiReader(bytes.NewReader(h.Bytes()), body), s.cache, exp)
	if err != nil {
		return nil, h, fmt.Errorf("objects: %s: %w", key, err)
	}
	return pr, h2, nil
}

// Get implements Source.
func (s *S3Source) Get(ctx context.Context, appID string, scope Scope, path string, w io.Writer) (Info, error) {
	o, err := s.Open(ctx, appID, scope, path)
	if err != nil {
		return Info{}, err
	}
	defer o.Close()
	n, err := io.Copy(w, o)
	if err != nil {
		return Info{}, fmt.Errorf("objects: read %s: %w", o.Key, err)
	}
	info := o.Info
	info.Size = n
	return info, nil
}

// Open implements Source.
func (s *S3Source) Open(ctx context.Context, appID string, scope Scope, path string) (*Object, error) {
	if err := validApp(appID); err != nil {
		return nil, err
	}
	if err := validPath(path); err != nil {
		return nil, &InvalidError{What: err.Error()}
	}
	if _, err := ParseScope(string(scope)); err != nil {
		return nil, err
	}
	if scope == ScopeCMK {
		app, err := s.cfg.Lineage.GetApp(ctx, appID)
		if err != nil {
			return nil, mapLineage(err)
		}
		if app.Status == lineage.AppDeactivated {
			return nil, fmt.Errorf("%w: app %s is deactivated (%s): its CMK data is not served", ErrKeyRevoked, appID, app.StatusReason)
		}
	}
	key := s.objectKey(appID, scope, path)
	out, err := s.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(key)})
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("%w: object %s/%s of app %s", ErrNotFound, scope, path, appID)
		}
		return nil, fmt.Errorf("objects: get %s: %w", key, err)
	}
	pr, h, err := s.open(ctx, appID, scope, key, out.Body)
	if err != nil {
		out.Body.Close()
		return nil, err
	}
	return &Object{
		Info: Info{AppID: appID, Scope: scope, Path: path, Key: key, SealedSize: aws.ToInt64(out.ContentLength), Size: -1,
			Generation: h.Generation, KeyARN: h.KeyARN},
		r: pr, body: out.Body,
	}, nil
}

// List implements Source. The cursor is the last key returned.
func (s *S3Source) List(ctx context.Context, appID string, scope Scope, cursor string, limit int) (Page, error) {
	if err := validApp(appID); err != nil {
		return Page{}, err
	}
	prefix := s.appPrefix(appID)
	if scope != "" {
		if _, err := ParseScope(string(scope)); err != nil {
			return Page{}, err
		}
		prefix += string(scope) + "/"
	}
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	in := &s3.ListObjectsV2Input{Bucket: aws.String(s.cfg.Bucket), Prefix: aws.String(prefix), MaxKeys: aws.Int32(int32(limit))}
	if cursor != "" {
		if !strings.HasPrefix(cursor, prefix) {
			return Page{}, &InvalidError{What: "cursor " + quote(cursor)}
		}
		in.StartAfter = aws.String(cursor)
	}
	out, err := s.s3.ListObjectsV2(ctx, in)
	if err != nil {
		return Page{}, fmt.Errorf("objects: list %s: %w", prefix, err)
	}
	var p Page
	for _, o := range out.Contents {
		key := aws.ToString(o.Key)
		app, sc, path, ok := s.parseKey(key)
		if !ok || app != appID {
			continue
		}
		p.Items = append(p.Items, Info{AppID: appID, Scope: sc, Path: path, Key: key, SealedSize: aws.ToInt64(o.Size), Size: -1, Generation: -1})
	}
	if aws.ToBool(out.IsTruncated) && len(out.Contents) > 0 {
		p.Next = aws.ToString(out.Contents[len(out.Contents)-1].Key)
	}
	return p, nil
}

// Delete implements Source.
func (s *S3Source) Delete(ctx context.Context, appID string, scope Scope, path string) error {
	if err := validApp(appID); err != nil {
		return err
	}
	if err := validPath(path); err != nil {
		return &InvalidError{What: err.Error()}
	}
	if _, err := ParseScope(string(scope)); err != nil {
		return err
	}
	key := s.objectKey(appID, scope, path)
	if _, err := s.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(key)}); err != nil && !isNotFound(err) {
		return fmt.Errorf("objects: delete %s: %w", key, err)
	}
	return nil
}

// DeleteAll deletes every object of the app under this source's prefix and returns how many.
func (s *S3Source) DeleteAll(ctx context.Context, appID string) (int, error) {
	if err := validApp(appID); err != nil {
		return 0, err
	}
	n := 0
	cursor := ""
	for {
		p, err := s.List(ctx, appID, "", cursor, 1000)
		if err != nil {
			return n, err
		}
		if len(p.Items) > 0 {
			ids := make([]s3types.ObjectIdentifier, 0, len(p.Items))
			for _, it := range p.Items {
				ids = append(ids, s3types.ObjectIdentifier{Key: aws.String(it.Key)})
			}
			out, err := s.s3.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(s.cfg.Bucket),
				Delete: &s3types.Delete{Objects: ids, Quiet: aws.Bool(true)}})
			if err != nil {
				return n, fmt.Errorf("objects: delete objects of %s: %w", appID, err)
			}
			if len(out.Errors) > 0 {
				return n, fmt.Errorf("objects: delete %s: %s", aws.ToString(out.Errors[0].Key), aws.ToString(out.Errors[0].Message))
			}
			n += len(ids)
		}
		if p.Next == "" {
			return n, nil
		}
		cursor = p.Next
	}
}

// fetched is one object opened ahead of its turn in a snapshot.
type fetched struct {
	info Info
	out  *s3.GetObjectOutput
	err  error
}

// Snapshot implements Source. Up to a few object bodies are opened ahead, so that small
// objects do not pay one round trip each; memory stays at a few connection buffers.
func (s *S3Source) Snapshot(ctx context.Context, appID string, w io.Writer) (SnapshotStats, error) {
	if err := validApp(appID); err != nil {
		return SnapshotStats{}, err
	}
	// Only what the active generation opens goes in (I4): the backup is recorded under that
	// generation, and a backup listed restorable must restore. While the backup holds its
	// lease no re-encryption begins, so the active generation does not change meanwhile.
	// (A snapshot taken during a re-encryption, which no backup does, also holds the
	// objects already moved to the pending generation.)
	app, err := s.cfg.Lineage.GetApp(ctx, appID)
	if err != nil {
		return SnapshotStats{}, fmt.Errorf("objects: snapshot of %s: %w", appID, mapLineage(err))
	}
	sw, err := NewSnapshotWriter(w, appID)
	if err != nil {
		return SnapshotStats{}, err
	}
	leftOut := 0
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	const ahead = 4
	futures := make(chan chan fetched, ahead)
	listErr := make(chan error, 1)
	go func() {
		defer close(futures)
		cursor := ""
		for {
			p, err := s.List(ctx, appID, "", cursor, 1000)
			if err != nil {
				listErr <- err
				return
			}
			for _, it := range p.Items {
				f := make(chan fetched, 1)
				select {
				case futures <- f:
				case <-ctx.Done():
					return
				}
				go func(it Info) {
					out, err := s.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(it.Key)})
					f <- fetched{info: it, out: out, err: err}
				}(it)
			}
			if p.Next == "" {
				listErr <- nil
				return
			}
			cursor = p.Next
		}
	}()
	drain := func() {
		cancel()
		for f := range futures {
			if r := <-f; r.out != nil {
				r.out.Body.Close()
			}
		}
	}
	lastLog := s.clock.Now()
	for f := range futures {
		r := <-f
		if r.err != nil && isNotFound(r.err) {
			// Deleted between the listing and the read: not part of this snapshot.
			s.log.InfoContext(ctx, "snapshot: object deleted meanwhile, left out", "app", appID, "key", r.info.Key)
			continue
		}
		if r.err != nil {
			drain()
			return SnapshotStats{}, fmt.Errorf("objects: snapshot of %s: get %s: %w", appID, r.info.Key, r.err)
		}
		in, err := s.snapshotOne(sw, r, app.ActiveGeneration, app.PendingGeneration)
		r.out.Body.Close()
		if err != nil {
			drain()
			return SnapshotStats{}, fmt.Errorf("objects: snapshot of %s: %w", appID, err)
		}
		if !in {
			leftOut++
		}
		if now := s.clock.Now(); now.Sub(lastLog) >= 10*time.Second {
			lastLog = now
			st := sw.Stats()
			s.log.InfoContext(ctx, "snapshot progress", "app", appID, "objects", st.Objects, "bytes", st.Bytes)
		}
	}
	if err := <-listErr; err != nil {
		return SnapshotStats{}, fmt.Errorf("objects: snapshot of %s: %w", appID, err)
	}
	if err := sw.Close(); err != nil {
		return SnapshotStats{}, err
	}
	st := sw.Stats()
	st.LeftOut = leftOut
	return st, nil
}

// snapshotOne writes one fetched object into the snapshot, or leaves it out (false) when it
// is a CMK-scope object sealed under another generation than active (or pending, when a
// re-encryption introduces one).
func (s *S3Source) snapshotOne(sw *SnapshotWriter, r fetched, active, pending int) (bool, error) {
	size := aws.ToInt64(r.out.ContentLength)
	h, err := sealing.ReadHeader(r.out.Body)
	if err != nil {
		return false, fmt.Errorf("%s: %w", r.info.Key, err)
	}
	gen := h.Generation
	if r.info.Scope == ScopeManaged {
		gen = 0
	} else if gen != active && (pending == 0 || gen != pending) {
		s.log.Warn("snapshot: object sealed under another generation than the active one, left out",
			"key", r.info.Key, "generation", gen, "activeGeneration", active, "keyArn", h.KeyARN)
		return false, nil
	}
	hb := h.Bytes()
	if int64(len(hb)) > size {
		return false, fmt.Errorf("%s: %w: header longer than the object", r.info.Key, sealing.ErrTruncated)
	}
	return true, sw.WriteRecord(Record{Path: r.info.Path, Scope: r.info.Scope, Generation: gen, SealedSize: size},
		io.MultiReader(bytes.NewReader(hb), r.out.Body))
}

// targetKeys are the keys a restore writes under, by scope, looked up once.
type targetKeys struct {
	cmk, managed *wrappedKey
}

// RestoreSnapshot implements Source.
func (s *S3Source) RestoreSnapshot(ctx context.Context, targetApp string, r io.Reader) (RestoreStats, error) {
	if err := validApp(targetApp); err != nil {
		return RestoreStats{}, err
	}
	sr, err := NewSnapshotReader(r)
	if err != nil {
		return RestoreStats{}, err
	}
	source := sr.AppID()
	var tk targetKeys
	var st RestoreStats
	lastLog := s.clock.Now()
	for {
		rec, body, err := sr.Next()
		if err == io.EOF {
			st.Bytes = sr.BytesRead()
			return st, nil
		}
		if err != nil {
			return st, err
		}
		copied, err := s.restoreOne(ctx, source, targetApp, &tk, rec, body)
		if err != nil {
			return st, fmt.Errorf("objects: restore %s/%s into %s: %w", rec.Scope, rec.Path, targetApp, err)
		}
		st.Objects++
		if copied {
			st.Copied++
		} else {
			st.Resealed++
		}
		if now := s.clock.Now(); now.Sub(lastLog) >= 10*time.Second {
			lastLog = now
			s.log.InfoContext(ctx, "restore progress", "app", targetApp, "objects", st.Objects, "bytes", sr.BytesRead())
		}
	}
}

func (s *S3Source) restoreOne(ctx context.Context, source, target string, tk *targetKeys, rec Record, body io.Reader) (bool, error) {
	h, err := sealing.ReadHeader(body)
	if err != nil {
		return false, err
	}
	if h.EncryptionContext[keys.ContextKeyApp] != source {
		return false, fmt.Errorf("%w: record sealed for app %q inside a snapshot of %q", ErrCorruptSnapshot, h.EncryptionContext[keys.ContextKeyApp], source)
	}
	sourceOrg, err := s.orgOf(ctx, source)
	if err != nil {
		return false, err
	}
	var want sealing.Expect
	var slot **wrappedKey
	switch rec.Scope {
	case ScopeManaged:
		want = sealing.Expect{KeyARN: h.KeyARN, EncryptionContext: ManagedScopeContext(sourceOrg, source)}
		slot = &tk.managed
	default:
		want = sealing.Expect{KeyARN: h.KeyARN, Generation: h.Generation, EncryptionContext: GenerationContext(sourceOrg, source, h.Generation)}
		slot = &tk.cmk
	}
	if *slot == nil {
		k, err := s.writeKey(ctx, target, rec.Scope)
		if err != nil {
			return false, err
		}
		*slot = &k
	}
	k := **slot
	full := io.MultiReader(bytes.NewReader(h.Bytes()), body)
	key := s.objectKey(target, rec.Scope, rec.Path)
	if h.KeyARN == k.KeyARN && bytes.Equal(h.WrappedKey, k.Wrapped) && maps.Equal(h.EncryptionContext, k.Context) {
		_, err := s.upload(ctx, key, full, rec.SealedSize, "")
		return true, err
	}
	plain, _, err := sealing.NewReader(ctx, full, s.cache, want)
	if err != nil {
		return false, err
	}
	sealed, err := s.sealInto(ctx, k, plain, nil)
	if err != nil {
		return false, err
	}
	defer sealed.Close()
	_, err = s.upload(ctx, key, sealed, -1, "")
	return false, err
}

// VerifySnapshot reads a record stream to its end and opens every object in it (authenticating
// each body), writing nothing. It returns the stream's stats; any defect is an error.
func (s *S3Source) VerifySnapshot(ctx context.Context, r io.Reader) (SnapshotStats, error) {
	sr, err := NewSnapshotReader(r)
	if err != nil {
		return SnapshotStats{}, err
	}
	source := sr.AppID()
	sourceOrg, err := s.orgOf(ctx, source)
	if err != nil {
		return SnapshotStats{}, err
	}
	for {
		rec, body, err := sr.Next()
		if err == io.EOF {
			return SnapshotStats{Objects: sr.Objects(), Bytes: sr.BytesRead()}, nil
		}
		if err != nil {
			return SnapshotStats{}, err
		}
		var want sealing.Expect
		switch rec.Scope {
		case ScopeManaged:
			want = sealing.Expect{EncryptionContext: ManagedScopeContext(sourceOrg, source)}
		default:
			want = sealing.Expect{Generation: rec.Generation, EncryptionContext: GenerationContext(sourceOrg, source, rec.Generation)}
		}
		plain, _, err := sealing.NewReader(ctx, body, s.cache, want)
		if err == nil {
			_, err = io.Copy(io.Discard, plain)
		}
		if err != nil {
			return SnapshotStats{}, fmt.Errorf("objects: snapshot object %s/%s: %w", rec.Scope, rec.Path, err)
		}
	}
}
