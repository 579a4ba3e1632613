// Package backup holds the steps of the "backup" state machine (DESIGN §4, R2, R5, R8):
// list due apps → per app: take the backup lease (or record the skip) → seal a snapshot under
// the active generation and upload it (multipart, streamed) → record it only if that generation
// is still active (else discard it and record the skip); a Catch path releases the lease.
//
// Every step is idempotent: the backup id is derived from the execution and the app, so a
// step delivered twice does the same thing twice, or nothing the second time.
package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/keyline/keyline/internal/audit"
	"github.com/keyline/keyline/internal/clock"
	"github.com/keyline/keyline/internal/decl"
	"github.com/keyline/keyline/internal/keys"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/objects"
	"github.com/keyline/keyline/internal/sealing"
	"github.com/keyline/keyline/internal/workflow/wferr"
)

// ContextKeyBackup is the encryption-context entry naming the backup a backup key seals.
const ContextKeyBackup = decl.ContextKeyBackup

// Context is the encryption context of a backup's data key: org, app, generation, purpose
// "backup" and the backup id.
func Context(orgID, appID string, generation int, backupID string) map[string]string {
	c := keys.EncryptionContext(orgID, appID, generation, keys.PurposeBackup)
	c[ContextKeyBackup] = backupID
	return c
}

// ObjectKey is where a backup is stored in the backup bucket.
func ObjectKey(appID, backupID string) string { return "backups/" + appID + "/" + backupID + ".klb" }

func sidecarKey(appID, backupID string) string { return "backups/" + appID + "/" + backupID + ".json" }

// ID derives the backup id of an app in an execution (at-least-once delivery: same id twice).
func ID(executionArn, appID string) string {
	h := sha256.Sum256([]byte(executionArn + "\x00" + appID))
	return hex.EncodeToString(h[:16])
}

// Statuses of a per-app backup.
const (
	StatusLeased   = "LEASED"
	StatusUploaded = "UPLOADED"
	StatusRecorded = "RECORDED"
	StatusSkipped  = "SKIPPED"
	StatusFailed   = "FAILED"
)

// Store is what the backup steps need of the lineage store (*lineage.Store satisfies it).
type Store interface {
	ListApps(ctx context.Context, cursor string, limit int) (lineage.Page[lineage.App], error)
	GetApp(ctx context.Context, appID string) (lineage.App, error)
	ActiveKey(ctx context.Context, appID string) (lineage.App, lineage.Generation, error)
	AcquireBackupLease(ctx context.Context, appID, holder string, ttl time.Duration) (lineage.App, error)
	ReleaseBackupLease(ctx context.Context, appID, holder string) error
	RecordBackup(ctx context.Context, b lineage.Backup, holder string, cause lineage.Cause) (lineage.Backup, error)
	RecordSkip(ctx context.Context, appID, reason string, cause lineage.Cause) error
	GetBackup(ctx context.Context, appID, backupID string) (lineage.BackupView, error)
}

// Config builds a Backups.
// DefaultLeaseTTL is how long a backup lease lasts unless configured: a crashed backup blocks
// a re-encryption's Begin at most this long, and Begin retries at least this long.
const DefaultLeaseTTL = 20 * time.Minute

type Config struct {
	Store  Store
	Source Source
	Keys   keys.Provider
	S3     *s3.Client
	Bucket string // backup bucket
	// Revocation receives revoked-class KMS errors (B2); may be nil (then only logged).
	Revocation wferr.RevocationReporter
	Events     audit.Emitter
	// Interval: the schedule's period; an app is due when its last backup is older than
	// Interval - DueSlack at the start of the run (default 1h).
	Interval time.Duration
	// DueSlack lets a backup taken late in one scheduled run still count the next run as due
	// (default Interval/2): with an hourly schedule each app is backed up every hour as long
	// as each run reaches it within half an hour of its start.
	DueSlack time.Duration
	// LeaseTTL bounds how long a crashed backup blocks re-encryption (default DefaultLeaseTTL).
	LeaseTTL time.Duration
	// PageSize bounds the apps listed per ListDue page (default 200), keeping the Map's results
	// well under the 256 KiB state payload limit.
	PageSize int
	// PartSize and Concurrency of the multipart upload (defaults objects.DefaultPartSize and objects.DefaultConcurrency).
	PartSize    int64
	Concurrency int
	Clock       clock.Clock
	Logger      *slog.Logger
	// Metrics receives CloudWatch EMF lines (BackupAgeMaxSeconds, metrics.go): os.Stdout in Lambda; nil: none.
	Metrics io.Writer
}

