// Package restore holds the validation of a restore request (R3, R7), which the console API
// calls to answer 409/422 and the "restore" state machine calls again, and the machine's
// steps: Start (re-validate, mark RUNNING) → Run (stream the backup, verify it entirely, then
// write it into the target under its active key and verify the digest again) → Finish
// (SUCCEEDED); a Catch → Fail records FAILED or REFUSED with the reason.
package restore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/keyline/keyline/internal/audit"
	"github.com/keyline/keyline/internal/clock"
	"github.com/keyline/keyline/internal/keys"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/objects"
	"github.com/keyline/keyline/internal/sealing"
	"github.com/keyline/keyline/internal/workflow/backup"
	"github.com/keyline/keyline/internal/workflow/wferr"
)

// Refusal codes: the HTTP answer the console gives.
const (
	// CodeConflict (409): the state of the app or key refuses it now; it may change.
	CodeConflict = "conflict"
	// CodeUnprocessable (422): the request can never succeed as asked.
	CodeUnprocessable = "unprocessable"
)

// Reason codes of refusals: which rule refused, for scripts (the Reason text is for people).
const (
	ReasonMissingInput       = "MissingInput"
	ReasonOtherOrg           = "OtherOrg"
	ReasonTargetNotCMK       = "TargetNotCMK"
	ReasonTargetDeactivated  = "TargetDeactivated"
	ReasonTargetReencrypting = "TargetReencrypting"
	// ReasonBackupSuperseded: the backup's generation is no longer the app's active one (R6).
	ReasonBackupSuperseded = "BackupSuperseded"
	// ReasonBackupUnavailable: the backup's generation or app is not usable now (R8).
	ReasonBackupUnavailable = "BackupUnavailable"
	// ReasonKeyUnusable: KMS says the backup's key is not usable right now (R7).
	ReasonKeyUnusable = "KeyUnusable"
)

// Refusal is a restore a rule refuses, with a reason a person can act on and its code.
type Refusal struct {
	Code       string `json:"code"`
	Reason     string `json:"reason"`
	ReasonCode string `json:"reasonCode,omitempty"`
}

func (r *Refusal) Error() string { return "restore refused: " + r.Reason }

func refuse(code, reasonCode, format string, args ...any) *Refusal {
	return &Refusal{Code: code, ReasonCode: reasonCode, Reason: fmt.Sprintf(format, args...)}
}

// Request names what to restore where.
type Request struct {
	// AppID is the target app.
	AppID string `json:"appId"`
	// SourceAppID is the app the backup belongs to ("" = AppID).
	SourceAppID string `json:"sourceAppId,omitempty"`
	BackupID    string `json:"backupId"`
}

// Store is what validation needs of the lineage store (*lineage.Store satisfies it).
type Store interface {
	GetApp(ctx context.Context, appID string) (lineage.App, error)
	GetBackup(ctx context.Context, appID, backupID string) (lineage.BackupView, error)
	GetGeneration(ctx context.Context, appID string, n int) (lineage.Generation, error)
}

// Validate checks a restore request against R3 and R7: it returns nil when the restore may
// run, a *Refusal when a rule refuses it, an error wrapping lineage.ErrNotFound when the app or
// backup does not exist, and a key error (keys.ErrTransient) when the key could not be checked.
// It makes KMS calls only through kp.Check on the backup's key.
func Validate(ctx context.Context, store Store, kp keys.Provider, req Request) error {
	_, err := Check(ctx, store, kp, req)
	return err
}

