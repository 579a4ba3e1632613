package acceptance

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"

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
	a, err := r.org.Do(ctx, "POST", "/v1/apps", map[string]string{"appId": r.name("r1-nokey"), "orgId": r.orgID, "keyModel": "cmk"})
	if err != nil {
		return "", err
	}
	if a.Status != 400 {
		return "", violated("a CMK app without a key answered %d, want 400", a.Status)
	}
	app, key, err := r.newCMKApp(ctx, "r1-cmk", 2, 0)
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
	gens, _ = r.org.Keys(ctx, app)
	for _, g := range gens {
		if g.KeyArn != key {
			return "", violated("the lineage gained key %s: a fallback", g.KeyArn)
		}
	}
	return "default app is provider-managed; CMK without a key refused (400); CMK app with its key disabled is deactivated and refuses writes (" + fmt.Sprint(w.Status) + ") instead of falling back", nil
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
	return fmt.Sprintf("backup under generation 1 (%s), then under generation 2 after a key switch", short(key)), nil
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
	cmkBefore, err := r.rawObjects(ctx, app, "cmk")
	if err != nil {
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
	cmkAfter, err := r.rawObjects(ctx, app, "cmk")
	if err != nil {
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
	changed := 0
	for k, b := range cmkBefore {
		if !bytes.Equal(b, cmkAfter[k]) {
			changed++
		}
	}
	if changed != len(cmkBefore) || changed != 30 {
		return "", violated("%d of %d CMK-scope objects were re-sealed, want all 30", changed, len(cmkBefore))
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
	return "30 CMK-scope objects re-sealed under the new key and readable; 6 provider-scope objects byte-identical at rest; generation 1 RETIRED, 2 ACTIVE", nil
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
	rawOld, err := r.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(r.sys.BackupBucket), Key: aws.String(backupKey(app, old.BackupID))})
	next, kerr := r.newKey(ctx, "r6 next")
	if kerr != nil {
		return "", kerr
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
	if rawOld != nil {
		if after, err := r.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(r.sys.BackupBucket), Key: aws.String(backupKey(app, old.BackupID))}); err == nil &&
			aws.ToString(after.ETag) != aws.ToString(rawOld.ETag) {
			return "", violated("the old backup object was rewritten (re-encrypted) at rest")
		}
	}
	a, err := r.restore(ctx, app, app, old.BackupID)
	if err != nil {
		return "", err
	}
	if a.Status != 409 && a.Status != 422 {
		return "", violated("restoring the retired backup answered %d", a.Status)
	}
	return "new backup under the new key; the old one stays under generation 1, not restorable (" + clip(oldNow.Reason) + "), its restore refused", nil
}

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
	if a.Status != 409 && a.Status != 422 {
		return "", violated("restore under a disabled key answered %d, want 409 or 422", a.Status)
	}
	if !contains(a.Message(), "disabled", "key", "usable") {
		return "", violated("the refusal does not say what to do: %s", a.Message())
	}
	if err := r.enable(ctx, key); err != nil {
		return "", err
	}
	return fmt.Sprintf("restore under the active key succeeded; with the key disabled it was refused (%d: %s)", a.Status, clip(a.Message())), nil
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
	time.Sleep(500 * time.Millisecond) // give a wrong reactivation the chance to happen
	if a, _ := r.org.App(ctx, app); a.Status != "DEACTIVATED" {
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
	// Backups retired by re-encryption never come back.
	rapp, rkey, err := r.newCMKApp(ctx, "b1-retired", 2, 0)
	if err != nil {
		return "", err
	}
	old, err := r.backup(ctx, rapp)
	if err != nil {
		return "", err
	}
	next, _ := r.newKey(ctx, "b1 next")
	if err := r.reencryptAndWait(ctx, rapp, next); err != nil {
		return "", prereq("re-encryption", err)
	}
	if err := r.disable(ctx, rkey); err != nil {
		return "", err
	}
	if err := r.enable(ctx, rkey); err != nil {
		return "", err
	}
	time.Sleep(500 * time.Millisecond)
	bs, _ = r.org.Backups(ctx, rapp)
	for _, x := range bs {
		if x.BackupID == old.BackupID && x.Restorable {
			return "", violated("a backup retired by re-encryption became restorable after its old key was re-enabled")
		}
	}
	if a, _ := r.org.App(ctx, rapp); a.Status != "ACTIVE" {
		return "", violated("revoking the retired key changed the app to %s", a.Status)
	}
	return "EnableKey reactivated the app and its backup; CancelKeyDeletion alone did not; past 10 days it waits for an operator; retired backups stay disabled", nil
}