// Source is the data source's snapshot operation (objects.Source satisfies it).
type Source interface {
	Snapshot(ctx context.Context, appID string, w io.Writer) (SnapshotStats, error)
}

// Backups runs the backup steps.
type Backups struct {
	cfg Config
	tm  *transfermanager.Client
	log *slog.Logger
}

// New returns the backup steps.
func New(cfg Config) (*Backups, error) {
	if cfg.Store == nil || cfg.Source == nil || cfg.Keys == nil || cfg.S3 == nil || cfg.Bucket == "" {
		return nil, errors.New("backup: needs the lineage store, the data source, a key provider, an S3 client and the backup bucket")
	}
	if cfg.Events == nil {
		cfg.Events = audit.Discard{}
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Hour
	}
	if cfg.DueSlack <= 0 || cfg.DueSlack >= cfg.Interval {
		cfg.DueSlack = cfg.Interval / dueSlackDivisor
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = 200
	}
	if cfg.PartSize <= 0 {
		cfg.PartSize = objects.DefaultPartSize
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = objects.DefaultConcurrency
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	calc := cfg.S3.Options().RequestChecksumCalculation
	tm := transfermanager.New(cfg.S3, func(o *transfermanager.Options) {
		o.PartSizeBytes = cfg.PartSize
		o.MultipartUploadThreshold = cfg.PartSize
		o.Concurrency = cfg.Concurrency
		if calc != aws.RequestChecksumCalculationUnset {
			o.RequestChecksumCalculation = calc
		}
	})
	return &Backups{cfg: cfg, tm: tm, log: cfg.Logger}, nil
}

// ---- step 1: list due apps ----

// dueSlackDivisor: the default DueSlack is Interval divided by it.
const dueSlackDivisor = 2

// ExecutionInput is the backup state machine's input: a schedule's (no apps: every due
// app) or an on-demand one naming its apps; the console starts executions with it.
type ExecutionInput struct {
	AppIDs      []string `json:"appIds,omitempty"`
	RequestedBy string   `json:"requestedBy,omitempty"`
}

// DueInput is the input of ListDue: the execution's input, the execution ARN and the
// listing cursor.
type DueInput struct {
	Input        ExecutionInput `json:"input"`
	ExecutionArn string         `json:"executionArn"`
	// StartTime is the execution's start ($$.Execution.StartTime, RFC 3339): every page
	// of one run judges "due" against the same instant.
	StartTime string `json:"startTime,omitempty"`
	Cursor    string `json:"cursor,omitempty"`
}

// Item is one app to back up, as the Map passes it to the per-app steps.
type Item struct {
	AppID        string `json:"appId"`
	BackupID     string `json:"backupId"`
	ExecutionArn string `json:"executionArn"`
	RequestedBy  string `json:"requestedBy"`
}

// DueOutput lists one page of due apps; Next is the cursor of the following page ("" = done).
type DueOutput struct {
	Items       []Item `json:"items"`
	Next        string `json:"next"`
	HasMore     bool   `json:"hasMore"`
	RequestedBy string `json:"requestedBy"`
}

// ListDue lists the apps to back up: the on-demand ones, or every app whose last backup is
// older than the interval (deactivated and re-encrypting apps included, so that their skip is
// recorded with its reason, R5/R8).
func (b *Backups) ListDue(ctx context.Context, in DueInput) (DueOutput, error) {
	if in.ExecutionArn == "" {
		return DueOutput{}, &wferr.Invalid{Msg: "backup: ListDue needs the execution ARN"}
	}
	by := in.Input.RequestedBy
	if by == "" {
		by = "scheduler"
	}
	out := DueOutput{Items: []Item{}, RequestedBy: by}
	item := func(appID string) Item {
		return Item{AppID: appID, BackupID: ID(in.ExecutionArn, appID), ExecutionArn: in.ExecutionArn, RequestedBy: by}
	}
	if len(in.Input.AppIDs) > 0 {
		seen := map[string]bool{}
		for _, id := range in.Input.AppIDs {
			if id == "" || seen[id] {
				continue
			}
			seen[id] = true
			if _, err := b.cfg.Store.GetApp(ctx, id); err != nil {
				if errors.Is(err, lineage.ErrNotFound) {
					return DueOutput{}, &wferr.NotFound{Msg: fmt.Sprintf("backup: app %s does not exist", id)}
				}
				return DueOutput{}, wferr.From(err)
			}
			out.Items = append(out.Items, item(id))
		}
		return out, nil
	}
	now := b.cfg.Clock.Now()
	if in.StartTime != "" {
		t, err := time.Parse(time.RFC3339Nano, in.StartTime)
		if err != nil {
			return DueOutput{}, &wferr.Invalid{Msg: fmt.Sprintf("backup: ListDue startTime %q: %v", in.StartTime, err)}
		}
		now = t
	}
	due := b.cfg.Interval - b.cfg.DueSlack
	page, err := b.cfg.Store.ListApps(ctx, in.Cursor, b.cfg.PageSize)
	if err != nil {
		return DueOutput{}, wferr.From(err)
	}
	for _, a := range page.Items {
		// A deactivated app takes no backups (R8) and its revocation is on the audit trail
		// already: the schedule leaves it out rather than writing a skip for it every run,
		// which would make writes grow with the revoked apps. A re-encrypting app stays in,
		// so its skip is recorded with the reason (R5).
		if a.Status == lineage.AppDeactivated {
			continue
		}
		if a.LastBackupAt.IsZero() || now.Sub(a.LastBackupAt) >= due {
			out.Items = append(out.Items, item(a.ID))
		}
	}
	b.reportBackupAge(ctx, now, page.Items)
	out.Next, out.HasMore = page.Next, page.Next != ""
	b.log.InfoContext(ctx, "backup: due apps listed", "due", len(out.Items), "listed", len(page.Items), "more", out.HasMore)
	return out, nil
}

// ---- step 2: lease ----

// Step is the per-app state passed between the per-app steps.
type Step struct {
	Item
	Status     string `json:"status"`
	Reason     string `json:"reason,omitempty"`
	Generation int    `json:"generation,omitempty"`
	KeyARN     string `json:"keyArn,omitempty"`
	// Set once uploaded.
	ObjectKey   string `json:"objectKey,omitempty"`
	SizeBytes   int64  `json:"sizeBytes,omitempty"`
	Digest      string `json:"digest,omitempty"`
	ObjectCount int    `json:"objectCount,omitempty"`
}

func (b *Backups) cause(it Item) lineage.Cause {
	return lineage.Cause{ExecutionArn: it.ExecutionArn, RequestID: it.BackupID, Actor: it.RequestedBy}
}

// skip records that the app's backup did not run, and why.
func (b *Backups) skip(ctx context.Context, it Item, reason string) (Step, error) {
	if err := b.cfg.Store.RecordSkip(ctx, it.AppID, reason, b.cause(it)); err != nil {
		return Step{}, wferr.From(err)
	}
	b.emit(ctx, audit.DetailBackupSkipped, it, map[string]any{"reason": reason})
	b.log.InfoContext(ctx, "backup skipped", "app", it.AppID, "backup", it.BackupID, "reason", reason)
	return Step{Item: it, Status: StatusSkipped, Reason: reason}, nil
}

func (b *Backups) emit(ctx context.Context, detailType string, it Item, extra map[string]any) {
	d := map[string]any{"appId": it.AppID, "backupId": it.BackupID, "executionArn": it.ExecutionArn, "requestedBy": it.RequestedBy}
	maps.Copy(d, extra)
	if err := b.cfg.Events.Emit(ctx, audit.Event{DetailType: detailType, Detail: d, Time: b.cfg.Clock.Now()}); err != nil {
		b.log.ErrorContext(ctx, "backup: emitting event failed", "detail_type", detailType, "app", it.AppID, "error", err)
	}
}

// Reasons recorded with skips.
const (
	ReasonReencrypting = "re-encryption in progress: no backup runs while the app is re-encrypted (R5)"
	ReasonDeactivated  = "app deactivated: its key was revoked, no further backups are taken (R8)"
	ReasonLeaseHeld    = "another backup of the app is running"
)

// Lease takes the app's backup lease, or records the skip (R5, R8).
func (b *Backups) Lease(ctx context.Context, it Item) (Step, error) {
	if it.AppID == "" || it.BackupID == "" {
		return Step{}, &wferr.Invalid{Msg: "backup: a step needs appId and backupId"}
	}
	app, err := b.cfg.Store.GetApp(ctx, it.AppID)
	if err != nil {
		return Step{}, wferr.From(err)
	}
	if app.Status == lineage.AppDeactivated {
		return b.skip(ctx, it, ReasonDeactivated+reasonSuffix(app.StatusReason))
	}
	app, err = b.cfg.Store.AcquireBackupLease(ctx, it.AppID, it.BackupID, b.cfg.LeaseTTL)
	switch {
	case errors.Is(err, lineage.ErrReencrypting):
		return b.skip(ctx, it, ReasonReencrypting)
	case errors.Is(err, lineage.ErrAppDeactivated):
		return b.skip(ctx, it, ReasonDeactivated)
	case errors.Is(err, lineage.ErrLeaseHeld):
		return b.skip(ctx, it, ReasonLeaseHeld)
	case err != nil:
		return Step{}, wferr.From(err)
	}
	return Step{Item: it, Status: StatusLeased, Generation: app.ActiveGeneration}, nil
}

func reasonSuffix(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

// ---- step 3: seal and upload ----

type sidecar struct {
	Generation  int    `json:"generation"`
	KeyARN      string `json:"keyArn"`
	SizeBytes   int64  `json:"sizeBytes"`
	Digest      string `json:"digest"`
	ObjectCount int    `json:"objectCount"`
}

// Upload seals a snapshot of the app under its active generation (one KMS call) and uploads it
// (multipart, streamed: memory bounded whatever the app's size). Idempotent: an upload already
// completed for this backup id is returned as is.
func (b *Backups) Upload(ctx context.Context, st Step) (Step, error) {
	if st.Status != StatusLeased {
		return st, nil // skipped or already uploaded: nothing to do
	}
	if sc, ok, err := b.readSidecar(ctx, st.Item); err != nil {
		return Step{}, wferr.From(err)
	} else if ok {
		return b.uploaded(st, sc), nil
	}
	app, gen, err := b.cfg.Store.ActiveKey(ctx, st.AppID)
	if err != nil {
		return Step{}, wferr.From(err)
	}
	if app.Status != lineage.AppActive || gen.State != lineage.GenActive {
		_ = b.release(ctx, st.Item)
		reason := fmt.Sprintf("app is %s and its generation %d is %s: no backup taken", app.Status, gen.Number, gen.State)
		if app.Status == lineage.AppReencrypting {
			reason = ReasonReencrypting
		} else if app.Status == lineage.AppDeactivated {
			reason = ReasonDeactivated
		}
		return b.skip(ctx, st.Item, reason)
	}
	sc, err := b.sealAndUpload(ctx, st.Item, gen)
	if err != nil {
		if kr := wferr.ReportIfRevoked(ctx, b.cfg.Revocation, b.log, "backup "+st.BackupID+" of app "+st.AppID, err); kr != nil {
			return Step{}, kr
		}
		return Step{}, wferr.From(err)
	}
	return b.uploaded(st, sc), nil
}

func (b *Backups) uploaded(st Step, sc sidecar) Step {
	st.Status = StatusUploaded
	st.Generation, st.KeyARN = sc.Generation, sc.KeyARN
	st.ObjectKey, st.SizeBytes, st.Digest, st.ObjectCount = ObjectKey(st.AppID, st.BackupID), sc.SizeBytes, sc.Digest, sc.ObjectCount
	return st
}

func (b *Backups) readSidecar(ctx context.Context, it Item) (sidecar, bool, error) {
	out, err := b.cfg.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b.cfg.Bucket), Key: aws.String(sidecarKey(it.AppID, it.BackupID))})
	if err != nil {
		if isNotFound(err) {
			return sidecar{}, false, nil
		}
		return sidecar{}, false, &wferr.Transient{Msg: "backup: read upload record: " + err.Error()}
	}
	defer out.Body.Close()
	var sc sidecar
	if err := json.NewDecoder(io.LimitReader(out.Body, 1<<16)).Decode(&sc); err != nil || sc.Digest == "" {
		return sidecar{}, false, nil // a damaged record: upload again
	}
	return sc, true, nil
}

