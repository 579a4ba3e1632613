package infra

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/keyline/keyline/internal/decl"
)

// Data-plane function and machine names. Function names carry no '-', so that the
// `${Fn_<name>}` placeholders of the ASL files match them.
const (
	FnBackupListDue = "backuplistdue"
	FnBackupLease   = "backuplease"
	FnBackupUpload  = "backupupload"
	FnBackupRecord  = "backuprecord"
	FnBackupFail    = "backupfail"
	FnRestoreStart  = "restorestart"
	FnRestoreRun    = "restorerun"
	FnRestoreFinish = "restorefinish"
	FnRestoreFail   = "restorefail"
	FnDrillPlan     = "drillplan"
	FnDrillRun      = "drillrun"

	// SMBackup is the backup machine; input: a schedule's, or on demand
	// {"appIds":[...],"requestedBy":"..."}.
	SMBackup = "backup"
	// SMRestore is the restore machine; input:
	// {"appId","restoreId","backupId","sourceAppId","requestedBy"} (all present, sourceAppId
	// may equal appId).
	SMRestore = "restore"
	// SMRestoreDrill is the restore-drill machine (B4); optional input {"perApp":N,"appIds":[...]}.
	SMRestoreDrill = "restore-drill"

	// EnvBackupInterval: an app is due for a scheduled backup when its last one is older.
	EnvBackupInterval = "KEYLINE_BACKUP_INTERVAL"
	// EnvDrillPerApp: how many of each app's most recent restorable backups a drill restores.
	EnvDrillPerApp = "KEYLINE_DRILL_PER_APP"
	// EnvPartSizeMiB and EnvUploadConcurrency tune the multipart uploads of backups,
	// restores and drills; every function deploys the domain's defaults.
	EnvPartSizeMiB        = "KEYLINE_PART_SIZE_MIB"
	EnvUploadConcurrency  = "KEYLINE_UPLOAD_CONCURRENCY"
	envGoMemLimit         = "GOMEMLIMIT"
	backupIntervalDefault = "1h"
)

// The metric the backup list-due step publishes (the stale-backup alarm's), declared in the
// domain (internal/decl).
const (
	MetricNamespace    = decl.MetricNamespace
	MetricBackupAgeMax = decl.MetricBackupAgeMax
)

