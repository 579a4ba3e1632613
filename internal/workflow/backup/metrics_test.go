package backup_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/keyline/keyline/internal/clock/clocktest"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/objects"
	"github.com/keyline/keyline/internal/objects/objectstest"
	"github.com/keyline/keyline/internal/workflow/backup"
)

// emf parses one embedded-metric-format line strictly: the structure CloudWatch requires,
// BackupAgeMaxSeconds in namespace keyline with no dimensions (what infra/cdk's alarm reads),
// and returns its value and timestamp.
func emf(t *testing.T, line string) (float64, time.Time) {
	t.Helper()
	var doc map[string]json.RawMessage
	if err := json.Unmarshal([]byte(line), &doc); err != nil {
		t.Fatalf("EMF line is not a JSON object: %v: %q", err, line)
	}
	var meta struct {
		Timestamp         *int64
		CloudWatchMetrics []struct {
			Namespace  string
			Dimensions [][]string
			Metrics    []map[string]string
		}
	}
	dec := json.NewDecoder(bytes.NewReader(doc["_aws"]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&meta); err != nil || meta.Timestamp == nil || len(meta.CloudWatchMetrics) != 1 {
		t.Fatalf("EMF _aws member %s: %v", doc["_aws"], err)
	}
	d := meta.CloudWatchMetrics[0]
	if d.Namespace != "keyline" || !reflect.DeepEqual(d.Dimensions, [][]string{{}}) ||
		!reflect.DeepEqual(d.Metrics, []map[string]string{{"Name": "BackupAgeMaxSeconds", "Unit": "Seconds"}}) {
		t.Errorf("EMF directive %+v", d)
	}
	if len(doc) != 2 {
		t.Errorf("EMF line has members beyond _aws and the metric: %s", line)
	}
	var v float64
	if err := json.Unmarshal(doc["BackupAgeMaxSeconds"], &v); err != nil {
		t.Fatalf("EMF value %s: %v", doc["BackupAgeMaxSeconds"], err)
	}
	return v, time.UnixMilli(*meta.Timestamp)
}

// lines splits what was written into lines, each ending in a newline.
func lines(t *testing.T, buf *bytes.Buffer) []string {
	t.Helper()
	s := buf.String()
	buf.Reset()
	if s == "" {
		return nil
	}
	if !strings.HasSuffix(s, "\n") {
		t.Errorf("output does not end with a newline: %q", s)
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

func TestWriteMetricIsEMF(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 891e6, time.UTC)
	var buf bytes.Buffer
	if err := backup.WriteMetric(&buf, now, backup.MetricNamespace, backup.MetricBackupAgeMax, "Seconds", 93784); err != nil {
		t.Fatal(err)
	}
	ls := lines(t, &buf)
	if len(ls) != 1 {
		t.Fatalf("%d lines, want 1", len(ls))
	}
	v, ts := emf(t, ls[0])
	if v != 93784 || !ts.Equal(now.Truncate(time.Millisecond)) {
		t.Errorf("value %v at %v, want 93784 at %v", v, ts, now)
	}
	if err := backup.WriteMetric(failingWriter{}, now, "keyline", "X", "Count", 1); err == nil {
		t.Error("a failed write is not reported")
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("closed") }

func TestMaxBackupAge(t *testing.T) {
	now := time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)
	app := func(status lineage.AppStatus, created, last time.Duration) lineage.App {
		a := lineage.App{Status: status, CreatedAt: now.Add(-created)}
		if last > 0 {
			a.LastBackupAt = now.Add(-last)
		}
		return a
	}
	cases := []struct {
		name string
		apps []lineage.App
		want time.Duration
	}{
		{"no apps", nil, 0},
		{"backed up", []lineage.App{app(lineage.AppActive, 90*time.Hour, 2*time.Hour), app(lineage.AppActive, 90*time.Hour, 5*time.Hour)}, 5 * time.Hour},
		{"never backed up counts from creation", []lineage.App{app(lineage.AppActive, 3*time.Hour, 0), app(lineage.AppActive, 90*time.Hour, time.Hour)}, 3 * time.Hour},
		{"deactivated and re-encrypting apps do not count", []lineage.App{
			app(lineage.AppDeactivated, 90*time.Hour, 80*time.Hour), app(lineage.AppReencrypting, 90*time.Hour, 70*time.Hour),
			app(lineage.AppActive, 90*time.Hour, time.Minute)}, time.Minute},
		{"only inactive apps", []lineage.App{app(lineage.AppDeactivated, 90*time.Hour, 80*time.Hour)}, 0},
		{"a backup in the future (clock skew) is never negative", []lineage.App{{Status: lineage.AppActive, CreatedAt: now.Add(time.Hour), LastBackupAt: now.Add(time.Hour)}}, 0},
	}
	for _, c := range cases {
		if got := backup.MaxBackupAge(c.apps, now); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// TestListDueReportsBackupAge drives the scheduled ListDue over the real lineage table, on
// a fake clock: every call writes one EMF line with the oldest latest backup of the page's
// active apps.
func TestListDueReportsBackupAge(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)
	clk := clocktest.NewFake(t0)
	e := objectstest.New(t)
	e.Store = lineage.New(e.DDB, e.Table, lineage.Options{Clock: clk, Logger: e.Logger})
	e.Org(t, "org1")
	var buf bytes.Buffer
	newBackups := func(pageSize int) *backup.Backups {
		b, err := backup.New(backup.Config{Store: e.Store, Source: e.Source, Keys: e.Keys, S3: e.S3.Client, Bucket: objectstest.BackupBucket,
			PageSize: pageSize, PartSize: 5 << 20, Clock: clk, Logger: e.Logger, Metrics: &buf})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b := newBackups(0)
	listed := func(b *backup.Backups, exec string) []float64 {
		t.Helper()
		var vals []float64
		in := backup.DueInput{ExecutionArn: exec}
		for {
			out, err := b.ListDue(ctx, in)
			if err != nil {
				t.Fatalf("ListDue: %v", err)
			}
			ls := lines(t, &buf)
			if len(ls) != 1 {
				t.Fatalf("ListDue wrote %d metric lines, want 1: %q", len(ls), ls)
			}
			v, ts := emf(t, ls[0])
			if !ts.Equal(clk.Now()) {
				t.Errorf("metric at %v, want the clock's %v", ts, clk.Now())
			}
			vals = append(vals, v)
			if !out.HasMore {
				return vals
			}
			in.Cursor = out.Next
		}
	}

	// A fresh deployment: no apps, the metric is 0 (never missing).
	if got := listed(b, "exec-1"); !reflect.DeepEqual(got, []float64{0}) {
		t.Fatalf("without apps: %v, want [0]", got)
	}

	// A deactivated app (older) does not count; an active app never backed up counts from creation.
	keyARN := e.CMKApp(t, "org1", "gone")
	if _, err := e.Store.RevokeKey(ctx, keyARN, "DisableKey", lineage.KeyEventRef{ID: "ev1", Time: time.Now()}, lineage.Cause{EventID: "ev1", Actor: "cloudtrail"}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	e.ManagedApp(t, "org1", "a1")
	e.Put(t, "a1", objects.ScopeManaged, "x", []byte("data"))
	clk.Advance(4 * time.Hour)
	if got := listed(b, "exec-2"); !reflect.DeepEqual(got, []float64{4 * 3600}) {
		t.Fatalf("a1 created 4h ago, never backed up: %v, want [14400]", got)
	}

	// Backed up: the age restarts from the backup.
	in := backup.DueInput{ExecutionArn: "exec-3"}
	in.Input.AppIDs = []string{"a1"}
	due, err := b.ListDue(ctx, in)
	if err != nil || len(due.Items) != 1 {
		t.Fatalf("on-demand ListDue: %+v %v", due, err)
	}
	if ls := lines(t, &buf); len(ls) != 0 {
		t.Errorf("the on-demand listing (not every app) published %q", ls)
	}
	st, err := b.Lease(ctx, due.Items[0])
	if err == nil {
		st, err = b.Upload(ctx, st)
	}
	if err == nil {
		st, err = b.Record(ctx, st)
	}
	if err != nil || st.Status != backup.StatusRecorded {
		t.Fatalf("backup of a1: %+v %v", st, err)
	}
	clk.Advance(90*time.Second + 400*time.Millisecond)
	if got := listed(b, "exec-4"); !reflect.DeepEqual(got, []float64{90}) {
		t.Fatalf("a1 backed up 90.4s ago: %v, want [90] (whole seconds)", got)
	}

	// One line per page; the alarm's Maximum over them is the oldest app's age.
	clk.Advance(time.Hour)
	e.ManagedApp(t, "org1", "a2")
	clk.Advance(2 * time.Hour)
	got := listed(newBackups(1), "exec-5")
	oldest := 0.0
	for _, v := range got {
		oldest = max(oldest, v)
	}
	if len(got) < 3 || oldest != 3*3600+90 {
		t.Fatalf("pages of one app: %v, want one line per page (3 apps) with maximum %d", got, 3*3600+90)
	}
}