// progressReader counts bytes and logs progress every 10 s.
type progressReader struct {
	r     io.Reader
	n     int64
	ctx   context.Context
	log   *slog.Logger
	clock clock.Clock
	last  time.Time
	app   string
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if now := p.clock.Now(); now.Sub(p.last) >= 10*time.Second {
		p.last = now
		p.log.InfoContext(p.ctx, "backup upload progress", "app", p.app, "bytes", p.n)
	}
	return n, err
}

func (b *Backups) sealAndUpload(ctx context.Context, it Item, gen lineage.Generation) (sidecar, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := b.cfg.Clock.Now()
	encCtx := Context(gen.OrgID, it.AppID, gen.Number, it.BackupID)
	pr, pw := io.Pipe()
	hasher := sha256.New()
	type result struct {
		stats SnapshotStats
		err   error
	}
	done := make(chan result, 1)
	go func() {
		w, dk, err := sealing.Seal(ctx, pw, b.cfg.Keys, gen.KeyARN, gen.Number, encCtx)
		if err != nil {
			pw.CloseWithError(err)
			done <- result{err: err}
			return
		}
		defer dk.Destroy()
		st, err := b.cfg.Source.Snapshot(ctx, it.AppID, io.MultiWriter(hasher, w))
		if err == nil {
			err = w.Close()
		}
		pw.CloseWithError(err)
		done <- result{stats: st, err: err}
	}()
	key := ObjectKey(it.AppID, it.BackupID)
	body := &progressReader{r: pr, ctx: ctx, log: b.log, clock: b.cfg.Clock, last: start, app: it.AppID}
	_, upErr := b.tm.UploadObject(ctx, &transfermanager.UploadObjectInput{
		Bucket: aws.String(b.cfg.Bucket), Key: aws.String(key), Body: body,
		Metadata: map[string]string{"keyline-app": it.AppID, "keyline-backup": it.BackupID, "keyline-generation": fmt.Sprint(gen.Number)},
	})
	if upErr != nil {
		cancel()
	}
	pr.CloseWithError(errors.New("backup: upload ended"))
	res := <-done
	if res.err != nil {
		return sidecar{}, fmt.Errorf("backup of %s: snapshot: %w", it.AppID, res.err)
	}
	if upErr != nil {
		return sidecar{}, fmt.Errorf("backup of %s: upload: %w", it.AppID, upErr)
	}
	sc := sidecar{Generation: gen.Number, KeyARN: gen.KeyARN, SizeBytes: body.n, Digest: hex.EncodeToString(hasher.Sum(nil)), ObjectCount: res.stats.Objects}
	raw, _ := json.Marshal(sc)
	if _, err := b.cfg.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b.cfg.Bucket), Key: aws.String(sidecarKey(it.AppID, it.BackupID)),
		Body: bytes.NewReader(raw), ContentLength: aws.Int64(int64(len(raw))), ContentType: aws.String("application/json")}); err != nil {
		return sidecar{}, &wferr.Transient{Msg: "backup: write upload record: " + err.Error()}
	}
	b.log.InfoContext(ctx, "backup uploaded", "app", it.AppID, "backup", it.BackupID, "generation", gen.Number,
		"objects", res.stats.Objects, "bytes", body.n, "seconds", b.cfg.Clock.Now().Sub(start).Seconds())
	return sc, nil
}

