// Package drill holds the steps of the "restore-drill" state machine (DESIGN B4): a schedule
// picks a sample of restorable backups (the most recent N per app), restores each into a
// scratch target (drills/<drillId>/<appId>/... in the data bucket), checks the digests, deletes
// the scratch copy, audits the outcome and emits an event when a drill fails.
package drill

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"

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

// Audit actions of drills.
const (
	ActionDrillPassed = "drill.passed"
	ActionDrillFailed = "drill.failed"
)

// Outcome statuses.
const (
	StatusPassed  = "PASSED"
	StatusFailed  = "FAILED"
	StatusSkipped = "SKIPPED"
)

// Store is what drills need of the lineage store (*lineage.Store satisfies it).
type Store interface {
	ListApps(ctx context.Context, cursor string, limit int) (lineage.Page[lineage.App], error)
	GetApp(ctx context.Context, appID string) (lineage.App, error)
	ListBackups(ctx context.Context, appID string) ([]lineage.BackupView, error)
	GetBackup(ctx context.Context, appID, backupID string) (lineage.BackupView, error)
	AppendAudit(ctx context.Context, e lineage.AuditEntry) (lineage.AuditEntry, error)
}

// Config builds Drills.
type Config struct {
	Store  Store
	Source *objects.S3Source
	Keys   keys.Provider
	S3     *s3.Client
	Bucket string // backup bucket
	// PerApp is how many of each app's most recent restorable backups a drill restores (default 1).
	PerApp     int
	PageSize   int
	Revocation wferr.RevocationReporter
	Events     audit.Emitter
	Clock      clock.Clock
	Logger     *slog.Logger
}

// Drills runs the drill steps.
type Drills struct {
	cfg    Config
	log    *slog.Logger
	unwrap *sealing.CachingUnwrapper
}

