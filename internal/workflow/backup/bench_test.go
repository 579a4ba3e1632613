package backup_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/keyline/keyline/internal/objects"
	"github.com/keyline/keyline/internal/objects/objectstest"
	"github.com/keyline/keyline/internal/workflow/backup"
)

// BenchmarkBackup backs up a 64 MiB app (four 16 MiB objects) end to end per iteration against
// the in-process endpoints, and a plain upload of the same number of bytes for comparison. It
// reports backup_MBps, backup_vs_s3_put_ratio and kms_calls_per_backup.
func BenchmarkBackup(b *testing.B) {
	const objSize, objs = 16 << 20, 4
	e := objectstest.New(b)
	bk, err := backup.New(backup.Config{Store: e.Store, Source: e.Source, Keys: e.Keys, S3: e.S3.Client, Bucket: objectstest.BackupBucket,
		PartSize: 16 << 20, Concurrency: 2, Logger: e.Logger})
	if err != nil {
		b.Fatal(err)
	}
	e.Org(b, "org1")
	e.CMKApp(b, "org1", "big")
	chunk := bytes.Repeat([]byte("keyline-bench-data-"), objSize/19+1)[:objSize]
	for i := range objs {
		e.Put(b, "big", objects.ScopeCMK, fmt.Sprintf("obj-%d", i), chunk)
	}
	ctx := context.Background()
	// Baseline: a plain multipart upload of the same bytes.
	plain := bytes.Repeat(chunk, objs)
	start := time.Now()
	if _, err := e.S3.Client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(objectstest.BackupBucket), Key: aws.String("plain"),
		Body: bytes.NewReader(plain), ContentLength: aws.Int64(int64(len(plain)))}); err != nil {
		b.Fatal(err)
	}
	plainDur := time.Since(start)
	e.Keys.Reset()
	b.SetBytes(objSize * objs)
	b.ResetTimer()
	var total time.Duration
	for i := range b.N {
		in := backup.DueInput{ExecutionArn: fmt.Sprintf("bench-%d", i)}
		in.Input.AppIDs = []string{"big"}
		s := time.Now()
		out, err := bk.ListDue(ctx, in)
		if err != nil {
			b.Fatal(err)
		}
		st, err := bk.Lease(ctx, out.Items[0])
		if err == nil {
			st, err = bk.Upload(ctx, st)
		}
		if err == nil {
			st, err = bk.Record(ctx, st)
		}
		if err != nil || st.Status != backup.StatusRecorded {
			b.Fatalf("%+v %v", st, err)
		}
		total += time.Since(s)
	}
	b.StopTimer()
	per := total / time.Duration(b.N)
	b.ReportMetric(float64(objSize*objs)/per.Seconds()/1e6, "backup_MBps")
	b.ReportMetric(per.Seconds()/plainDur.Seconds(), "backup_vs_s3_put_ratio")
	b.ReportMetric(float64(e.Keys.Counts().Total())/float64(b.N), "kms_calls_per_backup")
}