// ---- step 4: record ----

// Record records the uploaded backup, only if its generation is still the app's active one
// and the lease still held; otherwise it deletes the upload and records the skip. Idempotent.
func (b *Backups) Record(ctx context.Context, st Step) (Step, error) {
	if st.Status != StatusUploaded {
		return st, nil
	}
	rec, err := b.cfg.Store.RecordBackup(ctx, lineage.Backup{
		AppID: st.AppID, ID: st.BackupID, Generation: st.Generation, KeyARN: st.KeyARN, ObjectKey: st.ObjectKey,
		SizeBytes: st.SizeBytes, Digest: st.Digest, ObjectCount: st.ObjectCount,
	}, st.BackupID, b.cause(st.Item))
	if err == nil {
		st.Status = StatusRecorded
		b.emit(ctx, audit.DetailBackupRecorded, st.Item, map[string]any{"generation": rec.Generation, "keyArn": rec.KeyARN,
			"sizeBytes": rec.SizeBytes, "objectCount": rec.ObjectCount, "digest": rec.Digest})
		return st, nil
	}
	if !errors.Is(err, lineage.ErrConflict) && !errors.Is(err, lineage.ErrInvariant) && !errors.Is(err, lineage.ErrKeyRevoked) {
		return Step{}, wferr.From(err)
	}
	// Refused: find out why, then discard the upload unless it is worth a retry.
	app, gen, gerr := b.cfg.Store.ActiveKey(ctx, st.AppID)
	if gerr != nil {
		return Step{}, wferr.From(gerr)
	}
	var reason string
	switch {
	case gen.Number != st.Generation:
		reason = fmt.Sprintf("key generation changed during the backup (sealed under generation %d, now %d): backup discarded", st.Generation, gen.Number)
	case gen.KeyRevoked:
		reason = fmt.Sprintf("the key of generation %d was revoked during the backup (%s): backup discarded", gen.Number, gen.KeyReason)
	case gen.State != lineage.GenActive || app.Status == lineage.AppDeactivated:
		reason = fmt.Sprintf("generation %d became %s during the backup (app %s: %s): backup discarded", gen.Number, gen.State, app.Status, app.StatusReason)
	case app.Status == lineage.AppReencrypting:
		reason = ReasonReencrypting + ": backup discarded"
	case errors.Is(err, lineage.ErrLeaseHeld) || (app.BackupLease != nil && app.BackupLease.Holder != st.BackupID):
		reason = "the backup lease expired before the backup was recorded: backup discarded"
	default:
		return Step{}, &wferr.Transient{Msg: err.Error()}
	}
	if derr := b.deleteUpload(ctx, st.Item); derr != nil {
		return Step{}, derr
	}
	_ = b.release(ctx, st.Item)
	return b.skip(ctx, st.Item, reason)
}