// New returns the drill steps.
func New(cfg Config) (*Drills, error) {
	if cfg.Store == nil || cfg.Source == nil || cfg.Keys == nil || cfg.S3 == nil || cfg.Bucket == "" {
		return nil, errors.New("drill: needs the lineage store, the S3 data source, a key provider, an S3 client and the backup bucket")
	}
	if cfg.PerApp <= 0 {
		cfg.PerApp = 1
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = 200
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
	return &Drills{cfg: cfg, log: cfg.Logger, unwrap: sealing.NewCachingUnwrapperSize(sealing.ProviderUnwrapper(cfg.Keys), 64)}, nil
}

// Close destroys cached keys.
func (d *Drills) Close() { d.unwrap.Close() }

// ID derives a drill id from its execution.
func ID(executionArn string) string {
	h := sha256.Sum256([]byte("drill\x00" + executionArn))
	return hex.EncodeToString(h[:12])
}

// PlanInput is the input of Plan: the execution input (optional `{"perApp":N,"appIds":[...]}`),
// the execution ARN and the listing cursor.
type PlanInput struct {
	Input struct {
		PerApp int      `json:"perApp,omitempty"`
		AppIDs []string `json:"appIds,omitempty"`
	} `json:"input"`
	ExecutionArn string `json:"executionArn"`
	Cursor       string `json:"cursor,omitempty"`
}

// Target is one backup to drill.
type Target struct {
	DrillID      string `json:"drillId"`
	AppID        string `json:"appId"`
	BackupID     string `json:"backupId"`
	ExecutionArn string `json:"executionArn"`
}

// PlanOutput is one page of drill targets.
type PlanOutput struct {
	DrillID string   `json:"drillId"`
	Items   []Target `json:"items"`
	Next    string   `json:"next"`
	HasMore bool     `json:"hasMore"`
}

// Plan picks the sample: the most recent PerApp restorable backups of each app.
func (d *Drills) Plan(ctx context.Context, in PlanInput) (PlanOutput, error) {
	if in.ExecutionArn == "" {
		return PlanOutput{}, &wferr.Invalid{Msg: "drill: Plan needs the execution ARN"}
	}
	per := d.cfg.PerApp
	if in.Input.PerApp > 0 {
		per = in.Input.PerApp
	}
	out := PlanOutput{DrillID: ID(in.ExecutionArn), Items: []Target{}}
	var apps []string
	if len(in.Input.AppIDs) > 0 {
		apps = in.Input.AppIDs
	} else {
		page, err := d.cfg.Store.ListApps(ctx, in.Cursor, d.cfg.PageSize)
		if err != nil {
			return PlanOutput{}, wferr.From(err)
		}
		for _, a := range page.Items {
			if a.Status != lineage.AppDeactivated {
				apps = append(apps, a.ID)
			}
		}
		out.Next, out.HasMore = page.Next, page.Next != ""
	}
	for _, app := range apps {
		bs, err := d.cfg.Store.ListBackups(ctx, app)
		if err != nil {
			return PlanOutput{}, wferr.From(err)
		}
		var ok []lineage.BackupView
		for _, b := range bs {
			if b.Restorable {
				ok = append(ok, b)
			}
		}
		sort.SliceStable(ok, func(i, j int) bool { return ok[i].CreatedAt.After(ok[j].CreatedAt) })
		for i := 0; i < len(ok) && i < per; i++ {
			out.Items = append(out.Items, Target{DrillID: out.DrillID, AppID: app, BackupID: ok[i].ID, ExecutionArn: in.ExecutionArn})
		}
	}
	d.log.InfoContext(ctx, "drill planned", "drill", out.DrillID, "targets", len(out.Items), "more", out.HasMore)
	return out, nil
}

// Outcome is one drill's result.
type Outcome struct {
	Target
	Status  string `json:"status"`
	Reason  string `json:"reason,omitempty"`
	Digest  string `json:"digest,omitempty"`
	Objects int    `json:"objects,omitempty"`
}

// Run restores one backup into the drill's scratch target, checks its digest twice (the backup
// stream against the recorded digest, and a snapshot of the restored copy against it) while
// opening every restored object, deletes the scratch copy, and audits the outcome. A damaged
// backup is a FAILED outcome (and an event), not a step error.
func (d *Drills) Run(ctx context.Context, t Target) (Outcome, error) {
	if t.DrillID == "" || t.AppID == "" || t.BackupID == "" {
		return Outcome{}, &wferr.Invalid{Msg: "drill: a target needs drillId, appId and backupId"}
	}
	bv, err := d.cfg.Store.GetBackup(ctx, t.AppID, t.BackupID)
	if err != nil {
		return Outcome{}, wferr.From(err)
	}
	if !bv.Restorable {
		return Outcome{Target: t, Status: StatusSkipped, Reason: "no longer restorable: " + bv.Reason}, nil
	}
	scratch := d.cfg.Source.WithPrefix("drills/" + t.DrillID + "/")
	oc, err := d.drill(ctx, scratch, t, bv.Backup)
	if _, derr := scratch.DeleteAll(context.WithoutCancel(ctx), t.AppID); derr != nil {
		d.log.WarnContext(ctx, "drill: deleting the scratch copy failed", "drill", t.DrillID, "app", t.AppID, "error", derr)
	}
	if err != nil {
		if kr := wferr.ReportIfRevoked(ctx, d.cfg.Revocation, d.log, "restore drill "+t.DrillID, err); kr != nil {
			oc = Outcome{Target: t, Status: StatusFailed, Reason: "the backup's key is not usable: " + kr.Msg}
		} else if errors.Is(err, keys.ErrTransient) || errors.Is(err, context.DeadlineExceeded) {
			return Outcome{}, &wferr.Transient{Msg: err.Error()}
		} else {
			oc = Outcome{Target: t, Status: StatusFailed, Reason: err.Error()}
		}
	}
	if err := d.record(ctx, oc); err != nil {
		return Outcome{}, err
	}
	return oc, nil
}

func (d *Drills) drill(ctx context.Context, scratch *objects.S3Source, t Target, b lineage.Backup) (Outcome, error) {
	// Pass 1: restore from the backup into scratch, hashing the stream.
	app, err := d.cfg.Store.GetApp(ctx, t.AppID)
	if err != nil {
		return Outcome{}, fmt.Errorf("drill: app %s: %w", t.AppID, err)
	}
	pr, closer, err := backup.Open(ctx, d.cfg.S3, d.cfg.Bucket, d.unwrap, app.OrgID, b)
	if err != nil {
		return Outcome{}, err
	}
	h := sha256.New()
	rs, err := scratch.RestoreSnapshot(ctx, t.AppID, io.TeeReader(pr, h))
	if err == nil {
		var n int64
		if n, err = io.Copy(h, pr); err == nil && n > 0 {
			err = fmt.Errorf("%w: %d bytes after the end record", objects.ErrCorruptSnapshot, n)
		}
	}
	closer.Close()
	if err != nil {
		return Outcome{}, fmt.Errorf("restoring backup %s: %w", b.ID, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != b.Digest {
		return Outcome{}, fmt.Errorf("backup %s: digest %s differs from the recorded %s", b.ID, got, b.Digest)
	}
	// Pass 2: snapshot the restored copy while opening every object in it.
	h2 := sha256.New()
	spr, spw := io.Pipe()
	snapErr := make(chan error, 1)
	go func() {
		_, err := scratch.Snapshot(ctx, t.AppID, io.MultiWriter(h2, spw))
		spw.CloseWithError(err)
		snapErr <- err
	}()
	vs, verr := scratch.VerifySnapshot(ctx, spr)
	spr.CloseWithError(errors.New("drill: verification ended"))
	if serr := <-snapErr; serr != nil && verr == nil {
		verr = serr
	}
	if verr != nil {
		return Outcome{}, fmt.Errorf("restored copy of backup %s: %w", b.ID, verr)
	}
	if vs.Objects != rs.Objects || (b.ObjectCount > 0 && vs.Objects != b.ObjectCount) {
		return Outcome{}, fmt.Errorf("backup %s: %d objects recorded, %d restored, %d read back", b.ID, b.ObjectCount, rs.Objects, vs.Objects)
	}
	if rs.Resealed == 0 {
		if got := hex.EncodeToString(h2.Sum(nil)); got != b.Digest {
			return Outcome{}, fmt.Errorf("restored copy of backup %s: digest %s differs from the recorded %s", b.ID, got, b.Digest)
		}
	}
	return Outcome{Target: t, Status: StatusPassed, Digest: b.Digest, Objects: rs.Objects}, nil
}

func (d *Drills) record(ctx context.Context, oc Outcome) error {
	action := ActionDrillPassed
	if oc.Status == StatusFailed {
		action = ActionDrillFailed
	}
	detail := map[string]string{"backupId": oc.BackupID, "drillId": oc.DrillID, "status": oc.Status}
	if oc.Reason != "" {
		detail["reason"] = oc.Reason
	}
	if oc.Digest != "" {
		detail["digest"] = oc.Digest
	}
	if _, err := d.cfg.Store.AppendAudit(ctx, lineage.AuditEntry{AppID: oc.AppID, Action: action, Actor: "restore-drill",
		Cause: lineage.Cause{ExecutionArn: oc.ExecutionArn, RequestID: oc.DrillID, Actor: "restore-drill"}, Detail: detail}); err != nil {
		return wferr.From(err)
	}
	d.log.InfoContext(ctx, "drill outcome", "drill", oc.DrillID, "app", oc.AppID, "backup", oc.BackupID, "status", oc.Status, "reason", oc.Reason)
	if oc.Status == StatusFailed {
		ev := audit.Event{DetailType: audit.DetailDrillFailed, Time: d.cfg.Clock.Now(), Detail: map[string]any{
			"appId": oc.AppID, "backupId": oc.BackupID, "drillId": oc.DrillID, "reason": oc.Reason, "executionArn": oc.ExecutionArn}}
		if err := d.cfg.Events.Emit(ctx, ev); err != nil {
			d.log.ErrorContext(ctx, "drill: emitting event failed", "error", err)
		}
	}
	return nil
}