// Check is Validate, returning the backup on success.
func Check(ctx context.Context, store Store, kp keys.Provider, req Request) (lineage.BackupView, error) {
	if req.AppID == "" || req.BackupID == "" {
		return lineage.BackupView{}, refuse(CodeUnprocessable, ReasonMissingInput, "a restore needs the target app id and the backup id")
	}
	src := req.SourceAppID
	if src == "" {
		src = req.AppID
	}
	target, err := store.GetApp(ctx, req.AppID)
	if err != nil {
		return lineage.BackupView{}, fmt.Errorf("restore: target app %s: %w", req.AppID, err)
	}
	source := target
	if src != req.AppID {
		if source, err = store.GetApp(ctx, src); err != nil {
			return lineage.BackupView{}, fmt.Errorf("restore: source app %s: %w", src, err)
		}
		if source.OrgID != target.OrgID {
			return lineage.BackupView{}, refuse(CodeUnprocessable, ReasonOtherOrg, "backup %s belongs to app %s of another org; a backup restores only into an app of the same org", req.BackupID, src)
		}
	}
	b, err := store.GetBackup(ctx, src, req.BackupID)
	if err != nil {
		return lineage.BackupView{}, fmt.Errorf("restore: backup %s of app %s: %w", req.BackupID, src, err)
	}
	gen, err := store.GetGeneration(ctx, src, b.Generation)
	if err != nil {
		return lineage.BackupView{}, fmt.Errorf("restore: generation %d of app %s: %w", b.Generation, src, err)
	}
	// R3: a CMK backup restores only into a CMK app.
	if gen.KeyModel == lineage.KeyModelCMK || source.KeyModel == lineage.KeyModelCMK {
		if target.KeyModel != lineage.KeyModelCMK {
			return lineage.BackupView{}, refuse(CodeUnprocessable, ReasonTargetNotCMK,
				"backup %s is encrypted under a customer-managed key and can only be restored into an app that uses a customer-managed key; app %s uses the provider-managed key: choose a CMK-enabled app as the target (R3)",
				req.BackupID, target.ID)
		}
	}
	switch target.Status {
	case lineage.AppDeactivated:
		return lineage.BackupView{}, refuse(CodeConflict, ReasonTargetDeactivated, "target app %s is deactivated (%s): re-enable its key so that it is reactivated, then retry", target.ID, orNone(target.StatusReason))
	case lineage.AppReencrypting:
		return lineage.BackupView{}, refuse(CodeConflict, ReasonTargetReencrypting, "target app %s is being re-encrypted: retry when the re-encryption has finished", target.ID)
	}
	// R7: the backup's generation must be the source app's active one, its key usable now.
	if ok, reason := b.Backup.Restorability(gen, source); !ok {
		code, why := CodeConflict, ReasonBackupUnavailable
		if gen.State == lineage.GenRetired || (gen.State == lineage.GenActive && source.ActiveGeneration != gen.Number) {
			code, why = CodeUnprocessable, ReasonBackupSuperseded // superseded for good (R6)
		}
		return lineage.BackupView{}, refuse(code, why, "backup %s cannot be restored: %s (R7)", req.BackupID, reason)
	}
	if err := kp.Check(ctx, gen.OrgID, gen.KeyARN); err != nil {
		if errors.Is(err, keys.ErrRevoked) {
			return lineage.BackupView{}, &keyRefusal{Refusal: *refuse(CodeConflict, ReasonKeyUnusable,
				"the key of backup %s (%s) is not usable right now (%s): enable the key or restore keyline's access to it, then retry (R7)",
				req.BackupID, gen.KeyARN, keyCode(err)), err: err}
		}
		return lineage.BackupView{}, fmt.Errorf("restore: checking key %s: %w", gen.KeyARN, err)
	}
	return b, nil
}

// keyRefusal is a refusal caused by a revoked-class key error, which also feeds revocation.
type keyRefusal struct {
	Refusal
	err error
}

func (k *keyRefusal) Unwrap() []error { return []error{&k.Refusal, k.err} }

func (k *keyRefusal) Error() string { return k.Refusal.Error() }

func keyCode(err error) string {
	var ke *keys.KeyError
	if errors.As(err, &ke) && ke.Code != "" {
		return ke.Code
	}
	return "unusable"
}

func orNone(s string) string {
	if s == "" {
		return "no reason recorded"
	}
	return s
}

// Source is what a restore needs of the data source (*objects.S3Source satisfies it).
type Source interface {
	VerifySnapshot(ctx context.Context, r io.Reader) (objects.SnapshotStats, error)
	RestoreSnapshot(ctx context.Context, targetApp string, r io.Reader) (objects.RestoreStats, error)
}

// StepStore is what the restore steps need of the lineage store (*lineage.Store satisfies it).
type StepStore interface {
	Store
	GetRestore(ctx context.Context, appID, restoreID string) (lineage.Restore, error)
	RecordRestore(ctx context.Context, r lineage.Restore) (lineage.Restore, error)
	UpdateRestore(ctx context.Context, r lineage.Restore) (lineage.Restore, error)
}

