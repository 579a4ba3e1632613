package objectstest

import (
	"context"
	"testing"

	"github.com/keyline/keyline/internal/workflow/backup"
)

// Backup backs an app up through every step of the backup machine (list due, lease,
// upload, record) in process, as execution exec, and returns the backup id.
func Backup(t testing.TB, b *backup.Backups, appID, exec string) string {
	t.Helper()
	ctx := context.Background()
	in := backup.DueInput{ExecutionArn: exec}
	in.Input.AppIDs = []string{appID}
	out, err := b.ListDue(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	st, err := b.Lease(ctx, out.Items[0])
	if err == nil {
		st, err = b.Upload(ctx, st)
	}
	if err == nil {
		st, err = b.Record(ctx, st)
	}
	if err != nil || st.Status != backup.StatusRecorded {
		t.Fatalf("backup of %s: %+v %v", appID, st, err)
	}
	return st.BackupID
}
