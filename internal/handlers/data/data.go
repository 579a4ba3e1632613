// Package data builds the data plane's Lambda handlers: the backup, restore and
// restore-drill steps. Each exported constructor is named by its function's main.go.
package data

import (
	"context"
	"fmt"
	"time"

	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/handlers"
	"github.com/keyline/keyline/internal/objects"
	"github.com/keyline/keyline/internal/workflow/backup"
	"github.com/keyline/keyline/internal/workflow/drill"
	"github.com/keyline/keyline/internal/workflow/restore"
)

// The data plane's functions, one constructor each.
var (
	BackupListDue = backupStep((*backup.Backups).ListDue)
	BackupLease   = backupStep((*backup.Backups).Lease)
	BackupUpload  = backupStep((*backup.Backups).Upload)
	BackupRecord  = backupStep((*backup.Backups).Record)
	BackupFail    = backupStep((*backup.Backups).Fail)
	RestoreStart  = restoreStep((*restore.Restores).Start)
	RestoreRun    = restoreStep((*restore.Restores).Run)
	RestoreFinish = restoreStep((*restore.Restores).Finish)
	RestoreFail   = restoreStep((*restore.Restores).Fail)
	DrillPlan     = drillStep((*drill.Drills).Plan)
	DrillRun      = drillStep((*drill.Drills).Run)
)

// Defaults of the data plane's settings when the environment leaves them unset.
const (
	// DefaultBackupInterval is how often an app is due for a backup.
	DefaultBackupInterval = time.Hour
	// DefaultDrillPerApp is how many backups of each app a drill restores.
	DefaultDrillPerApp = 1
)

// env is what the data plane's handlers are built from.
type env struct {
	*handlers.Platform
	source       *objects.S3Source
	backupBucket string
	partSize     int64
	concurrency  int
}

// newEnv builds the clients and domain services from the function's settings.
func newEnv(d handlers.Deps) (*env, error) {
	backupBucket, err := d.Get(infra.EnvBackupBucket)
	if err != nil {
		return nil, err
	}
	if _, err := d.Get(infra.EnvEventBusName); err != nil { // the data plane always audits (B5)
		return nil, err
	}
	p, err := handlers.NewPlatform(d)
	if err != nil {
		return nil, err
	}
	partMiB, err := d.IntSetting(infra.EnvPartSizeMiB, objects.DefaultPartSize>>20)
	if err != nil {
		return nil, err
	}
	conc, err := d.IntSetting(infra.EnvUploadConcurrency, objects.DefaultConcurrency)
	if err != nil {
		return nil, err
	}
	partSize := int64(partMiB) << 20
	src, err := p.ObjectSource(d, partSize, conc)
	if err != nil {
		return nil, err
	}
	return &env{Platform: p, source: src, backupBucket: backupBucket, partSize: partSize, concurrency: conc}, nil
}

func (e *env) backups(d handlers.Deps) (*backup.Backups, error) {
	interval := DefaultBackupInterval
	if v := d.Env(infra.EnvBackupInterval); v != "" {
		iv, err := time.ParseDuration(v)
		if err != nil || iv <= 0 {
			return nil, fmt.Errorf("setting %s=%q: want a duration such as 1h", infra.EnvBackupInterval, v)
		}
		interval = iv
	}
	return backup.New(backup.Config{Store: e.Store, Source: e.source, Keys: e.Keys, S3: e.S3, Bucket: e.backupBucket,
		Revocation: e.Revocation, Events: e.Events, Interval: interval, PartSize: e.partSize, Concurrency: e.concurrency,
		Clock: d.Clock, Logger: d.Logger, Metrics: handlers.MetricsOutput(d)})
}

func (e *env) restores(d handlers.Deps) (*restore.Restores, error) {
	return restore.New(restore.Config{Store: e.Store, Source: e.source, Keys: e.Keys, S3: e.S3, Bucket: e.backupBucket,
		Revocation: e.Revocation, Events: e.Events, Clock: d.Clock, Logger: d.Logger})
}

func (e *env) drills(d handlers.Deps) (*drill.Drills, error) {
	per, err := d.IntSetting(infra.EnvDrillPerApp, DefaultDrillPerApp)
	if err != nil {
		return nil, err
	}
	return drill.New(drill.Config{Store: e.Store, Source: e.source, Keys: e.Keys, S3: e.S3, Bucket: e.backupBucket, PerApp: per,
		Revocation: e.Revocation, Events: e.Events, Clock: d.Clock, Logger: d.Logger})
}

// step adapts one method of a step service (built by build) to a typed constructor.
func step[S, In, Out any](build func(*env, handlers.Deps) (S, error), method func(S, context.Context, In) (Out, error)) handlers.Constructor[func(context.Context, In) (Out, error)] {
	return func(_ context.Context, d handlers.Deps) (func(context.Context, In) (Out, error), error) {
		e, err := newEnv(d)
		if err != nil {
			return nil, err
		}
		svc, err := build(e, d)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, in In) (Out, error) { return method(svc, ctx, in) }, nil
	}
}

func backupStep[In, Out any](m func(*backup.Backups, context.Context, In) (Out, error)) handlers.Constructor[func(context.Context, In) (Out, error)] {
	return step((*env).backups, m)
}

func restoreStep[In, Out any](m func(*restore.Restores, context.Context, In) (Out, error)) handlers.Constructor[func(context.Context, In) (Out, error)] {
	return step((*env).restores, m)
}

func drillStep[In, Out any](m func(*drill.Drills, context.Context, In) (Out, error)) handlers.Constructor[func(context.Context, In) (Out, error)] {
	return step((*env).drills, m)
}
