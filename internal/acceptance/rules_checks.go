package acceptance

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/keyline/keyline/internal/console/api"
	"github.com/keyline/keyline/internal/sealing"
)

// R1: two key models, chosen at creation; a CMK app never falls back to the provider key.
func checkR1(ctx context.Context, r *demoRun) (string, error) {
	managed, err := r.newApp(ctx, "r1-managed", "")
	if err != nil {
		return "", prereq("managed app", err)
	}
	m, err := r.org.App(ctx, managed)
	if err != nil {
		return "", err
	}
	if m.KeyModel != "managed" {
		return "", violated("an app created without a key has key model %q, want managed (the default)", m.KeyModel)
	}
	// At rest, the managed app's data is sealed under the provider key.
	if err := r.fill(ctx, managed, 0, 2); err != nil {
		return "", prereq("managed app's data", err)
	}
	mh, err := r.sealedHeaders(ctx, managed, "managed")
	if err != nil {
		return "", err
	}
	if err := allSealedUnder("the managed app's data", mh, 2, r.sys.ProviderKeyARN, 0); err != nil {
		return "", err
	}
	a, err := r.org.Do(ctx, "POST", "/v1/apps", map[string]string{"appId": r.name("r1-nokey"), "orgId": r.orgID, "keyModel": "cmk"})
	if err != nil {
		return "", err
	}
	if err := refusal(a, "a CMK app without a key", 400); err != nil {
		return "", err
	}
	key, err := r.newKey(ctx, "r1")
	if err != nil {
		return "", err
	}
	app, err := r.newApp(ctx, "r1-cmk", key)
	if err != nil {
		return "", prereq("CMK app", err)
	}
	gens, err := r.org.Keys(ctx, app)
	if err != nil {
		return "", err
	}
	if len(gens) != 1 || gens[0].KeyArn != key {
		return "", violated("the CMK app's lineage is %+v, want one generation on %s", gens, key)
	}
	if err := r.fill(ctx, app, 2, 0); err != nil {
		return "", prereq("the CMK app's data", err)
	}
	// At rest, the CMK app's data is sealed under the customer's key, generation 1.
	ch, err := r.sealedHeaders(ctx, app, "cmk")
	if err != nil {
		return "", err
	}
	if err := allSealedUnder("the CMK app's data", ch, 2, key, 1); err != nil {
		return "", err
	}
	if err := r.disable(ctx, key); err != nil {
		return "", err
	}
	if _, _, err := r.waitStatus(ctx, app, "DEACTIVATED", 10*time.Second); err != nil {
		return "", violated("after its key was disabled: %v", err)
	}
	w, err := r.org.Do(ctx, "PUT", "/v1/apps/"+app+"/objects/cmk/after", "x", "X-Keyline-Scope", "cmk")
	if err != nil {
		return "", err
	}
	if w.Status < 400 {
		return "", violated("a CMK write succeeded (%d) while the customer key is disabled: it fell back to another key", w.Status)
	}
	if err := refusal(w, "a CMK write while the customer key is disabled", 409); err != nil {
		return "", err
	}
	if gens, err = r.org.Keys(ctx, app); err != nil {
		return "", err
	}
	for _, g := range gens {
		if g.KeyArn != key {
			return "", violated("the lineage gained key %s: a fallback", g.KeyArn)
		}
	}
	// Nothing of the refused write reached the store, under any key or scope.
	if ch, err = r.sealedHeaders(ctx, app, "cmk"); err != nil {
		return "", err
	}
	if err := allSealedUnder("the CMK app's data after the refused write", ch, 2, key, 1); err != nil {
		return "", err
	}
	if mh, err = r.sealedHeaders(ctx, app, "managed"); err != nil {
		return "", err
	}
	if len(mh) != 0 {
		return "", violated("the CMK app has %d objects sealed under the provider key: its data fell back", len(mh))
	}
	return "default app is provider-managed, its data sealed at rest under the provider key; CMK without a key refused (400); the CMK app's data sealed at rest under the customer key, generation 1; with that key disabled it is deactivated and refuses writes (" + fmt.Sprint(w.Status) + ") with nothing stored under another key", nil
}

// R2: a backup is sealed under the key active for the app when it runs.
func checkR2(ctx context.Context, r *demoRun) (string, error) {
	app, key, err := r.newCMKApp(ctx, "r2", 5, 2)
	if err != nil {
		return "", prereq("CMK app", err)
	}
	b, err := r.backup(ctx, app)
	if err != nil {
		return "", err
	}
	if b.KeyArn != key || b.Generation != 1 {
		return "", violated("the backup names generation %d on %s, want generation 1 on %s", b.Generation, b.KeyArn, key)
	}
	if err := r.backupSealedUnder(ctx, app, b, key, 1); err != nil {
		return "", err
	}
	next, err := r.newKey(ctx, "r2 next")
	if err != nil {
		return "", err
	}
	if err := r.reencryptAndWait(ctx, app, next); err != nil {
		return "", err
	}
	b2, err := r.backup(ctx, app)
	if err != nil {
		return "", err
	}
	if b2.KeyArn != next || b2.Generation != 2 {
		return "", violated("after re-encryption the backup names generation %d on %s, want 2 on %s", b2.Generation, b2.KeyArn, next)
	}
	if err := r.backupSealedUnder(ctx, app, b2, next, 2); err != nil {
		return "", err
	}
	return fmt.Sprintf("backup sealed at rest under generation 1 (%s), then, after a key switch, under generation 2 (%s)", short(key), short(next)), nil
}

// backupSealedUnder checks that backup b of app is sealed at rest under key, generation gen.
func (r *demoRun) backupSealedUnder(ctx context.Context, app string, b api.Backup, key string, gen int) error {
	h, err := r.backupHeader(ctx, app, b.BackupID)
	if err != nil {
		return err
	}
	if h.KeyARN != key || h.Generation != gen {
		return violated("backup %s is listed under generation %d on %s but sealed at rest under generation %d on %s, want generation %d on %s",
			b.BackupID, b.Generation, short(b.KeyArn), h.Generation, short(h.KeyARN), gen, short(key))
	}
	return nil
}

// R3: a CMK backup restores only into a CMK-enabled app.
func checkR3(ctx context.Context, r *demoRun) (string, error) {
	src, _, err := r.newCMKApp(ctx, "r3-src", 4, 1)
	if err != nil {
		return "", prereq("source app", err)
	}
	b, err := r.backup(ctx, src)
	if err != nil {
		return "", prereq("backup", err)
	}
	flat, err := r.newApp(ctx, "r3-managed", "")
	if err != nil {
		return "", err
	}
	a, err := r.restore(ctx, flat, src, b.BackupID)
	if err != nil {
		return "", err
	}
	if a.Status != 422 {
		return "", violated("restoring a CMK backup into a provider-managed app answered %d, want 422", a.Status)
	}
	reason := a.Message()
	dstKey, err := r.newKey(ctx, "r3 target")
	if err != nil {
		return "", err
	}
	dst, err := r.newApp(ctx, "r3-cmk", dstKey)
	if err != nil {
		return "", err
	}
	ex, err := r.org.Run(ctx, "/v1/apps/"+dst+"/restores", map[string]string{"backupId": b.BackupID, "sourceAppId": src})
	if err != nil {
		return "", violated("restoring into a CMK app failed: %v", err)
	}
	_ = ex
	a, err = r.org.Do(ctx, "GET", "/v1/apps/"+dst+"/objects/cmk/obj-0002", nil, "X-Keyline-Scope", "cmk")
	if err != nil || a.Status != 200 || string(a.Body) != objectContent(src, "cmk/obj-0002") {
		return "", violated("the restored object in %s is not the source's (%d)", dst, a.Status)
	}
	return "CMK backup into a managed app refused (422: " + clip(reason) + "); into a CMK app restored and read back", nil
}

