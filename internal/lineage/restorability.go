package lineage

import (
	"fmt"
	"time"
)

// Restorability derives whether the backup can be restored now, from the generation it was
// sealed under (gen, whose Number must be b.Generation) and its app (R6, R7, R8). A backup
// is restorable only if that generation is ACTIVE, its key is usable, it is the app's
// active generation and the app is not deactivated (all derived, K1). When it is not, reason says why in words a person can act on.
func (b Backup) Restorability(gen Generation, app App) (ok bool, reason string) {
	if gen.Number != b.Generation || (gen.AppID != "" && gen.AppID != b.AppID) {
		return false, fmt.Sprintf("backup %s was sealed under generation %d of app %s, but generation %d of app %s was given: lineage record mismatch, contact the operator",
			b.ID, b.Generation, b.AppID, gen.Number, gen.AppID)
	}
	switch gen.State {
	case GenRetired:
		return false, fmt.Sprintf("backup was sealed under generation %d, retired %s on %s; restore a backup taken under generation %d",
			gen.Number, retiredHow(gen), day(gen.Since), app.ActiveGeneration)
	case GenPending:
		return false, fmt.Sprintf("generation %d is still being introduced by a re-encryption; wait for it to finish", gen.Number)
	case GenActive:
	default:
		return false, fmt.Sprintf("generation %d has unknown state %q; contact the operator", gen.Number, gen.State)
	}
	if gen.KeyRevoked {
		return false, gen.KeyReason + " to restore"
	}
	if app.Status == AppDeactivated {
		r := app.StatusReason
		if r == "" {
			r = "no reason recorded"
		}
		return false, fmt.Sprintf("app %s is deactivated (%s); reactivate it to restore", app.ID, r)
	}
	if app.ActiveGeneration != gen.Number {
		return false, fmt.Sprintf("backup was sealed under generation %d, which is not the app's active generation %d; restore a backup taken under generation %d",
			gen.Number, app.ActiveGeneration, app.ActiveGeneration)
	}
	return true, ""
}

func retiredHow(gen Generation) string {
	if gen.StateReason != "" {
		return gen.StateReason
	}
	return "by re-encryption"
}

func day(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }
