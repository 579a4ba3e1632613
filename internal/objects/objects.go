// Package objects is keyline's data source: the apps' sealed objects, and the three
// operations the workflows need from any store (snapshot, restore, re-encrypt). The S3
// implementation (S3Source) is the reference; a platform may plug in its own Source.
//
// Objects live at apps/<appId>/<scope>/<path> in the data bucket. Every object is sealed
// (internal/sealing): CMK-scope objects under the data key of the app's ACTIVE generation
// (Generation.WrappedDataKey, unwrapped once per generation and cached in process memory
// only), managed-scope objects under a per-app managed-scope data key wrapped under the
// provider key. Reads use the generation named in the object's header, so they keep working
// while a re-encryption moves objects to a new generation (B7). A re-encryption keeps each
// moved object's previous sealed bytes in a stash outside the apps' prefix (see
// DefaultStashPrefix), so that an abort can put them back without any KMS call (B8).
package objects

import (
	"context"
	"errors"
	"io"
)

// Scope says which key protects an object.
type Scope string

const (
	// ScopeCMK is data sealed under the app's active key generation (customer key for CMK apps).
	ScopeCMK Scope = "cmk"
	// ScopeManaged is data sealed under the provider key; never altered by a CMK re-encryption (R4).
	ScopeManaged Scope = "managed"
)

// ParseScope parses "cmk" or "managed".
func ParseScope(s string) (Scope, error) {
	switch Scope(s) {
	case ScopeCMK, ScopeManaged:
		return Scope(s), nil
	}
	return "", &InvalidError{What: "scope " + quote(s) + ` (want "cmk" or "managed")`}
}

// Info describes one stored object.
type Info struct {
	AppID string `json:"appId"`
	Scope Scope  `json:"scope"`
	Path  string `json:"path"`
	// Key is the object's key in the data bucket (apps/<appId>/<scope>/<path>).
	Key string `json:"key"`
	// SealedSize is the size at rest (header + sealed body).
	SealedSize int64 `json:"sealedSize"`
	// Size is the plaintext size, when known (Put and Get know it; List does not: -1).
	Size int64 `json:"size"`
	// Generation is the key generation named in the object's header (0 for managed scope,
	// where the provider key's scope key seals it); -1 when not read (List).
	Generation int    `json:"generation"`
	KeyARN     string `json:"keyArn,omitempty"`
}

// Page is one page of a listing; pass Next back as the cursor. Next is empty on the last page.
type Page struct {
	Items []Info `json:"items"`
	Next  string `json:"next,omitempty"`
}

// SnapshotStats summarizes a snapshot written by Snapshot.
type SnapshotStats struct {
	Objects int   `json:"objects"`
	Bytes   int64 `json:"bytes"` // bytes of the record stream written
	// LeftOut counts CMK-scope objects left out because they are sealed under another
	// generation than the app's active one (writes an aborted re-encryption stranded under
	// its revoked key): a snapshot holds only what its backup's generation restores (I4).
	LeftOut int `json:"leftOut,omitempty"`
}

// RestoreStats summarizes a RestoreSnapshot.
type RestoreStats struct {
	Objects  int   `json:"objects"`
	Bytes    int64 `json:"bytes"`    // bytes of the record stream read
	Copied   int   `json:"copied"`   // objects copied verbatim (same app, same active generation)
	Resealed int   `json:"resealed"` // objects opened and sealed again under the target's key
}