// R4: re-encryption moves CMK-scope data to the new key; provider-scope data is untouched.
func checkR4(ctx context.Context, r *demoRun) (string, error) {
	app, key, err := r.newCMKApp(ctx, "r4", 30, 6)
	if err != nil {
		return "", prereq("app", err)
	}
	managedBefore, err := r.rawObjects(ctx, app, "managed")
	if err != nil {
		return "", err
	}
	cmkBefore, err := r.sealedHeaders(ctx, app, "cmk")
	if err != nil {
		return "", err
	}
	if err := allSealedUnder("CMK-scope data before the re-encryption", cmkBefore, 30, key, 1); err != nil {
		return "", err
	}
	next, err := r.newKey(ctx, "r4 next")
	if err != nil {
		return "", err
	}
	if err := r.reencryptAndWait(ctx, app, next); err != nil {
		return "", violated("%v", err)
	}
	managedAfter, err := r.rawObjects(ctx, app, "managed")
	if err != nil {
		return "", err
	}
	cmkAfter, err := r.sealedHeaders(ctx, app, "cmk")
	if err != nil {
		return "", err
	}
	// Every CMK-scope object is sealed at rest under the new key's generation, not merely
	// rewritten.
	if err := allSealedUnder("CMK-scope data after the re-encryption", cmkAfter, 30, next, 2); err != nil {
		return "", err
	}
	if len(managedAfter) != len(managedBefore) || len(managedBefore) != 6 {
		return "", violated("managed-scope objects: %d before, %d after, want 6", len(managedBefore), len(managedAfter))
	}
	for k, b := range managedBefore {
		if !bytes.Equal(b, managedAfter[k]) {
			return "", violated("managed-scope object %s changed at rest", k)
		}
	}
	for k, b := range managedBefore {
		h, err := sealing.ReadHeader(bytes.NewReader(b))
		if err != nil || h.KeyARN != r.sys.ProviderKeyARN {
			return "", violated("managed-scope object %s is not sealed under the provider key at rest (%v)", k, err)
		}
	}
	for _, p := range []string{"cmk/obj-0000", "cmk/obj-0029"} {
		if err := r.read(ctx, app, "cmk", p); err != nil {
			return "", violated("after re-encryption: %v", err)
		}
	}
	gens, err := r.org.Keys(ctx, app)
	if err != nil {
		return "", err
	}
	if len(gens) != 2 || gens[0].State != "RETIRED" || gens[0].KeyArn != key || gens[1].State != "ACTIVE" || gens[1].KeyArn != next {
		return "", violated("lineage after re-encryption: %+v", gens)
	}
	return "30 CMK-scope objects sealed at rest under generation 1 before and generation 2 (the new key) after, and readable; 6 provider-scope objects byte-identical at rest, under the provider key; generation 1 RETIRED, 2 ACTIVE", nil
}

// R5: no backup runs while the app re-encrypts; the skip is recorded with its reason.
func checkR5(ctx context.Context, r *demoRun) (string, error) {
	app, _, _, arn, err := r.reencryptingApp(ctx, "r5")
	if err != nil {
		return "", err
	}
	ex, err := r.org.Run(ctx, "/v1/apps/"+app+"/backups", map[string]string{})
	if err != nil {
		return "", err
	}
	if _, err := r.org.Wait(ctx, arn); err != nil {
		return "", err
	}
	bs, err := r.org.Backups(ctx, app)
	if err != nil {
		return "", err
	}
	if len(bs) != 0 {
		return "", violated("a backup was recorded while the app re-encrypted: %+v", bs)
	}
	audit, err := r.org.Audit(ctx, app)
	if err != nil {
		return "", err
	}
	skip, ok := hasAudit(audit, "backup.skipped")
	if !ok {
		return "", violated("no backup.skipped entry in the audit trail (backup output %s)", ex.Output)
	}
	reason := skip.Detail["reason"]
	if !contains(reason+fmt.Sprint(skip.Detail), "re-encrypt", "reencrypt") {
		return "", violated("the skip's reason does not say the app was re-encrypting: %v", skip.Detail)
	}
	return "backup requested mid re-encryption was skipped and recorded: " + clip(reason), nil
}

// R6: after re-encryption new backups use the new key; old ones are disabled, not re-encrypted.
func checkR6(ctx context.Context, r *demoRun) (string, error) {
	app, _, err := r.newCMKApp(ctx, "r6", 5, 1)
	if err != nil {
		return "", prereq("app", err)
	}
	old, err := r.backup(ctx, app)
	if err != nil {
		return "", prereq("first backup", err)
	}
	oldKey := old.KeyArn
	rawOld, err := r.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(r.sys.BackupBucket), Key: aws.String(backupKey(app, old.BackupID))})
	if err != nil {
		return "", prereq("the first backup at rest", err)
	}
	next, err := r.newKey(ctx, "r6 next")
	if err != nil {
		return "", err
	}
	if err := r.reencryptAndWait(ctx, app, next); err != nil {
		return "", prereq("re-encryption", err)
	}
	fresh, err := r.backup(ctx, app)
	if err != nil {
		return "", err
	}
	if fresh.KeyArn != next {
		return "", violated("the new backup is under %s, want the new key %s", fresh.KeyArn, next)
	}
	if err := r.backupSealedUnder(ctx, app, fresh, next, 2); err != nil {
		return "", err
	}
	bs, err := r.org.Backups(ctx, app)
	if err != nil {
		return "", err
	}
	var oldNow api.Backup
	for _, b := range bs {
		if b.BackupID == old.BackupID {
			oldNow = b
		}
	}
	if oldNow.BackupID == "" || oldNow.Restorable || oldNow.Generation != 1 {
		return "", violated("the old backup is %+v, want generation 1 and not restorable", oldNow)
	}
	// At rest the old backup is untouched: same object, still sealed under generation 1.
	after, err := r.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(r.sys.BackupBucket), Key: aws.String(backupKey(app, old.BackupID))})
	if err != nil {
		return "", violated("the old backup is gone from rest: %v", err)
	}
	if aws.ToString(after.ETag) != aws.ToString(rawOld.ETag) {
		return "", violated("the old backup object was rewritten (re-encrypted) at rest")
	}
	if err := r.backupSealedUnder(ctx, app, old, oldKey, 1); err != nil {
		return "", err
	}
	a, err := r.restore(ctx, app, app, old.BackupID)
	if err != nil {
		return "", err
	}
	if err := refusal(a, "restoring the retired backup", 422); err != nil {
		return "", err
	}
	if a.Code() != restoreReasonSuperseded {
		return "", violated("restoring the retired backup was refused with reason %q, want %s: %s", a.Code(), restoreReasonSuperseded, clip(a.Message()))
	}
	return "new backup sealed at rest under the new key's generation 2; the old one stays byte-identical at rest under generation 1, not restorable (" + clip(oldNow.Reason) + "), its restore refused (" + a.Code() + ")", nil
}

