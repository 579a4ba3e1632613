package backup

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/keyline/keyline/internal/decl"
	"github.com/keyline/keyline/internal/lineage"
)

// The metric keyline publishes about backups; infra/cdk's stale-backup alarm reads exactly
// this namespace and name, with no dimensions.
const (
	MetricNamespace    = decl.MetricNamespace
	MetricBackupAgeMax = decl.MetricBackupAgeMax
)

// MaxBackupAge is the age at now of the oldest latest backup over the ACTIVE apps among
// apps: since LastBackupAt, or since CreatedAt for an app never backed up. Deactivated and
// re-encrypting apps are not backed up on purpose (R5, R8), so they do not count. 0 when no
// app is active; never negative.
func MaxBackupAge(apps []lineage.App, now time.Time) time.Duration {
	var oldest time.Duration
	for _, a := range apps {
		if a.Status != lineage.AppActive {
			continue
		}
		since := a.LastBackupAt
		if since.IsZero() {
			since = a.CreatedAt
		}
		if since.IsZero() {
			continue
		}
		if age := now.Sub(since); age > oldest {
			oldest = age
		}
	}
	return oldest
}

// WriteMetric writes one CloudWatch embedded-metric-format (EMF) line to w: a metric with no
// dimensions in namespace, at now. In Lambda, w is stdout: CloudWatch Logs extracts the
// metric from the function's log, so publishing needs no IAM permission. The line is one
// Write, so it never interleaves with other log lines.
func WriteMetric(w io.Writer, now time.Time, namespace, name, unit string, value float64) error {
	line, err := json.Marshal(map[string]any{
		"_aws": map[string]any{
			"Timestamp": now.UnixMilli(),
			"CloudWatchMetrics": []any{map[string]any{
				"Namespace":  namespace,
				"Dimensions": [][]string{{}},
				"Metrics":    []any{map[string]string{"Name": name, "Unit": unit}},
			}},
		},
		name: value,
	})
	if err != nil {
		return fmt.Errorf("metric %s: %w", name, err)
	}
	if _, err := w.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("metric %s: %w", name, err)
	}
	return nil
}

// reportBackupAge publishes BackupAgeMaxSeconds for one listed page of apps (every
// scheduled ListDue call, 0 when the page has no active app; the alarm takes the maximum
// over the pages). Without a Metrics writer it does nothing; a failed write is logged, never
// fails the step.
func (b *Backups) reportBackupAge(ctx context.Context, now time.Time, apps []lineage.App) {
	if b.cfg.Metrics == nil {
		return
	}
	age := MaxBackupAge(apps, now).Truncate(time.Second).Seconds()
	if err := WriteMetric(b.cfg.Metrics, now, MetricNamespace, MetricBackupAgeMax, "Seconds", age); err != nil {
		b.log.WarnContext(ctx, "backup: cannot publish the backup age", "error", err)
	}
}
