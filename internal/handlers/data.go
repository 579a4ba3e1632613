package handlers

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/objects"
	"github.com/keyline/keyline/internal/workflow/backup"
	"github.com/keyline/keyline/internal/workflow/drill"
	"github.com/keyline/keyline/internal/workflow/restore"
)

// dataEnv is what the data plane's handlers are built from.
type dataEnv struct {
	*platform
	source       *objects.S3Source
	backupBucket string
	partSize     int64
	concurrency  int
}

// newDataEnv builds the clients and domain services from the function's settings.
func newDataEnv(_ context.Context, d Deps) (*dataEnv, error) {
	backupBucket, err := d.Get(infra.EnvBackupBucket)
	if err != nil {
		return nil, err
	}
	if _, err := d.Get(infra.EnvEventBusName); err != nil { // the data plane always audits (B5)
		return nil, err
	}
	p, err := newPlatform(d)
	if err != nil {
		return nil, err
	}
	partMiB, err := intSetting(d, infra.EnvPartSizeMiB, 16)
	if err != nil {
		return nil, err
	}
	conc, err := intSetting(d, infra.EnvUploadConcurrency, 3)
	if err != nil {
		return nil, err
	}
	src, err := p.objectSource(d, int64(partMiB)<<20, conc)
	if err != nil {
		return nil, err
	}
	return &dataEnv{platform: p, source: src, backupBucket: backupBucket, partSize: int64(partMiB) << 20, concurrency: conc}, nil
}

func intSetting(d Deps, key string, def int) (int, error) {
	v := d.Env(key)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("setting %s=%q: want a positive whole number", key, v)
	}
	return n, nil
}

func (e *dataEnv) backups(d Deps) (*backup.Backups, error) {
	interval := time.Hour
	if v := d.Env(infra.EnvBackupInterval); v != "" {
		iv, err := time.ParseDuration(v)
		if err != nil || iv <= 0 {
			return nil, fmt.Errorf("setting %s=%q: want a duration such as 1h", infra.EnvBackupInterval, v)
		}
		interval = iv
	}
	return backup.New(backup.Config{Store: e.store, Source: e.source, Keys: e.keys, S3: e.s3, Bucket: e.backupBucket,
		Revocation: e.revocation, Events: e.events, Interval: interval, PartSize: e.partSize, Concurrency: e.concurrency,
		Clock: d.Clock, Logger: d.Logger, Metrics: metricsOutput(d)})
}

func (e *dataEnv) restores(d Deps) (*restore.Restores, error) {
	return restore.New(restore.Config{Store: e.store, Source: e.source, Keys: e.keys, S3: e.s3, Bucket: e.backupBucket,
		Revocation: e.revocation, Events: e.events, Clock: d.Clock, Logger: d.Logger})
}

func (e *dataEnv) drills(d Deps) (*drill.Drills, error) {
	per, err := intSetting(d, infra.EnvDrillPerApp, 1)
	if err != nil {
		return nil, err
	}
	return drill.New(drill.Config{Store: e.store, Source: e.source, Keys: e.keys, S3: e.s3, Bucket: e.backupBucket, PerApp: per,
		Revocation: e.revocation, Events: e.events, Clock: d.Clock, Logger: d.Logger})
}

// dataStep adapts a step constructor to a Constructor.
func dataStep[T any](build func(*dataEnv, Deps) (T, error), pick func(T) any) Constructor {
	return func(ctx context.Context, d Deps) (any, error) {
		env, err := newDataEnv(ctx, d)
		if err != nil {
			return nil, err
		}
		v, err := build(env, d)
		if err != nil {
			return nil, err
		}
		return pick(v), nil
	}
}

func dataHandlers() map[string]Constructor {
	bk := func(e *dataEnv, d Deps) (*backup.Backups, error) { return e.backups(d) }
	rs := func(e *dataEnv, d Deps) (*restore.Restores, error) { return e.restores(d) }
	dr := func(e *dataEnv, d Deps) (*drill.Drills, error) { return e.drills(d) }
	return map[string]Constructor{
		infra.FnBackupListDue: dataStep(bk, func(b *backup.Backups) any { return b.ListDue }),
		infra.FnBackupLease:   dataStep(bk, func(b *backup.Backups) any { return b.Lease }),
		infra.FnBackupUpload:  dataStep(bk, func(b *backup.Backups) any { return b.Upload }),
		infra.FnBackupRecord:  dataStep(bk, func(b *backup.Backups) any { return b.Record }),
		infra.FnBackupFail:    dataStep(bk, func(b *backup.Backups) any { return b.Fail }),
		infra.FnRestoreStart:  dataStep(rs, func(r *restore.Restores) any { return r.Start }),
		infra.FnRestoreRun:    dataStep(rs, func(r *restore.Restores) any { return r.Run }),
		infra.FnRestoreFinish: dataStep(rs, func(r *restore.Restores) any { return r.Finish }),
		infra.FnRestoreFail:   dataStep(rs, func(r *restore.Restores) any { return r.Fail }),
		infra.FnDrillPlan:     dataStep(dr, func(x *drill.Drills) any { return x.Plan }),
		infra.FnDrillRun:      dataStep(dr, func(x *drill.Drills) any { return x.Run }),
	}
}