// The reason codes of restore refusals (the console's error code) the checks expect.
const (
	restoreReasonKeyUnusable = "KeyUnusable"
	restoreReasonSuperseded  = "BackupSuperseded"
)

func backupKey(app, id string) string { return "backups/" + app + "/" + id + ".klb" }

// R7: a restore runs only when the backup's key is the app's active key and usable now.
func checkR7(ctx context.Context, r *demoRun) (string, error) {
	app, key, err := r.newCMKApp(ctx, "r7", 4, 1)
	if err != nil {
		return "", prereq("app", err)
	}
	b, err := r.backup(ctx, app)
	if err != nil {
		return "", prereq("backup", err)
	}
	if _, err := r.org.Run(ctx, "/v1/apps/"+app+"/restores", map[string]string{"backupId": b.BackupID}); err != nil {
		return "", violated("restoring a backup under the active, usable key failed: %v", err)
	}
	// A key that is unusable right now, before any event could deactivate the app.
	r.sys.DropCloudTrail(true)
	err = r.disable(ctx, key)
	if err != nil {
		r.sys.DropCloudTrail(false)
		return "", err
	}
	a, err := r.restore(ctx, app, app, b.BackupID)
	r.sys.DropCloudTrail(false)
	if err != nil {
		return "", err
	}
	if err := refusal(a, "a restore under a disabled key", 409); err != nil {
		return "", err
	}
	if a.Code() != restoreReasonKeyUnusable {
		return "", violated("the restore under a disabled key was refused with reason %q, want %s: %s", a.Code(), restoreReasonKeyUnusable, clip(a.Message()))
	}
	if !strings.Contains(a.Message(), key) {
		return "", violated("the refusal does not name the key to enable: %s", clip(a.Message()))
	}
	if err := r.enable(ctx, key); err != nil {
		return "", err
	}
	if _, _, err := r.waitStatus(ctx, app, "ACTIVE", 10*time.Second); err != nil {
		return "", prereq("the key enabled again", err)
	}
	// A backup that is not under the app's active generation is refused for good.
	next, err := r.newKey(ctx, "r7 next")
	if err != nil {
		return "", err
	}
	if err := r.reencryptAndWait(ctx, app, next); err != nil {
		return "", prereq("re-encryption", err)
	}
	s, err := r.restore(ctx, app, app, b.BackupID)
	if err != nil {
		return "", err
	}
	if err := refusal(s, "a restore of a backup under a retired generation", 422); err != nil {
		return "", err
	}
	if s.Code() != restoreReasonSuperseded {
		return "", violated("the restore of a superseded backup was refused with reason %q, want %s: %s", s.Code(), restoreReasonSuperseded, clip(s.Message()))
	}
	return fmt.Sprintf("restore under the active key succeeded; with the key disabled it was refused (%d %s: %s); after a key switch the old backup was refused (%d %s)", a.Status, a.Code(), clip(a.Message()), s.Status, s.Code()), nil
}

// R8: a revoked key deactivates its apps at once, disables their backups, stops backups.
func checkR8(ctx context.Context, r *demoRun) (string, error) {
	key, err := r.newKey(ctx, "r8")
	if err != nil {
		return "", err
	}
	var apps []string
	for i := 0; i < 3; i++ {
		app, err := r.newApp(ctx, "r8", key)
		if err != nil {
			return "", err
		}
		if err := r.fill(ctx, app, 2, 0); err != nil {
			return "", err
		}
		if _, err := r.backup(ctx, app); err != nil {
			return "", prereq("backup", err)
		}
		apps = append(apps, app)
	}
	start := time.Now()
	if err := r.disable(ctx, key); err != nil {
		return "", err
	}
	for _, app := range apps {
		if _, _, err := r.waitStatus(ctx, app, "DEACTIVATED", 10*time.Second); err != nil {
			return "", violated("%v", err)
		}
	}
	took := time.Since(start)
	for _, app := range apps {
		bs, err := r.org.Backups(ctx, app)
		if err != nil {
			return "", err
		}
		for _, b := range bs {
			if b.Restorable {
				return "", violated("backup %s of %s is still restorable after the revocation", b.BackupID, app)
			}
		}
		a, err := r.org.Do(ctx, "POST", "/v1/apps/"+app+"/backups", map[string]string{})
		if err != nil {
			return "", err
		}
		if a.Status != 409 {
			return "", violated("an on-demand backup of a deactivated app answered %d, want 409", a.Status)
		}
	}
	// The scheduled backup run must not back them up either.
	before, _ := r.org.Backups(ctx, apps[0])
	if ex, err := r.runMachine(ctx, "backup", `{"appIds":["`+apps[0]+`"],"requestedBy":"scheduler"}`); err != nil || ex.Status != "SUCCEEDED" {
		return "", prereq("scheduled backup run", fmt.Errorf("%v %s %s", err, ex.Status, ex.Cause))
	}
	after, _ := r.org.Backups(ctx, apps[0])
	if len(after) != len(before) {
		return "", violated("a scheduled backup ran for a deactivated app")
	}
	// ScheduleKeyDeletion revokes too.
	app2, key2, err := r.newCMKApp(ctx, "r8-deletion", 1, 0)
	if err != nil {
		return "", err
	}
	if _, err := r.kms.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(key2), PendingWindowInDays: aws.Int32(7)}); err != nil {
		return "", err
	}
	if _, _, err := r.waitStatus(ctx, app2, "DEACTIVATED", 10*time.Second); err != nil {
		return "", violated("ScheduleKeyDeletion: %v", err)
	}
	return fmt.Sprintf("DisableKey deactivated 3 apps in %d ms, their backups unrestorable, on-demand and scheduled backups refused; ScheduleKeyDeletion deactivated too", took.Milliseconds()), nil
}