func (b *Backups) deleteUpload(ctx context.Context, it Item) error {
	for _, k := range []string{ObjectKey(it.AppID, it.BackupID), sidecarKey(it.AppID, it.BackupID)} {
		if _, err := b.cfg.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(b.cfg.Bucket), Key: aws.String(k)}); err != nil && !isNotFound(err) {
			return &wferr.Transient{Msg: "backup: delete " + k + ": " + err.Error()}
		}
	}
	return nil
}

func (b *Backups) release(ctx context.Context, it Item) error {
	err := b.cfg.Store.ReleaseBackupLease(ctx, it.AppID, it.BackupID)
	if err != nil && !errors.Is(err, lineage.ErrLeaseHeld) && !errors.Is(err, lineage.ErrNotFound) {
		b.log.WarnContext(ctx, "backup: releasing the lease failed", "app", it.AppID, "backup", it.BackupID, "error", err)
		return wferr.From(err)
	}
	return nil
}

// ---- Catch: compensation ----

// StatesError is the `{"Error","Cause"}` a Catch puts at its ResultPath.
type StatesError struct {
	Error string `json:"Error"`
	Cause string `json:"Cause"`
}

// Message extracts the errorMessage from a Lambda error's Cause, or returns the Cause.
func (e StatesError) Message() string {
	var c struct {
		ErrorMessage string `json:"errorMessage"`
	}
	if json.Unmarshal([]byte(e.Cause), &c) == nil && c.ErrorMessage != "" {
		return c.ErrorMessage
	}
	return e.Cause
}

