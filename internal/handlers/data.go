package handlers

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/audit"
	"github.com/keyline/keyline/internal/keys"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/objects"
	"github.com/keyline/keyline/internal/workflow/backup"
	"github.com/keyline/keyline/internal/workflow/drill"
	"github.com/keyline/keyline/internal/workflow/restore"
	"github.com/keyline/keyline/internal/workflow/revocation"
)

// dataEnv is what the data plane's handlers are built from.
type dataEnv struct {
	store        *lineage.Store
	keys         keys.Provider
	s3           *s3.Client
	source       *objects.S3Source
	events       audit.Emitter
	revocation   *revocation.Service
	backupBucket string
	partSize     int64
	concurrency  int
}

// newDataEnv builds the clients and domain services from the function's settings.
func newDataEnv(_ context.Context, d Deps) (*dataEnv, error) {
	table, err := d.Get(infra.EnvTableName)
	if err != nil {
		return nil, err
	}
	dataBucket, err := d.Get(infra.EnvDataBucket)
	if err != nil {
		return nil, err
	}
	backupBucket, err := d.Get(infra.EnvBackupBucket)
	if err != nil {
		return nil, err
	}
	bus, err := d.Get(infra.EnvEventBusName)
	if err != nil {
		return nil, err
	}
	ddb := dynamodb.NewFromConfig(d.AWS)
	store := lineage.New(ddb, table, lineage.Options{Clock: d.Clock, Logger: d.Logger})
	kp := keys.NewKMS(kms.NewFromConfig(d.AWS), keys.Options{Clock: d.Clock, Logger: d.Logger})
	pathStyle := d.Env("KEYLINE_S3_PATH_STYLE") == "true"
	s3c := s3.NewFromConfig(d.AWS, func(o *s3.Options) { o.UsePathStyle = pathStyle })
	events, err := audit.NewEventBridge(eventbridge.NewFromConfig(d.AWS), bus, audit.EventBridgeOptions{Clock: d.Clock, Logger: d.Logger})
	if err != nil {
		return nil, err
	}
	window, err := revocation.ParseWindow(d.Env(infra.EnvReactivationWindow))
	if err != nil {
		return nil, fmt.Errorf("setting %s: %w", infra.EnvReactivationWindow, err)
	}
	rev, err := revocation.New(revocation.Config{Store: store, Keys: kp, Emitter: events, Window: window, Clock: d.Clock, Logger: d.Logger})
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
	src, err := objects.NewS3(objects.Config{S3: s3c, Bucket: dataBucket, Lineage: store, DynamoDB: ddb, Table: table, Keys: kp,
		ProviderKeyARN: d.Env(infra.EnvProviderKeyARN), PartSize: int64(partMiB) << 20, Concurrency: conc, Logger: d.Logger, Clock: d.Clock})
	if err != nil {
		return nil, err
	}
	return &dataEnv{store: store, keys: kp, s3: s3c, source: src, events: events, revocation: rev, backupBucket: backupBucket,
		partSize: int64(partMiB) << 20, concurrency: conc}, nil
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