// B1: reactivation after the key returns, within the window; retired backups stay disabled.
func checkB1(ctx context.Context, r *demoRun) (string, error) {
	app, key, err := r.newCMKApp(ctx, "b1", 3, 0)
	if err != nil {
		return "", prereq("app", err)
	}
	b, err := r.backup(ctx, app)
	if err != nil {
		return "", prereq("backup", err)
	}
	if err := r.disable(ctx, key); err != nil {
		return "", err
	}
	if _, _, err := r.waitStatus(ctx, app, "DEACTIVATED", 10*time.Second); err != nil {
		return "", prereq("deactivation", err)
	}
	if err := r.enable(ctx, key); err != nil {
		return "", err
	}
	if _, _, err := r.waitStatus(ctx, app, "ACTIVE", 10*time.Second); err != nil {
		return "", violated("EnableKey did not reactivate: %v", err)
	}
	bs, _ := r.org.Backups(ctx, app)
	if len(bs) != 1 || !bs[0].Restorable || bs[0].BackupID != b.BackupID {
		return "", violated("the backup is not restorable again after reactivation: %+v", bs)
	}
	// CancelKeyDeletion leaves the key Disabled: the app stays deactivated until EnableKey.
	if _, err := r.kms.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(key), PendingWindowInDays: aws.Int32(7)}); err != nil {
		return "", err
	}
	if _, _, err := r.waitStatus(ctx, app, "DEACTIVATED", 10*time.Second); err != nil {
		return "", prereq("deactivation by ScheduleKeyDeletion", err)
	}
	if _, err := r.kms.CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: aws.String(key)}); err != nil {
		return "", err
	}
	// Every event delivered and handled: a wrong reactivation would have happened by now.
	if err := r.idle(ctx); err != nil {
		return "", err
	}
	if a, err := r.org.App(ctx, app); err != nil {
		return "", err
	} else if a.Status != "DEACTIVATED" {
		return "", violated("CancelKeyDeletion (key still Disabled) changed the app to %s", a.Status)
	}
	if err := r.enable(ctx, key); err != nil {
		return "", err
	}
	if _, _, err := r.waitStatus(ctx, app, "ACTIVE", 10*time.Second); err != nil {
		return "", violated("EnableKey after CancelKeyDeletion did not reactivate: %v", err)
	}
	// Past the window an operator decides.
	late, lateKey, err := r.newCMKApp(ctx, "b1-late", 1, 0)
	if err != nil {
		return "", err
	}
	if err := r.disable(ctx, lateKey); err != nil {
		return "", err
	}
	if _, _, err := r.waitStatus(ctx, late, "DEACTIVATED", 10*time.Second); err != nil {
		return "", prereq("deactivation", err)
	}
	r.sys.Advance(11 * 24 * time.Hour)
	if err := r.enable(ctx, lateKey); err != nil {
		return "", err
	}
	var audit []api.AuditEntry
	if err := api.Eventually(ctx, 10*time.Second, func() (bool, error) {
		var err error
		audit, err = r.org.Audit(ctx, late)
		_, ok := hasAudit(audit, "key.awaiting_operator")
		return ok, err
	}); err != nil {
		return "", violated("past the window, no key.awaiting_operator entry: %v", err)
	}
	if a, _ := r.org.App(ctx, late); a.Status != "DEACTIVATED" {
		return "", violated("past the 10-day window the app was reactivated automatically (%s)", a.Status)
	}
	// The lineage A→B→A: generation 1 on A, retired by a switch to B (generation 2), then a
	// switch back to A (generation 3). Revoking A deactivates the app; enabling A
	// reactivates generation 3 only: generation 1 names the same key, but re-encryption
	// retired it, and it stays retired with its backup.
	detail, err := r.checkReactivationSparesRetired(ctx)
	if err != nil {
		return "", err
	}
	return "EnableKey reactivated the app and its backup; CancelKeyDeletion alone did not; past 10 days it waits for an operator; " + detail, nil
}

// checkReactivationSparesRetired plays the lineage A→B→A of B1.
func (r *demoRun) checkReactivationSparesRetired(ctx context.Context) (string, error) {
	app, keyA, err := r.newCMKApp(ctx, "b1-aba", 2, 0)
	if err != nil {
		return "", prereq("app", err)
	}
	b1, err := r.backup(ctx, app)
	if err != nil {
		return "", prereq("backup under generation 1", err)
	}
	keyB, err := r.newKey(ctx, "b1 B")
	if err != nil {
		return "", err
	}
	if err := r.reencryptAndWait(ctx, app, keyB); err != nil {
		return "", prereq("re-encryption A→B", err)
	}
	b2, err := r.backup(ctx, app)
	if err != nil {
		return "", prereq("backup under generation 2", err)
	}
	if err := r.reencryptAndWait(ctx, app, keyA); err != nil {
		return "", prereq("re-encryption B→A", err)
	}
	b3, err := r.backup(ctx, app)
	if err != nil {
		return "", prereq("backup under generation 3", err)
	}
	if err := r.disable(ctx, keyA); err != nil {
		return "", err
	}
	if _, _, err := r.waitStatus(ctx, app, "DEACTIVATED", 10*time.Second); err != nil {
		return "", violated("revoking A, the key of the active generation 3: %v", err)
	}
	if err := r.enable(ctx, keyA); err != nil {
		return "", err
	}
	if _, _, err := r.waitStatus(ctx, app, "ACTIVE", 10*time.Second); err != nil {
		return "", violated("enabling A again did not reactivate generation 3: %v", err)
	}
	if err := r.idle(ctx); err != nil {
		return "", err
	}
	gens, err := r.org.Keys(ctx, app)
	if err != nil {
		return "", err
	}
	want := []struct {
		key, state string
	}{{keyA, "RETIRED"}, {keyB, "RETIRED"}, {keyA, "ACTIVE"}}
	if len(gens) != len(want) {
		return "", violated("lineage A→B→A after A returned: %+v", gens)
	}
	for i, w := range want {
		if gens[i].Generation != i+1 || gens[i].KeyArn != w.key || gens[i].State != w.state {
			return "", violated("after A returned, generation %d is %s on %s, want %s on %s", gens[i].Generation, gens[i].State, short(gens[i].KeyArn), w.state, short(w.key))
		}
	}
	bs, err := r.org.Backups(ctx, app)
	if err != nil {
		return "", err
	}
	restorable := map[string]bool{}
	for _, b := range bs {
		restorable[b.BackupID] = b.Restorable
	}
	switch {
	case restorable[b1.BackupID]:
		return "", violated("the backup under retired generation 1 (key A) became restorable when A returned")
	case restorable[b2.BackupID]:
		return "", violated("the backup under retired generation 2 (key B) is restorable")
	case !restorable[b3.BackupID]:
		return "", violated("the backup under the active generation 3 is not restorable after A returned: %+v", bs)
	}
	a, err := r.restore(ctx, app, app, b1.BackupID)
	if err != nil {
		return "", err
	}
	if err := refusal(a, "a restore of the generation-1 backup after A returned", 422); err != nil {
		return "", err
	}
	if a.Code() != restoreReasonSuperseded {
		return "", violated("the generation-1 backup's restore was refused with reason %q, want %s", a.Code(), restoreReasonSuperseded)
	}
	ch, err := r.sealedHeaders(ctx, app, "cmk")
	if err != nil {
		return "", err
	}
	if err := allSealedUnder("the app's data after A returned", ch, 2, keyA, 3); err != nil {
		return "", err
	}
	return "lineage A→B→A: revoking A deactivated, enabling A reactivated generation 3 only; generations 1 and 2 stay RETIRED, their backups unrestorable (" + a.Code() + "), the data at rest under generation 3", nil
}

// consoleRevocationActor is the actor of a revocation the console's requests report (B2).
const consoleRevocationActor = "console"