// B2: KMS errors met while working, and the key-health check, revoke without CloudTrail.
func checkB2(ctx context.Context, r *demoRun) (string, error) {
	app, key, err := r.newCMKApp(ctx, "b2-work", 3, 0)
	if err != nil {
		return "", prereq("app", err)
	}
	app2, key2, err := r.newCMKApp(ctx, "b2-health", 1, 0)
	if err != nil {
		return "", prereq("app", err)
	}
	r.sys.DropCloudTrail(true)
	err1, err2 := r.disable(ctx, key), r.disable(ctx, key2)
	r.sys.DropCloudTrail(false)
	if err1 != nil || err2 != nil {
		return "", fmt.Errorf("disable: %v %v", err1, err2)
	}
	time.Sleep(300 * time.Millisecond)
	if a, _ := r.org.App(ctx, app); a.Status != "ACTIVE" {
		return "", prereq("losing the CloudTrail event", fmt.Errorf("the app is already %s", a.Status))
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
	return "with CloudTrail lost, a backup meeting DisabledException and the scheduled key-health check each deactivated their app", nil
}

// B3: events with errorCode change nothing; duplicates and out-of-order events are harmless.
func checkB3(ctx context.Context, r *demoRun) (string, error) {
	app, key, err := r.newCMKApp(ctx, "b3", 1, 0)
	if err != nil {
		return "", prereq("app", err)
	}
	t0 := time.Now().UTC()
	ev := func(name, id string, at time.Time, errorCode string) []byte {
		detail := map[string]any{
			"eventVersion": "1.08", "eventID": id, "eventTime": at.Format(time.RFC3339), "eventSource": "kms.amazonaws.com",
			"eventName": name, "awsRegion": "us-east-1", "requestParameters": map[string]string{"keyId": key},
			"resources": []map[string]string{{"accountId": "000000000000", "type": "AWS::KMS::Key", "ARN": key}},
			"eventType": "AwsApiCall", "managementEvent": true, "recipientAccountId": "000000000000",
		}
		if errorCode != "" {
			detail["errorCode"], detail["errorMessage"] = errorCode, "denied"
		}
		return jsonBytes(map[string]any{"version": "0", "id": id, "detail-type": "AWS API Call via CloudTrail", "source": "aws.kms",
			"account": "000000000000", "time": at.Format(time.RFC3339), "region": "us-east-1", "resources": []string{}, "detail": detail})
	}
	// A failed DisableKey changes nothing.
	if _, err := r.invoke(ctx, "keyevent", ev("DisableKey", "b3-failed-"+app, t0, "AccessDenied")); err != nil {
		return "", err
	}
	if a, _ := r.org.App(ctx, app); a.Status != "ACTIVE" {
		return "", violated("a DisableKey event with errorCode changed the app to %s", a.Status)
	}
	// The same DisableKey delivered twice is applied once.
	dis := ev("DisableKey", "b3-dup-"+app, t0.Add(time.Second), "")
	for i := 0; i < 2; i++ {
		if _, err := r.invoke(ctx, "keyevent", dis); err != nil {
			return "", err
		}
	}
	audit, _ := r.org.Audit(ctx, app)
	if n := countAudit(audit, "key.revoked"); n != 1 {
		return "", violated("a duplicated DisableKey event was applied %d times", n)
	}
	// A later EnableKey, then an older DisableKey arriving late: the late one is ignored.
	if _, err := r.invoke(ctx, "keyevent", ev("EnableKey", "b3-enable-"+app, t0.Add(3*time.Second), "")); err != nil {
		return "", err
	}
	if _, _, err := r.waitStatus(ctx, app, "ACTIVE", 5*time.Second); err != nil {
		return "", prereq("reactivation by EnableKey", err)
	}
	if _, err := r.invoke(ctx, "keyevent", ev("DisableKey", "b3-late-"+app, t0.Add(2*time.Second), "")); err != nil {
		return "", err
	}
	if a, _ := r.org.App(ctx, app); a.Status != "ACTIVE" {
		return "", violated("an out-of-order (older) DisableKey deactivated the app")
	}
	return "errorCode event ignored; duplicate DisableKey applied once; older DisableKey after a newer EnableKey ignored", nil
}

// B4: restore drills restore a sample into a scratch target and verify digests.
func checkB4(ctx context.Context, r *demoRun) (string, error) {
	app, _, err := r.newCMKApp(ctx, "b4", 6, 2)
	if err != nil {
		return "", prereq("app", err)
	}
	b, err := r.backup(ctx, app)
	if err != nil {
		return "", prereq("backup", err)
	}
	ex, err := r.runMachine(ctx, "restore-drill", `{"appIds":["`+app+`"],"perApp":1,"requestedBy":"demo"}`)
	if err != nil || ex.Status != "SUCCEEDED" {
		return "", violated("the drill ended %s: %v %s", ex.Status, err, ex.Cause)
	}
	okOut := string(ex.Output)
	// Corrupt the backup at rest: the next drill must catch it.
	k := backupKey(app, b.BackupID)
	obj, err := r.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(r.sys.BackupBucket), Key: aws.String(k)})
	if err != nil {
		return "", prereq("reading the backup", err)
	}
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(obj.Body)
	obj.Body.Close()
	raw := buf.Bytes()
	raw[len(raw)/2] ^= 0x40
	if _, err := r.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(r.sys.BackupBucket), Key: aws.String(k), Body: bytes.NewReader(raw)}); err != nil {
		return "", err
	}
	ex2, err := r.runMachine(ctx, "restore-drill", `{"appIds":["`+app+`"],"perApp":1,"requestedBy":"demo"}`)
	if err != nil {
		return "", err
	}
	audit, _ := r.org.Audit(ctx, app)
	failedSeen := false
	for _, e := range audit {
		if strings.HasPrefix(e.Action, "drill.") && contains(e.Action+fmt.Sprint(e.Detail), "fail", "corrupt", "tamper") {
			failedSeen = true
		}
	}
	if ex2.Status == "SUCCEEDED" && !failedSeen && !contains(string(ex2.Output), "fail", "tamper", "corrupt") {
		return "", violated("a drill over a corrupted backup reported success: %s", ex2.Output)
	}
	return "drill restored the backup into a scratch target and matched its digest (" + clip(okOut) + "); a flipped byte was caught", nil
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
	err = api.Eventually(ctx, 10*time.Second, func() (bool, error) {
		seen = r.keylineEvents()
		return len(seen) > 0 && contains(strings.Join(seen, ","), "deactivat", "revok"), nil
	})
	if err != nil {
		return "", violated("no keyline event about the revocation on the %s bus (saw %v)", r.sys.EventBus, seen)
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

// b10ForeignAccount is the account of the other org's key in the B10 check.
const b10ForeignAccount = "222222222222"

// B10: an org uses only keys in the AWS accounts it enrolled. Another org enrols its own
// account; the demo org's attempt to create an app on that org's key is refused (never a
// 5xx), creates nothing, and the refusal does not tell whether the key exists.
func checkB10(ctx context.Context, r *demoRun) (string, error) {
	other := r.name("b10-other")
	if err := r.op.Expect(ctx, 201, "POST", "/v1/orgs", map[string]any{"orgId": other, "name": "Another customer", "accounts": []string{b10ForeignAccount}}, nil); err != nil {
		return "", prereq("the other org", err)
	}
	foreign := "arn:aws:kms:us-east-1:" + b10ForeignAccount + ":key/" + uuidLike(r.name("k"))
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