// FailInput is a per-app step's input with the caught error.
type FailInput struct {
	Item
	Error StatesError `json:"error"`
}

// Fail is the compensation of a failed per-app backup: the upload is removed unless the backup
// was recorded, the lease released, and the failure recorded with its reason. Idempotent.
func (b *Backups) Fail(ctx context.Context, in FailInput) (Step, error) {
	if in.AppID == "" || in.BackupID == "" {
		return Step{}, &wferr.Invalid{Msg: "backup: Fail needs appId and backupId"}
	}
	if _, err := b.cfg.Store.GetBackup(ctx, in.AppID, in.BackupID); err == nil {
		return Step{Item: in.Item, Status: StatusRecorded}, nil // recorded after all
	} else if !errors.Is(err, lineage.ErrNotFound) {
		return Step{}, wferr.From(err)
	}
	if err := b.deleteUpload(ctx, in.Item); err != nil {
		return Step{}, err
	}
	if err := b.release(ctx, in.Item); err != nil {
		return Step{}, err
	}
	msg := in.Error.Message()
	reason := "backup failed: " + strings.TrimSpace(in.Error.Error+": "+msg)
	if in.Error.Error == "KeyRevoked" {
		reason = "backup failed: the app's key is revoked or unusable (" + msg + ")"
	}
	st, err := b.skip(ctx, in.Item, reason)
	if err != nil {
		return Step{}, err
	}
	st.Status = StatusFailed
	return st, nil
}