// B2: KMS errors met while working (a backup, a console request), and the key-health check,
// revoke without CloudTrail.
func checkB2(ctx context.Context, r *demoRun) (string, error) {
	app, key, err := r.newCMKApp(ctx, "b2-work", 3, 0)
	if err != nil {
		return "", prereq("app", err)
	}
	app2, key2, err := r.newCMKApp(ctx, "b2-health", 1, 0)
	if err != nil {
		return "", prereq("app", err)
	}
	// No object: the console has never unwrapped this app's data key (see below).
	app3, key3, err := r.newCMKApp(ctx, "b2-console", 0, 0)
	if err != nil {
		return "", prereq("app", err)
	}
	r.sys.DropCloudTrail(true)
	err1, err2, err3 := r.disable(ctx, key), r.disable(ctx, key2), r.disable(ctx, key3)
	r.sys.DropCloudTrail(false)
	if err1 != nil || err2 != nil || err3 != nil {
		return "", fmt.Errorf("disable: %v %v %v", err1, err2, err3)
	}
	// Nothing in flight: with the events lost, nothing has deactivated the apps yet.
	if err := r.idle(ctx); err != nil {
		return "", err
	}
	for _, x := range []string{app, app2, app3} {
		if a, err := r.org.App(ctx, x); err != nil {
			return "", err
		} else if a.Status != "ACTIVE" {
			return "", prereq("losing the CloudTrail event", fmt.Errorf("app %s is already %s", x, a.Status))
		}
	}
	// Working through the console (before the key-health check, which would find the key
	// too): the app's first write surely meets KMS. The console unwraps a generation's data
	// key through KMS Decrypt on its first use and caches it only then; creating the app
	// generated the wrapped key without keeping it, and no object of the app was ever written
	// or read, so this write's Decrypt meets DisabledException. The console reports it to the
	// revocation path before it answers, so the app is deactivated when the answer arrives.
	put, err := r.org.Do(ctx, "PUT", "/v1/apps/"+app3+"/objects/cmk/obj-0000", []byte(objectContent(app3, "cmk/obj-0000")), "X-Keyline-Scope", "cmk")
	if err != nil {
		return "", err
	}
	if put.Status != 409 || put.Code() != "KeyUnusable" {
		return "", violated("a console write under a disabled key answered %d %s, want 409 KeyUnusable: %s", put.Status, put.Code(), clip(put.Message()))
	}
	if strings.Contains(string(put.Body), key3) {
		return "", violated("the console's refusal names the key: %s", clip(string(put.Body)))
	}
	if a, err := r.org.App(ctx, app3); err != nil {
		return "", err
	} else if a.Status != "DEACTIVATED" {
		return "", violated("a console request that met a disabled key did not deactivate the app: it is %s once the console answered", a.Status)
	}
	if err := r.idle(ctx); err != nil {
		return "", err
	}
	audit, err := r.org.Audit(ctx, app3)
	if err != nil {
		return "", err
	}
	revoked, ok := hasAudit(audit, "key.revoked")
	if !ok || revoked.Actor != consoleRevocationActor || !strings.Contains(revoked.Detail["reason"], consoleRevocationActor) {
		return "", violated("the console's revocation is not audited with the console as its cause: %+v", revoked)
	}
	// Working: a backup meets DisabledException and feeds the revocation path.
	arn, err := r.org.Start(ctx, "/v1/apps/"+app+"/backups", map[string]string{})
	if err != nil {
		return "", err
	}
	if _, err := r.org.Wait(ctx, arn); err != nil {
		return "", err
	}
	if _, _, err := r.waitStatus(ctx, app, "DEACTIVATED", 10*time.Second); err != nil {
		return "", violated("a backup that met a disabled key did not deactivate the app: %v", err)
	}
	// Health check: DescribeKey + round trip.
	if _, err := r.invoke(ctx, "keyhealth", []byte(`{"source":"aws.scheduler","detail-type":"Scheduled Event"}`)); err != nil {
		return "", err
	}
	if _, _, err := r.waitStatus(ctx, app2, "DEACTIVATED", 10*time.Second); err != nil {
		return "", violated("the key-health check did not deactivate: %v", err)
	}
	return fmt.Sprintf("with CloudTrail lost, a console write meeting DisabledException (answered %d %s; audited %q by %s), "+
		"a backup meeting it and the scheduled key-health check each deactivated their app",
		put.Status, put.Code(), revoked.Detail["reason"], revoked.Actor), nil
}

// B3: events with errorCode change nothing; duplicates and out-of-order events are
// harmless. The duplicate is played where only deduplication stops it: a DisableKey and an
// EnableKey in the same second (CloudTrail's eventTime has one-second resolution, so both
// apply), then the DisableKey delivered again: its eventTime is not older than the last
// applied event's, so ordering lets it through; only its id can stop it.
func checkB3(ctx context.Context, r *demoRun) (string, error) {
	app, key, err := r.newCMKApp(ctx, "b3", 1, 0)
	if err != nil {
		return "", prereq("app", err)
	}
	t0 := time.Now().UTC().Truncate(time.Second)
	ev := func(name, id string, at time.Time, errorCode string) []byte {
		detail := map[string]any{
			"eventVersion": "1.08", "eventID": id, "eventTime": at.Format(time.RFC3339), "eventSource": "kms.amazonaws.com",
			"eventName": name, "awsRegion": "us-east-1", "requestParameters": map[string]string{"keyId": key},
			"resources": []map[string]string{{"accountId": r.account, "type": "AWS::KMS::Key", "ARN": key}},
			"eventType": "AwsApiCall", "managementEvent": true, "recipientAccountId": r.account,
		}
		if errorCode != "" {
			detail["errorCode"], detail["errorMessage"] = errorCode, "denied"
		}
		return jsonBytes(map[string]any{"version": "0", "id": id, "detail-type": "AWS API Call via CloudTrail", "source": "aws.kms",
			"account": r.account, "time": at.Format(time.RFC3339), "region": "us-east-1", "resources": []string{}, "detail": detail})
	}
	status := func() (string, error) {
		if err := r.idle(ctx); err != nil {
			return "", err
		}
		a, err := r.org.App(ctx, app)
		return a.Status, err
	}
	// A failed DisableKey changes nothing.
	if err := r.deliverKeyEvent(ctx, ev("DisableKey", "b3-failed-"+app, t0.Add(-time.Second), "AccessDenied")); err != nil {
		return "", err
	}
	if st, err := status(); err != nil {
		return "", err
	} else if st != "ACTIVE" {
		return "", violated("a DisableKey event with errorCode changed the app to %s", st)
	}
	// DisableKey, then EnableKey a second later: both apply.
	dis := ev("DisableKey", "b3-disable-"+app, t0, "")
	if err := r.deliverKeyEvent(ctx, dis); err != nil {
		return "", err
	}
	if st, err := status(); err != nil {
		return "", err
	} else if st != "DEACTIVATED" {
		return "", prereq("DisableKey applied", fmt.Errorf("the app is %s", st))
	}
	if err := r.deliverKeyEvent(ctx, ev("EnableKey", "b3-enable-"+app, t0.Add(time.Second), "")); err != nil {
		return "", err
	}
	if _, _, err := r.waitStatus(ctx, app, "ACTIVE", 10*time.Second); err != nil {
		return "", prereq("reactivation by a later EnableKey", err)
	}
	// The DisableKey delivered again (at-least-once delivery): deduplicated by its id, and
	// older than the EnableKey applied since.
	if err := r.deliverKeyEvent(ctx, dis); err != nil {
		return "", err
	}
	if st, err := status(); err != nil {
		return "", err
	} else if st != "ACTIVE" {
		return "", violated("a duplicate delivery of an applied DisableKey deactivated the app again (%s)", st)
	}
	audit, err := r.org.Audit(ctx, app)
	if err != nil {
		return "", err
	}
	if n := countAudit(audit, "key.revoked"); n != 1 {
		return "", violated("the DisableKey delivered twice was applied %d times", n)
	}
	// An older DisableKey arriving late (a new id): ordering by eventTime ignores it.
	if err := r.deliverKeyEvent(ctx, ev("DisableKey", "b3-late-"+app, t0.Add(-2*time.Second), "")); err != nil {
		return "", err
	}
	if st, err := status(); err != nil {
		return "", err
	} else if st != "ACTIVE" {
		return "", violated("an out-of-order (older) DisableKey deactivated the app (%s)", st)
	}
	// Two events in the same second (CloudTrail's resolution) are ordered by event id, so
	// every delivery order ends the same: the EnableKey ("…-b-…") is after the DisableKey
	// ("…-a-…"), delivered first.
	t1 := t0.Add(2 * time.Second)
	if err := r.deliverKeyEvent(ctx, ev("EnableKey", "b3-tie-b-"+app, t1, "")); err != nil {
		return "", err
	}
	if err := r.deliverKeyEvent(ctx, ev("DisableKey", "b3-tie-a-"+app, t1, "")); err != nil {
		return "", err
	}
	if st, err := status(); err != nil {
		return "", err
	} else if st != "ACTIVE" {
		return "", violated("a DisableKey in the same second as an EnableKey with a greater event id deactivated the app (%s): events of one second are not ordered by event id", st)
	}
	return "errorCode event ignored; DisableKey then a later EnableKey both applied; the DisableKey delivered again changed nothing (applied once); an older DisableKey after them ignored; in one second, the greater event id wins whatever the delivery order", nil
}