// Source is the data-source interface the workflows use.
type Source interface {
	// Put seals r under the key of scope and stores it: CMK scope under the app's active
	// generation, or its PENDING generation while a re-encryption runs (so that nothing written
	// meanwhile is left under the old key); managed scope under the app's managed-scope key.
	Put(ctx context.Context, appID string, scope Scope, path string, r io.Reader) (Info, error)
	// Get opens the object and writes its plaintext to w. Tampering or truncation is an error
	// (sealing's typed errors, wrapped) after which w may have received a prefix: callers that
	// need all-or-nothing buffer or stage.
	Get(ctx context.Context, appID string, scope Scope, path string, w io.Writer) (Info, error)
	// Open opens the object for streaming: its header is read and checked against the lineage
	// before Open returns (Info carries its generation and key; Size is -1), and Read yields
	// only authenticated plaintext, segment by segment. Tampering or truncation surfaces as a
	// Read error; the caller closes the object.
	Open(ctx context.Context, appID string, scope Scope, path string) (*Object, error)
	// List lists an app's objects of one scope ("" = both), limit per page (0 = 1000).
	List(ctx context.Context, appID string, scope Scope, cursor string, limit int) (Page, error)
	// Delete removes an object; deleting a missing object is not an error.
	Delete(ctx context.Context, appID string, scope Scope, path string) error
	// Snapshot writes the app's objects to w as a record stream (path, scope, generation,
	// sealed bytes verbatim): no KMS call, memory bounded by one part buffer.
	Snapshot(ctx context.Context, appID string, w io.Writer) (SnapshotStats, error)
	// RestoreSnapshot reads a record stream from r and writes every object into targetApp:
	// verbatim when the record's app and generation are targetApp's active ones, else opened and
	// sealed again under targetApp's key for its scope. A malformed stream is an error
	// (ErrCorruptSnapshot); objects already written stay written (use a staging target for
	// all-or-nothing, see WithPrefix).
	RestoreSnapshot(ctx context.Context, targetApp string, r io.Reader) (RestoreStats, error)
	// ReencryptObject moves one CMK-scope object (its bucket key, as List returns it, or its
	// path) to generation toGeneration: opened with the generation in its header, sealed
	// under toGeneration's data key. An object already at toGeneration is left alone
	// (idempotent). Managed-scope objects are refused (R4). The object's previous sealed bytes
	// are kept in a stash outside the apps' objects (never listed, backed up or re-encrypted)
	// until DropReencryptStash, so that an abort can put them back without any KMS call (B8).
	ReencryptObject(ctx context.Context, appID, key string, toGeneration int) (Info, error)
	// RollbackReencrypt undoes an aborted re-encryption from generation from to generation to:
	// every CMK-scope object under to goes back under from (its stash copy, or sealed again
	// when a client wrote it meanwhile); objects that cannot be opened are left as they are
	// and reported as stranded. Idempotent.
	RollbackReencrypt(ctx context.Context, appID string, from, to int) (RollbackStats, error)
	// DropReencryptStash deletes the stash of a re-encryption to generation gen (after its
	// commit or its rollback) and returns how many objects it held. Idempotent.
	DropReencryptStash(ctx context.Context, appID string, gen int) (int, error)
}

// Errors. Check with errors.Is / errors.As.
var (
	// ErrNotFound: no such object (or app, or generation).
	ErrNotFound = errors.New("objects: not found")
	// ErrCorruptSnapshot: a snapshot record stream is malformed or truncated.
	ErrCorruptSnapshot = errors.New("objects: corrupt snapshot stream")
	// ErrScopeNotAllowed: the scope does not fit the app (a managed app has no CMK scope) or
	// the operation (re-encrypting a managed-scope object, R4).
	ErrScopeNotAllowed = errors.New("objects: scope not allowed")
	// ErrGenerationNotUsable: the generation is not ACTIVE/PENDING (retired or revoked) for a write.
	ErrGenerationNotUsable = errors.New("objects: generation not usable")
	// ErrAppNotWritable: the app is deactivated.
	ErrAppNotWritable = errors.New("objects: app not writable")
	// ErrKeyRevoked: the data is sealed under a key whose revocation was applied, or the app
	// is deactivated; nothing sealed under it is served (B9).
	ErrKeyRevoked = errors.New("objects: key revoked")
	// ErrInvalid: bad input (empty or unsafe path, unknown scope); nothing changed.
	ErrInvalid = errors.New("objects: invalid input")
)

// InvalidError is bad input; errors.Is(err, ErrInvalid) holds.
type InvalidError struct{ What string }

func (e *InvalidError) Error() string        { return "objects: invalid " + e.What }
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

func quote(s string) string { return `"` + s + `"` }

// compile-time check of the reference implementation.
var _ Source = (*S3Source)(nil)

// Object is an opened object: Read yields its authenticated plaintext (see Source.Open).
type Object struct {
	Info
	r    io.Reader
	body io.Closer
}

// Read reads plaintext; an error means the stored object is damaged, truncated or no longer
// readable, and the bytes read so far must not be taken as the whole object.
func (o *Object) Read(p []byte) (int, error) { return o.r.Read(p) }

// Close releases the object's stored body.
func (o *Object) Close() error { return o.body.Close() }