// Config builds a Restores.
type Config struct {
	Store      StepStore
	Source     Source
	Keys       keys.Provider
	S3         *s3.Client
	Bucket     string // backup bucket
	Revocation wferr.RevocationReporter
	Events     audit.Emitter
	Clock      clock.Clock
	Logger     *slog.Logger
}

// Restores runs the restore steps.
type Restores struct {
	cfg    Config
	log    *slog.Logger
	unwrap *sealing.CachingUnwrapper
}

// New returns the restore steps.
func New(cfg Config) (*Restores, error) {
	if cfg.Store == nil || cfg.Source == nil || cfg.Keys == nil || cfg.S3 == nil || cfg.Bucket == "" {
		return nil, errors.New("restore: needs the lineage store, the data source, a key provider, an S3 client and the backup bucket")
	}
	if cfg.Events == nil {
		cfg.Events = audit.Discard{}
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Restores{cfg: cfg, log: cfg.Logger, unwrap: sealing.NewCachingUnwrapperSize(sealing.ProviderUnwrapper(cfg.Keys), 64)}, nil
}

// Close destroys cached keys.
func (r *Restores) Close() { r.unwrap.Close() }

// Input is the restore state machine's input and its Start step's: the console starts
// executions with it (without ExecutionArn, which the machine adds from its context),
// after recording the restore as PENDING.
type Input struct {
	AppID        string `json:"appId"`
	RestoreID    string `json:"restoreId"`
	BackupID     string `json:"backupId"`
	SourceAppID  string `json:"sourceAppId"`
	RequestedBy  string `json:"requestedBy"`
	ExecutionArn string `json:"executionArn,omitempty"`
}

func (in Input) source() string {
	if in.SourceAppID == "" {
		return in.AppID
	}
	return in.SourceAppID
}

// Step is the state passed between the restore steps.
type Step struct {
	Input
	Status     lineage.RestoreStatus `json:"status"`
	Reason     string                `json:"reason,omitempty"`
	Generation int                   `json:"generation,omitempty"`
	KeyARN     string                `json:"keyArn,omitempty"`
	Digest     string                `json:"digest,omitempty"`
	Objects    int                   `json:"objects,omitempty"`
	Bytes      int64                 `json:"bytes,omitempty"`
	Copied     int                   `json:"copied,omitempty"`
	Resealed   int                   `json:"resealed,omitempty"`
}

func (r *Restores) cause(in Input) lineage.Cause {
	return lineage.Cause{ExecutionArn: in.ExecutionArn, RequestID: in.RestoreID, Actor: in.RequestedBy}
}

// Start re-validates the request (R3, R7) and marks the restore RUNNING. A refusal fails the
// step with a *wferr.Refused (Catch → Fail records REFUSED).
func (r *Restores) Start(ctx context.Context, in Input) (Step, error) {
	if in.AppID == "" || in.RestoreID == "" || in.BackupID == "" {
		return Step{}, &wferr.Invalid{Msg: "restore: input needs appId, restoreId and backupId"}
	}
	cur, err := r.cfg.Store.GetRestore(ctx, in.AppID, in.RestoreID)
	switch {
	case errors.Is(err, lineage.ErrNotFound):
		cur, err = r.cfg.Store.RecordRestore(ctx, lineage.Restore{AppID: in.AppID, ID: in.RestoreID, BackupID: in.BackupID,
			SourceAppID: in.source(), Status: lineage.RestorePending, RequestedBy: in.RequestedBy, ExecutionArn: in.ExecutionArn})
		if err != nil {
			return Step{}, wferr.From(err)
		}
	case err != nil:
		return Step{}, wferr.From(err)
	}
	if cur.Status.Terminal() {
		return Step{Input: in, Status: cur.Status, Reason: cur.Reason, Digest: cur.Digest}, nil // delivered again
	}
	b, err := Check(ctx, r.cfg.Store, r.cfg.Keys, Request{AppID: in.AppID, SourceAppID: in.SourceAppID, BackupID: in.BackupID})
	if err != nil {
		var rf *Refusal
		if errors.As(err, &rf) {
			var kr *keyRefusal
			if errors.As(err, &kr) {
				wferr.ReportIfRevoked(ctx, r.cfg.Revocation, r.log, "restore "+in.RestoreID+" validation", kr.err)
			}
			return Step{}, &wferr.Refused{Code: rf.Code, Msg: rf.Reason}
		}
		if errors.Is(err, lineage.ErrNotFound) {
			return Step{}, &wferr.Refused{Code: CodeUnprocessable, Msg: err.Error()}
		}
		return Step{}, wferr.From(err)
	}
	cur.Status, cur.ExecutionArn, cur.KeyARN = lineage.RestoreRunning, in.ExecutionArn, b.KeyARN
	if _, err := r.cfg.Store.UpdateRestore(ctx, cur); err != nil {
		return Step{}, wferr.From(err)
	}
	return Step{Input: in, Status: lineage.RestoreRunning, Generation: b.Generation, KeyARN: b.KeyARN, Digest: b.Digest}, nil
}

// Run verifies the whole backup first (authentication of the backup and of every object in
// it, and its digest) without writing anything, then writes it into the target app and checks
// the digest of what it wrote from. A damaged backup fails with *wferr.Corrupt and leaves the
// target untouched. Idempotent: writing the same objects again is harmless.
func (r *Restores) Run(ctx context.Context, st Step) (Step, error) {
	if st.Status != lineage.RestoreRunning {
		return st, nil
	}
	bv, err := r.cfg.Store.GetBackup(ctx, st.source(), st.BackupID)
	if err != nil {
		return Step{}, wferr.From(err)
	}
	b := bv.Backup
	fail := func(err error) (Step, error) {
		if kr := wferr.ReportIfRevoked(ctx, r.cfg.Revocation, r.log, "restore "+st.RestoreID, err); kr != nil {
			return Step{}, kr
		}
		if corruption(err) {
			return Step{}, &wferr.Corrupt{Msg: fmt.Sprintf("backup %s of app %s is damaged and cannot be restored (%v); nothing was written to app %s: restore another backup",
				b.ID, b.AppID, err, st.AppID)}
		}
		return Step{}, wferr.From(err)
	}
	// Pass 1: verify, write nothing.
	digest, _, err := r.pass(ctx, b, func(pr io.Reader) (objects.RestoreStats, error) {
		s, err := r.cfg.Source.VerifySnapshot(ctx, pr)
		return objects.RestoreStats{Objects: s.Objects, Bytes: s.Bytes}, err
	})
	if err != nil {
		return fail(err)
	}
	if digest != b.Digest {
		return fail(fmt.Errorf("%w: snapshot digest %s differs from the recorded %s", objects.ErrCorruptSnapshot, digest, b.Digest))
	}
	// Pass 2: write.
	digest, rs, err := r.pass(ctx, b, func(pr io.Reader) (objects.RestoreStats, error) {
		return r.cfg.Source.RestoreSnapshot(ctx, st.AppID, pr)
	})
	if err != nil {
		return fail(err)
	}
	if digest != b.Digest {
		return Step{}, &wferr.Corrupt{Msg: fmt.Sprintf("backup %s changed while it was restored (digest %s, recorded %s): restore it again", b.ID, digest, b.Digest)}
	}
	st.Digest, st.Objects, st.Bytes, st.Copied, st.Resealed = digest, rs.Objects, rs.Bytes, rs.Copied, rs.Resealed
	r.log.InfoContext(ctx, "restore written", "app", st.AppID, "restore", st.RestoreID, "backup", b.ID, "objects", rs.Objects,
		"bytes", rs.Bytes, "copied", rs.Copied, "resealed", rs.Resealed)
	return st, nil
}

// pass streams the backup through consume and returns the sha256 of the snapshot plaintext.
func (r *Restores) pass(ctx context.Context, b lineage.Backup, consume func(io.Reader) (objects.RestoreStats, error)) (string, objects.RestoreStats, error) {
	source, err := r.cfg.Store.GetApp(ctx, b.AppID)
	if err != nil {
		return "", objects.RestoreStats{}, fmt.Errorf("restore: app %s of backup %s: %w", b.AppID, b.ID, err)
	}
	pr, closer, err := backup.Open(ctx, r.cfg.S3, r.cfg.Bucket, r.unwrap, source.OrgID, b)
	if err != nil {
		return "", objects.RestoreStats{}, err
	}
	defer closer.Close()
	h := sha256.New()
	tee := io.TeeReader(pr, h)
	rs, err := consume(tee)
	if err != nil {
		return "", rs, err
	}
	// The snapshot's end record must be the end of the backup: anything after it is damage.
	if n, err := io.Copy(h, pr); err != nil {
		return "", rs, err
	} else if n > 0 {
		return "", rs, fmt.Errorf("%w: %d bytes after the end record", objects.ErrCorruptSnapshot, n)
	}
	return hex.EncodeToString(h.Sum(nil)), rs, nil
}

func corruption(err error) bool {
	for _, e := range []error{sealing.ErrTampered, sealing.ErrTruncated, sealing.ErrMalformedHeader, sealing.ErrUnsupportedVersion,
		sealing.ErrWrongContext, sealing.ErrWrongKey, objects.ErrCorruptSnapshot, objects.ErrNotFound} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Finish records the restore SUCCEEDED with its digest. Idempotent.
func (r *Restores) Finish(ctx context.Context, st Step) (Step, error) {
	if st.Status != lineage.RestoreRunning {
		return st, nil
	}
	cur, err := r.cfg.Store.GetRestore(ctx, st.AppID, st.RestoreID)
	if err != nil {
		return Step{}, wferr.From(err)
	}
	cur.Status, cur.Digest, cur.Reason = lineage.RestoreSucceeded, st.Digest, ""
	if _, err := r.cfg.Store.UpdateRestore(ctx, cur); err != nil {
		return Step{}, wferr.From(err)
	}
	st.Status = lineage.RestoreSucceeded
	r.emit(ctx, audit.DetailRestoreSucceeded, st)
	return st, nil
}

// StatesError is the `{"Error","Cause"}` a Catch puts at its ResultPath.
type StatesError = backup.StatesError

// FailInput is the restore input with the caught error.
type FailInput struct {
	Input
	Error StatesError `json:"error"`
}

// Fail records the restore REFUSED (a rule refused it) or FAILED, with the reason. Idempotent.
func (r *Restores) Fail(ctx context.Context, in FailInput) (Step, error) {
	if in.AppID == "" || in.RestoreID == "" {
		return Step{}, &wferr.Invalid{Msg: "restore: Fail needs appId and restoreId"}
	}
	status := lineage.RestoreFailed
	detail := audit.DetailRestoreFailed
	if in.Error.Error == "Refused" {
		status, detail = lineage.RestoreRefused, audit.DetailRestoreRefused
	}
	reason := in.Error.Message()
	if reason == "" {
		reason = in.Error.Error
	}
	if in.Error.Error != "Refused" && in.Error.Error != "Corrupt" && in.Error.Error != "" {
		reason = in.Error.Error + ": " + reason
	}
	cur, err := r.cfg.Store.GetRestore(ctx, in.AppID, in.RestoreID)
	if err != nil {
		return Step{}, wferr.From(err)
	}
	// The failure names the backup's source app as recorded with the request (the machine's
	// failure path does not carry it; without it the source would read as the target).
	if in.SourceAppID == "" {
		in.SourceAppID = cur.SourceAppID
	}
	st := Step{Input: in.Input, Status: status, Reason: reason}
	if cur.Status.Terminal() {
		st.Status, st.Reason = cur.Status, cur.Reason
		return st, nil
	}
	cur.Status, cur.Reason = status, reason
	if in.ExecutionArn != "" {
		cur.ExecutionArn = in.ExecutionArn
	}
	if _, err := r.cfg.Store.UpdateRestore(ctx, cur); err != nil {
		return Step{}, wferr.From(err)
	}
	r.emit(ctx, detail, st)
	return st, nil
}

func (r *Restores) emit(ctx context.Context, detailType string, st Step) {
	d := map[string]any{"appId": st.AppID, "restoreId": st.RestoreID, "backupId": st.BackupID, "sourceAppId": st.source(),
		"status": st.Status, "executionArn": st.ExecutionArn, "requestedBy": st.RequestedBy}
	if st.Reason != "" {
		d["reason"] = st.Reason
	}
	if err := r.cfg.Events.Emit(ctx, audit.Event{DetailType: detailType, Detail: d, Time: r.cfg.Clock.Now()}); err != nil {
		r.log.ErrorContext(ctx, "restore: emitting event failed", "detail_type", detailType, "error", err)
	}
}