// B4: restore drills restore a sample into a scratch target and verify digests: a drill of
// an intact backup must report PASSED, and one of a damaged backup must report FAILED, both
// in the drill's output and on the app's audit trail.
func checkB4(ctx context.Context, r *demoRun) (string, error) {
	app, _, err := r.newCMKApp(ctx, "b4", 6, 2)
	if err != nil {
		return "", prereq("app", err)
	}
	b, err := r.backup(ctx, app)
	if err != nil {
		return "", prereq("backup", err)
	}
	good, err := r.drill(ctx, app, b.BackupID)
	if err != nil {
		return "", err
	}
	if good.Status != drillPassed || good.Audited != drillPassedAction {
		return "", violated("the drill of an intact backup reported %s (audited %q): %s", good.Status, good.Audited, clip(good.Reason))
	}
	// Damage the backup at rest: the next drill must report FAILED.
	k := backupKey(app, b.BackupID)
	obj, err := r.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(r.sys.BackupBucket), Key: aws.String(k)})
	if err != nil {
		return "", prereq("reading the backup", err)
	}
	var buf bytes.Buffer
	_, err = buf.ReadFrom(obj.Body)
	obj.Body.Close()
	if err != nil {
		return "", prereq("reading the backup", err)
	}
	raw := buf.Bytes()
	raw[len(raw)/2] ^= 0x40
	if _, err := r.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(r.sys.BackupBucket), Key: aws.String(k), Body: bytes.NewReader(raw)}); err != nil {
		return "", err
	}
	bad, err := r.drill(ctx, app, b.BackupID)
	if err != nil {
		return "", err
	}
	if bad.Status != drillFailed || bad.Audited != drillFailedAction {
		return "", violated("the drill of a backup with a flipped byte reported %s (audited %q)", bad.Status, bad.Audited)
	}
	return fmt.Sprintf("a drill restored the intact backup into a scratch target and reported PASSED (digest %s); after a flipped byte at rest the next drill reported FAILED (%s)", short(good.Digest), clip(bad.Reason)), nil
}

// Drill outcomes and their audit actions.
const (
	drillPassed       = "PASSED"
	drillFailed       = "FAILED"
	drillPassedAction = "drill.passed"
	drillFailedAction = "drill.failed"
)

// drillOutcome is what one drill reported about one backup.
type drillOutcome struct {
	Status, Reason, Digest string
	// Audited is the audit action the drill recorded for the backup ("" if none).
	Audited string
}

// drill runs the restore-drill machine (as its schedule does) over one app and returns its
// outcome for backupID, from the execution's output and the app's audit trail.
func (r *demoRun) drill(ctx context.Context, app, backupID string) (drillOutcome, error) {
	arn, err := r.stateMachine(ctx, "restore-drill")
	if err != nil {
		return drillOutcome{}, err
	}
	out, err := r.sfn.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(arn),
		Input: aws.String(`{"appIds":["` + app + `"],"perApp":1,"requestedBy":"demo"}`)})
	if err != nil {
		return drillOutcome{}, prereq("starting a drill", err)
	}
	exArn := aws.ToString(out.ExecutionArn)
	ex, err := r.op.Wait(ctx, exArn)
	if err != nil {
		return drillOutcome{}, err
	}
	if ex.Status != "SUCCEEDED" {
		return drillOutcome{}, violated("the drill execution ended %s (%s: %s): a drill reports its outcome, it does not fail", ex.Status, ex.Error, clip(ex.Cause))
	}
	var res struct {
		Results []struct {
			BackupID string `json:"backupId"`
			Status   string `json:"status"`
			Reason   string `json:"reason"`
			Digest   string `json:"digest"`
		} `json:"results"`
	}
	if err := json.Unmarshal(ex.Output, &res); err != nil {
		return drillOutcome{}, violated("the drill's output is not its results: %v: %s", err, clip(string(ex.Output)))
	}
	var oc drillOutcome
	for _, x := range res.Results {
		if x.BackupID == backupID {
			oc = drillOutcome{Status: x.Status, Reason: x.Reason, Digest: x.Digest}
		}
	}
	if oc.Status == "" {
		return drillOutcome{}, violated("the drill did not report on backup %s: %s", backupID, clip(string(ex.Output)))
	}
	audit, err := r.org.Audit(ctx, app)
	if err != nil {
		return drillOutcome{}, err
	}
	for _, e := range audit {
		if strings.HasPrefix(e.Action, "drill.") && e.Cause.ExecutionArn == exArn && e.Detail["backupId"] == backupID {
			oc.Audited = e.Action
		}
	}
	return oc, nil
}

