package handlers

import (
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/audit"
	"github.com/keyline/keyline/internal/keys"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/objects"
	"github.com/keyline/keyline/internal/workflow/revocation"
)

// Platform holds the clients and domain services that every function is built from:
// the lineage store, the KMS key provider, the audit emitter (EventBridge when the
// function has the event bus, else events are dropped), the revocation path that KMS
// errors feed (B2) and an S3 client. One place builds them, so every function sees the
// same configuration.
type Platform struct {
	Table      string
	DDB        *dynamodb.Client
	Store      *lineage.Store
	Keys       keys.Provider
	Events     audit.Emitter
	Revocation *revocation.Service
	S3         *s3.Client
}

// NewPlatform builds the platform from the function's settings.
func NewPlatform(d Deps) (*Platform, error) {
	table, err := d.Get(infra.EnvTableName)
	if err != nil {
		return nil, err
	}
	ddb := dynamodb.NewFromConfig(d.AWS)
	store := lineage.New(ddb, table, lineage.Options{Clock: d.Clock, Logger: d.Logger})
	kp := keys.NewKMS(kms.NewFromConfig(d.AWS), keys.Options{Clock: d.Clock, Logger: d.Logger})
	var events audit.Emitter = audit.Discard{}
	if bus := d.Env(infra.EnvEventBusName); bus != "" {
		eb, err := audit.NewEventBridge(eventbridge.NewFromConfig(d.AWS), bus, audit.EventBridgeOptions{Clock: d.Clock, Logger: d.Logger})
		if err != nil {
			return nil, err
		}
		events = eb
	}
	window, err := revocation.ParseWindow(d.Env(infra.EnvReactivationWindow))
	if err != nil {
		return nil, fmt.Errorf("setting %s: %w", infra.EnvReactivationWindow, err)
	}
	rev, err := revocation.New(revocation.Config{Store: store, Keys: kp, Emitter: events, Window: window, Clock: d.Clock, Logger: d.Logger})
	if err != nil {
		return nil, err
	}
	pathStyle := d.Env(infra.EnvS3PathStyle) == "true"
	s3c := s3.NewFromConfig(d.AWS, func(o *s3.Options) { o.UsePathStyle = pathStyle })
	return &Platform{Table: table, DDB: ddb, Store: store, Keys: kp, Events: events, Revocation: rev, S3: s3c}, nil
}

// ObjectSource is the apps' data in the data bucket (the reference data source).
// partSize and concurrency tune multipart uploads (0: the source's defaults).
func (p *Platform) ObjectSource(d Deps, partSize int64, concurrency int) (*objects.S3Source, error) {
	bucket, err := d.Get(infra.EnvDataBucket)
	if err != nil {
		return nil, err
	}
	return objects.NewS3(objects.Config{S3: p.S3, Bucket: bucket, Lineage: p.Store,
		Keys: p.Keys, ProviderKeyARN: d.Env(infra.EnvProviderKeyARN), PartSize: partSize, Concurrency: concurrency,
		Logger: d.Logger, Clock: d.Clock})
}
