package backup_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/keyline/keyline/internal/benchfmt"
	"github.com/keyline/keyline/internal/decl"
	"github.com/keyline/keyline/internal/objects"
	"github.com/keyline/keyline/internal/objects/objectstest"
	"github.com/keyline/keyline/internal/workflow/backup"
)

// Settings of BenchmarkBackup.
const (
	benchObjSize     = 16 << 20
	benchObjs        = 4                      // 64 MiB
	benchPartSize    = decl.PartSizeMiB << 20 // the deployed part size and concurrency
	benchConcurrency = decl.UploadConcurrency
	benchPairs       = 9
)

// BenchmarkBackup backs up a 64 MiB app (four 16 MiB objects) end to end in process (list
// due, lease, upload, record) against the in-process endpoints, in benchPairs alternating
// pairs with the same S3 work done plainly (objectstest.PlainCopy: the app's objects read
// back from the data bucket and uploaded as one object, multipart with the backup's part
// size and concurrency). It reports backup_64MiB_MBps (from the median backup),
// backup_64MiB_vs_s3_put_ratio (the median of the pairs after benchfmt's uncounted warm-up
// pair, with its spread) and
// kms_calls_inproc_per_backup.
func BenchmarkBackup(b *testing.B) {
	e := objectstest.New(b)
	bk, err := backup.New(backup.Config{Store: e.Store, Source: e.Source, Keys: e.Keys, S3: e.S3.Client, Bucket: objectstest.BackupBucket,
		PartSize: benchPartSize, Concurrency: benchConcurrency, Logger: e.Logger})
	if err != nil {
		b.Fatal(err)
	}
	e.Org(b, "org1")
	e.CMKApp(b, "org1", "big")
	chunk := bytes.Repeat([]byte("keyline-bench-data-"), benchObjSize/19+1)[:benchObjSize]
	for i := range benchObjs {
		e.Put(b, "big", objects.ScopeCMK, fmt.Sprintf("obj-%d", i), chunk)
	}
	ctx := context.Background()
	e.Keys.Reset()
	var backups []time.Duration // the counted pairs' backups
	ran := 0                    // every backup, the warm-up's too
	var plain objectstest.PlainCopyResult
	b.ResetTimer()
	for i := range b.N {
		r, err := benchfmt.Pairs(ctx, "backup_64MiB_vs_s3_put_ratio", benchPairs,
			func(ctx context.Context, pair int) (time.Duration, error) {
				in := backup.DueInput{ExecutionArn: fmt.Sprintf("bench-%d-%d", i, pair)}
				in.Input.AppIDs = []string{"big"}
				s := time.Now()
				out, err := bk.ListDue(ctx, in)
				if err != nil {
					return 0, err
				}
				st, err := bk.Lease(ctx, out.Items[0])
				if err == nil {
					st, err = bk.Upload(ctx, st)
				}
				if err == nil {
					st, err = bk.Record(ctx, st)
				}
				d := time.Since(s)
				if err != nil || st.Status != backup.StatusRecorded {
					return 0, fmt.Errorf("backup: %+v %w", st, err)
				}
				ran++
				if pair != benchfmt.WarmupPair {
					backups = append(backups, d)
				}
				return d, nil
			},
			func(ctx context.Context, pair int) (time.Duration, error) {
				s := time.Now()
				res, err := objectstest.PlainCopy(ctx, e.S3.Client, objectstest.DataBucket, "apps/big/", objectstest.BackupBucket,
					fmt.Sprintf("plain-%d-%d", i, pair), benchPartSize, benchConcurrency)
				d := time.Since(s)
				if err == nil && res.Objects != benchObjs {
					err = fmt.Errorf("plain copy read %d objects, want %d", res.Objects, benchObjs)
				}
				plain = res
				return d, err
			})
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("pair ratios: %.3f", r.Ratios)
		if i == b.N-1 {
			if err := r.Report(b); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	slices.Sort(backups)
	median := backups[len(backups)/2]
	b.ReportMetric(float64(benchObjSize*benchObjs)/median.Seconds()/1e6, "backup_64MiB_MBps")
	b.ReportMetric(float64(e.Keys.Counts().Total())/float64(ran), "kms_calls_inproc_per_backup")
	if err := benchfmt.Note(b, "backup_64MiB_vs_s3_put_ratio",
		"both sides read the app's %d objects (%d bytes stored) back from the same S3 and upload one object multipart (%d MiB parts, %d at once); the backup also seals, calls KMS once and writes its lease and record to DynamoDB; in process",
		plain.Objects, plain.Bytes, benchPartSize>>20, benchConcurrency); err != nil {
		b.Fatal(err)
	}
}