// B5: every change is on the audit trail with its cause and emitted as a keyline event.
func checkB5(ctx context.Context, r *demoRun) (string, error) {
	app, key, err := r.newCMKApp(ctx, "b5", 1, 0)
	if err != nil {
		return "", prereq("app", err)
	}
	if _, err := r.backup(ctx, app); err != nil {
		return "", prereq("backup", err)
	}
	if err := r.disable(ctx, key); err != nil {
		return "", err
	}
	if _, _, err := r.waitStatus(ctx, app, "DEACTIVATED", 10*time.Second); err != nil {
		return "", prereq("deactivation", err)
	}
	audit, err := r.org.Audit(ctx, app)
	if err != nil {
		return "", err
	}
	created, ok1 := hasAudit(audit, "app.created")
	recorded, ok2 := hasAudit(audit, "backup.recorded")
	revoked, ok3 := hasAudit(audit, "key.revoked")
	if !ok1 || !ok2 || !ok3 {
		return "", violated("audit trail lacks app.created/backup.recorded/key.revoked: %+v", audit)
	}
	if created.Cause.RequestID == "" || recorded.Cause.ExecutionArn == "" && recorded.Cause.RequestID == "" || revoked.Cause.EventID == "" {
		return "", violated("causes missing: created %+v, recorded %+v, revoked %+v", created.Cause, recorded.Cause, revoked.Cause)
	}
	var seen []string
	// One event for the key (the notify function counts its apps), then one per app.
	err = api.Eventually(ctx, 10*time.Second, func() (bool, error) {
		seen = r.keylineEvents()
		return slices.Contains(seen, "Key Revoked") && slices.Contains(seen, "App Deactivated"), nil
	})
	if err != nil {
		return "", violated("no Key Revoked and App Deactivated events about the revocation on the %s bus (saw %v)", r.sys.EventBus, seen)
	}
	return fmt.Sprintf("audit has app.created (request %s), backup.recorded, key.revoked (event %s); %d keyline events observed on the bus", short(created.Cause.RequestID), short(revoked.Cause.EventID), len(seen)), nil
}

// B6: revocation acts per key; apps on other keys keep working.
func checkB6(ctx context.Context, r *demoRun) (string, error) {
	a1, k1, err := r.newCMKApp(ctx, "b6-a", 2, 0)
	if err != nil {
		return "", prereq("app", err)
	}
	a2, _, err := r.newCMKApp(ctx, "b6-b", 2, 0)
	if err != nil {
		return "", prereq("app", err)
	}
	managed, err := r.newApp(ctx, "b6-m", "")
	if err != nil {
		return "", err
	}
	if err := r.disable(ctx, k1); err != nil {
		return "", err
	}
	if _, _, err := r.waitStatus(ctx, a1, "DEACTIVATED", 10*time.Second); err != nil {
		return "", prereq("deactivation", err)
	}
	for _, other := range []string{a2, managed} {
		a, err := r.org.App(ctx, other)
		if err != nil {
			return "", err
		}
		if a.Status != "ACTIVE" {
			return "", violated("app %s on another key became %s", other, a.Status)
		}
	}
	if _, err := r.backup(ctx, a2); err != nil {
		return "", violated("an app on another key could not back up: %v", err)
	}
	return "revoking one customer's key left another CMK app and a managed app ACTIVE; the other CMK app backed up", nil
}

// B7: reads keep working while a re-encryption moves objects.
func checkB7(ctx context.Context, r *demoRun) (string, error) {
	app, _, _, arn, err := r.reencryptingApp(ctx, "b7")
	if err != nil {
		return "", err
	}
	reads := 0
	for i := 0; ; i = (i + 37) % 300 {
		a, err := r.org.App(ctx, app)
		if err != nil {
			return "", err
		}
		if a.Status != "REENCRYPTING" {
			break
		}
		if err := r.read(ctx, app, "cmk", fmt.Sprintf("cmk/obj-%04d", i)); err != nil {
			return "", violated("a read during re-encryption failed: %v", err)
		}
		reads++
	}
	ex, err := r.org.Wait(ctx, arn)
	if err != nil || ex.Status != "SUCCEEDED" {
		return "", prereq("re-encryption", fmt.Errorf("%v %s %s", err, ex.Status, ex.Cause))
	}
	if reads == 0 {
		return "", prereq("reading during re-encryption", fmt.Errorf("the re-encryption finished before a read"))
	}
	return fmt.Sprintf("%d reads during the re-encryption of 300 objects all returned the right content", reads), nil
}

// B8: a key revoked during a re-encryption leaves a defined state.
func checkB8(ctx context.Context, r *demoRun) (string, error) {
	// New key revoked → re-encryption aborted, old generation stays active.
	app, oldKey, newKey, arn, err := r.reencryptingApp(ctx, "b8-new")
	if err != nil {
		return "", err
	}
	// Revoke the new key once objects have started moving to it.
	if err := api.Eventually(ctx, 30*time.Second, func() (bool, error) {
		g, err := r.org.GenerationOf(ctx, app, "cmk/obj-0000")
		return g == "2", err
	}); err != nil {
		return "", prereq("seeing an object move to the new generation", err)
	}
	if err := r.disable(ctx, newKey); err != nil {
		return "", err
	}
	ex, err := r.org.Wait(ctx, arn)
	if err != nil {
		return "", err
	}
	a, err := r.org.App(ctx, app)
	if err != nil {
		return "", err
	}
	gens, _ := r.org.Keys(ctx, app)
	if a.Status != "ACTIVE" || a.ActiveGeneration != 1 || len(gens) == 0 || gens[0].KeyArn != oldKey || gens[0].State != "ACTIVE" {
		return "", violated("new key revoked mid re-encryption: app %s on generation %d, lineage %+v (execution %s)", a.Status, a.ActiveGeneration, gens, ex.Status)
	}
	// Every object is back under the generation that stays active, at rest (a reader's
	// cached data key must not hide objects left behind under the revoked new key).
	raw, err := r.rawObjects(ctx, app, "cmk")
	if err != nil {
		return "", err
	}
	for k, b := range raw {
		h, err := sealing.ReadHeader(bytes.NewReader(b))
		if err != nil {
			return "", fmt.Errorf("object %s: %w", k, err)
		}
		if h.Generation != 1 || h.KeyARN != oldKey {
			return "", violated("after the abort object %s is sealed under generation %d (%s), not the active generation 1", k, h.Generation, short(h.KeyARN))
		}
	}
	for i := 0; i < 300; i++ {
		if err := r.read(ctx, app, "cmk", fmt.Sprintf("cmk/obj-%04d", i)); err != nil {
			return "", violated("after the abort: %v", err)
		}
	}
	// Old key revoked → the app is deactivated.
	app2, oldKey2, _, arn2, err := r.reencryptingApp(ctx, "b8-old")
	if err != nil {
		return "", err
	}
	if err := r.disable(ctx, oldKey2); err != nil {
		return "", err
	}
	if _, err := r.org.Wait(ctx, arn2); err != nil {
		return "", err
	}
	if _, _, err := r.waitStatus(ctx, app2, "DEACTIVATED", 10*time.Second); err != nil {
		return "", violated("old key revoked mid re-encryption: %v", err)
	}
	return fmt.Sprintf("new key revoked: re-encryption %s and generation 1 stays ACTIVE; old key revoked: app DEACTIVATED", strings.ToLower(ex.Status)), nil
}