func dataPlane() Deployment {
	tableRead := Access{Resource: Table, Level: "read"}
	tableWrite := Access{Resource: Table, Level: "write"}
	bus := Access{Resource: EventBus, Level: "write"}
	return Deployment{
		Functions: []Function{
			{
				Name:        FnBackupListDue,
				Description: "Backup step: lists the apps due for a backup (or the on-demand ones), one page at a time.",
				Timeout:     60 * time.Second, MemoryMB: 256,
				Env:    map[string]string{EnvBackupInterval: backupIntervalDefault},
				Access: []Access{tableRead},
			},
			{
				Name:        FnBackupLease,
				Description: "Backup step: takes the app's backup lease; a re-encrypting (R5) or deactivated (R8) app's skip is recorded with its reason.",
				Timeout:     30 * time.Second, MemoryMB: 256,
				Access: []Access{tableWrite, bus},
			},
			{
				Name: FnBackupUpload,
				Description: "Backup step: seals a snapshot of the app under its active generation (one KMS call) and uploads it multipart, " +
					"streamed (memory bounded whatever the app's size). A revoked key feeds the revocation path (B2).",
				Timeout: 15 * time.Minute, MemoryMB: 512,
				ReservedConcurrency: 20,
				Env: map[string]string{EnvPartSizeMiB: partSizeMiB, EnvUploadConcurrency: uploadConcurrency, envGoMemLimit: "100MiB",
					EnvReactivationWindow: reactivationWindow},
				Access: []Access{
					tableWrite, // skips, and the revocation path
					{Resource: DataBucket, Level: "read"},
					{Resource: BackupBucket, Level: "write"},
					{Resource: CustomerKeys, Level: "generate,describe,decrypt"},
					{Resource: ProviderKey, Level: "generate,describe,decrypt"},
					bus,
				},
			},
			{
				Name:        FnBackupRecord,
				Description: "Backup step: records the backup only if its generation is still active (R2); otherwise deletes the upload and records the skip.",
				Timeout:     60 * time.Second, MemoryMB: 256,
				Access: []Access{tableWrite, {Resource: BackupBucket, Level: "write"}, bus},
			},
			{
				Name:        FnBackupFail,
				Description: "Backup compensation: removes an unrecorded upload, releases the lease, records the failure.",
				Timeout:     60 * time.Second, MemoryMB: 256,
				Access: []Access{tableWrite, {Resource: BackupBucket, Level: "write"}, bus},
			},
			{
				Name:        FnRestoreStart,
				Description: "Restore step: re-validates R3 and R7 (the backup's key is the source app's active key and usable now) and marks the restore RUNNING.",
				Timeout:     60 * time.Second, MemoryMB: 256,
				Env:    map[string]string{EnvReactivationWindow: reactivationWindow},
				Access: []Access{tableWrite, {Resource: CustomerKeys, Level: "describe,generate,decrypt"}, {Resource: ProviderKey, Level: "describe,generate,decrypt"}, bus},
			},
			{
				Name: FnRestoreRun,
				Description: "Restore step: verifies the whole backup without writing, then writes it into the target app under its active key " +
					"and checks the digest again. A damaged backup writes nothing.",
				Timeout: 15 * time.Minute, MemoryMB: 1024,
				Env: map[string]string{EnvPartSizeMiB: partSizeMiB, EnvUploadConcurrency: uploadConcurrency, EnvReactivationWindow: reactivationWindow},
				Access: []Access{
					tableWrite, // managed-scope key items, and the revocation path
					{Resource: BackupBucket, Level: "read"},
					{Resource: DataBucket, Level: "write"},
					{Resource: CustomerKeys, Level: "describe,generate,decrypt"},
					{Resource: ProviderKey, Level: "describe,generate,decrypt"},
					bus,
				},
			},
			{
				Name:        FnRestoreFinish,
				Description: "Restore step: records the restore SUCCEEDED with its digest.",
				Timeout:     30 * time.Second, MemoryMB: 256,
				Access: []Access{tableWrite, bus},
			},
			{
				Name:        FnRestoreFail,
				Description: "Restore compensation: records the restore REFUSED or FAILED with its reason.",
				Timeout:     30 * time.Second, MemoryMB: 256,
				Access: []Access{tableWrite, bus},
			},
			{
				Name:        FnDrillPlan,
				Description: "Restore-drill step (B4): picks the most recent restorable backups of each app.",
				Timeout:     2 * time.Minute, MemoryMB: 256,
				Env:    map[string]string{EnvDrillPerApp: "1"},
				Access: []Access{tableRead},
			},
			{
				Name: FnDrillRun,
				Description: "Restore-drill step (B4): restores one backup into a scratch prefix of the data bucket, checks its digests, " +
					"deletes the scratch copy, audits the outcome; a failed drill emits an event.",
				Timeout: 15 * time.Minute, MemoryMB: 1024,
				ReservedConcurrency: 4,
				Env:                 map[string]string{EnvPartSizeMiB: partSizeMiB, EnvUploadConcurrency: uploadConcurrency, EnvReactivationWindow: reactivationWindow},
				Access: []Access{
					tableWrite, // audit entries, and the revocation path
					{Resource: BackupBucket, Level: "read"},
					{Resource: DataBucket, Level: "write"},
					{Resource: CustomerKeys, Level: "describe,generate,decrypt"},
					{Resource: ProviderKey, Level: "describe,generate,decrypt"},
					bus,
				},
			},
		},
		StateMachines: []StateMachine{
			{Name: SMBackup, File: "backup.asl.json",
				Functions: []string{FnBackupListDue, FnBackupLease, FnBackupUpload, FnBackupRecord, FnBackupFail}},
			{Name: SMRestore, File: "restore.asl.json",
				Functions: []string{FnRestoreStart, FnRestoreRun, FnRestoreFinish, FnRestoreFail}},
			{Name: SMRestoreDrill, File: "restore-drill.asl.json",
				Functions: []string{FnDrillPlan, FnDrillRun}},
		},
		Schedules: []Schedule{
			{
				Name:        "backup",
				Description: "Hourly: backs up every app whose last backup is older than the interval (R2); re-encrypting and deactivated apps' skips are recorded (R5, R8).",
				Expression:  "rate(1 hour)",
				Target:      Target{StateMachine: SMBackup, Input: json.RawMessage(`{"requestedBy":"scheduler"}`)},
			},
			{
				Name:        "restore-drill",
				Description: "Weekly, Sunday 03:00 UTC: restores the most recent restorable backup of each app into a scratch target and checks its digests (B4).",
				Expression:  "cron(0 3 ? * SUN *)",
				Timezone:    "UTC",
				Target:      Target{StateMachine: SMRestoreDrill, Input: json.RawMessage(`{"requestedBy":"scheduler"}`)},
			},
		},
	}
}

// The deployed settings are the domain's defaults (internal/decl), written once.
var (
	partSizeMiB        = strconv.Itoa(decl.PartSizeMiB)
	uploadConcurrency  = strconv.Itoa(decl.UploadConcurrency)
	reactivationWindow = strconv.Itoa(decl.ReactivationWindowHours) + "h"
)