// reencryptingApp creates a CMK app with enough objects that its re-encryption takes a
// while, starts re-encrypting it to a new key and returns once the app is REENCRYPTING.
func (r *demoRun) reencryptingApp(ctx context.Context, prefix string) (app, oldKey, newKey, arn string, err error) {
	if app, oldKey, err = r.newCMKApp(ctx, prefix, 300, 0); err != nil {
		return "", "", "", "", prereq("app", err)
	}
	if newKey, err = r.newKey(ctx, prefix+" next"); err != nil {
		return "", "", "", "", err
	}
	if arn, err = r.reencrypt(ctx, app, newKey); err != nil {
		return "", "", "", "", err
	}
	if _, _, err = r.waitStatus(ctx, app, "REENCRYPTING", 30*time.Second); err != nil {
		return "", "", "", "", prereq("catching the app while it re-encrypts", err)
	}
	return app, oldKey, newKey, arn, nil
}

// reencryptAndWait re-encrypts an app to key and waits for the execution to succeed.
func (r *demoRun) reencryptAndWait(ctx context.Context, app, key string) error {
	arn, err := r.reencrypt(ctx, app, key)
	if err != nil {
		return err
	}
	ex, err := r.org.Wait(ctx, arn)
	if err != nil {
		return err
	}
	if ex.Status != "SUCCEEDED" {
		return fmt.Errorf("re-encryption of %s ended %s: %s %s", app, ex.Status, ex.Error, ex.Cause)
	}
	return nil
}

func short(s string) string {
	if i := strings.LastIndexAny(s, "/:"); i >= 0 && i+1 < len(s) {
		s = s[i+1:]
	}
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

func clip(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 110 {
		return s[:107] + "..."
	}
	return s
}

// refusal checks that an answer is a refusal with one of the wanted statuses: a 5xx is never
// a refusal (the system failed, it did not decide), nor is a success.
func refusal(a api.Answer, what string, want ...int) error {
	if a.Status >= 500 {
		return violated("%s answered %d (a server error, not a refusal): %s", what, a.Status, clip(a.Message()))
	}
	for _, w := range want {
		if a.Status == w {
			return nil
		}
	}
	return violated("%s answered %d, want %v: %s", what, a.Status, want, clip(a.Message()))
}

// B9: from the moment a revocation is applied, nothing sealed under the key is served and
// nothing new is sealed under it, whatever keyline holds in memory: the app's CMK data is
// read (so its data key is cached) just before the key is disabled; then reads and writes
// answer 409 at once, while the same app's managed-scope data keeps working.
func checkB9(ctx context.Context, r *demoRun) (string, error) {
	app, key, err := r.newCMKApp(ctx, "b9", 3, 1)
	if err != nil {
		return "", prereq("app", err)
	}
	for i := range 3 {
		if err := r.read(ctx, app, "cmk", fmt.Sprintf("cmk/obj-%04d", i)); err != nil {
			return "", prereq("reading before the revocation", err)
		}
	}
	if err := r.disable(ctx, key); err != nil {
		return "", err
	}
	if _, _, err := r.waitStatus(ctx, app, "DEACTIVATED", 10*time.Second); err != nil {
		return "", violated("after its key was disabled: %v", err)
	}
	path := "cmk/obj-0000"
	a, err := r.org.Do(ctx, "GET", "/v1/apps/"+app+"/objects/"+path, nil, "X-Keyline-Scope", "cmk")
	if err != nil {
		return "", err
	}
	if a.Status == 200 || strings.Contains(string(a.Body), strings.Repeat(app+":"+path+";", 2)) {
		return "", violated("a read of CMK data after the revocation returned the plaintext (%d)", a.Status)
	}
	if err := refusal(a, "a read of CMK data after the revocation", 409); err != nil {
		return "", err
	}
	w, err := r.org.Do(ctx, "PUT", "/v1/apps/"+app+"/objects/cmk/after", "new data", "X-Keyline-Scope", "cmk")
	if err != nil {
		return "", err
	}
	if err := refusal(w, "a write of CMK data after the revocation", 409); err != nil {
		return "", err
	}
	if err := r.read(ctx, app, "managed", "managed/obj-0000"); err != nil {
		return "", violated("managed-scope data of the app is no longer served: %v", err)
	}
	return fmt.Sprintf("CMK data read (key cached), key disabled: reads answer %d without a byte, writes %d; managed-scope data still served", a.Status, w.Status), nil
}

// accountLike shapes s into an AWS account id (12 digits) of its own: each run of the B10
// check enrols a fresh account for the other org (an account belongs to one org).
func accountLike(s string) string {
	sum := sha256.Sum256([]byte(s))
	return fmt.Sprintf("2%011d", binary.BigEndian.Uint64(sum[:8])%100_000_000_000)
}

// B10: an org uses only keys in the AWS accounts it enrolled. Another org enrols its own
// account; the demo org's attempt to create an app on that org's key is refused (never a
// 5xx), creates nothing, and the refusal does not tell whether the key exists.
func checkB10(ctx context.Context, r *demoRun) (string, error) {
	other := r.name("b10-other")
	foreignAccount := accountLike(other)
	if err := r.op.Expect(ctx, 201, "POST", "/v1/orgs", map[string]any{"orgId": other, "name": "Another customer", "accounts": []string{foreignAccount}}, nil); err != nil {
		return "", prereq("the other org", err)
	}
	foreign := "arn:aws:kms:us-east-1:" + foreignAccount + ":key/" + uuidLike(r.name("k"))
	app := r.name("b10")
	a, err := r.org.Do(ctx, "POST", "/v1/apps", map[string]string{"appId": app, "orgId": r.orgID, "keyModel": "cmk", "keyArn": foreign})
	if err != nil {
		return "", err
	}
	if err := refusal(a, "an app on another org's key", 422, 403); err != nil {
		return "", err
	}
	g, err := r.op.Do(ctx, "GET", "/v1/apps/"+app, nil)
	if err != nil {
		return "", err
	}
	if g.Status != 404 {
		return "", violated("the refused app exists anyway (%d)", g.Status)
	}
	// The demo org cannot see the other org's apps either.
	otherApp := r.name("b10-theirs")
	if err := r.op.Expect(ctx, 201, "POST", "/v1/apps", map[string]string{"appId": otherApp, "orgId": other, "keyModel": "managed"}, nil); err != nil {
		return "", prereq("the other org's app", err)
	}
	s, err := r.org.Do(ctx, "GET", "/v1/apps/"+otherApp, nil)
	if err != nil {
		return "", err
	}
	if err := refusal(s, "reading another org's app", 404); err != nil {
		return "", err
	}
	return fmt.Sprintf("an app on a key of another org's account refused (%d), nothing created; the other org's app answers %d", a.Status, s.Status), nil
}

// uuidLike shapes s into a key id (8-4-4-4-12 hex digits).
func uuidLike(s string) string {
	h := fmt.Sprintf("%x", sha256.Sum256([]byte(s)))
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
