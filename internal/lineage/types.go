// Package lineage is keyline's record of orgs, apps, their key generations, backups,
// restores and audit trail, kept in one DynamoDB table (DESIGN.md §2).
//
// State lives in one place: a backup points at the generation it was sealed under, and
// whether it can be restored is derived from that generation's state and the app's
// status (see Backup.Restorability). Revoking a key therefore writes one generation and
// one app item per app, never one item per backup.
//
// Every change that must agree (app status + generation state + audit entry) is one
// TransactWriteItems; app items carry a Version attribute that every write checks and
// increments, so concurrent changes to one app are fenced and the loser gets a
// *ConflictError (errors.Is(err, ErrConflict), plus the specific sentinel such as
// ErrLeaseHeld or ErrReencrypting when there is one). The invariant "exactly one ACTIVE
// generation per app, unless the app is deactivated" is enforced here, not by callers.
//
// Table layout (PK / SK):
//
//	ORG#id    / META                     org                (GSI1: ORGS / ORG#id)
//	APP#id    / META                     app                (GSI1: ORG#orgId / APP#id)
//	APP#id    / GEN#0000000n             key generation     (GSI1: KEY#arn / APP#id#GEN#0000000n)
//	APP#id    / BACKUP#time#id           backup
//	APP#id    / BACKUPREF#id             backup id → its sort key (idempotency, GetBackup)
//	APP#id    / SKIP#time#seq            skipped backup (R5)
//	APP#id    / RESTORE#id               restore request and outcome
//	APP#id    / AUDIT#time#seq#nonce     audit entry (append-only)
//	EVENT#id  / EVENT                    event dedupe, expires through TTL on ExpiresAt
//	KEY#arn   / CLOCK                    latest applied key event time (B3 ordering)
package lineage

import (
	"time"
)

// KeyModel says whose KMS key protects an app's CMK-scope data (R1).
type KeyModel string

const (
	// KeyModelCMK is a customer-managed key: a KMS key in the customer's account.
	KeyModelCMK KeyModel = "cmk"
	// KeyModelManaged is a provider-managed key: a KMS key in the provider's account (the default).
	KeyModelManaged KeyModel = "managed"
)

// Valid reports whether m is a known key model.
func (m KeyModel) Valid() bool { return m == KeyModelCMK || m == KeyModelManaged }

// AppStatus is an app's lifecycle status.
type AppStatus string

const (
	// AppActive: backups, restores and re-encryptions may run.
	AppActive AppStatus = "ACTIVE"
	// AppReencrypting: a re-encryption is moving data to a PENDING generation; no backups run (R5).
	AppReencrypting AppStatus = "REENCRYPTING"
	// AppDeactivated: the active generation's key was revoked (R8); nothing runs until reactivation (B1).
	AppDeactivated AppStatus = "DEACTIVATED"
)

// GenerationState is the state of one key generation of an app.
type GenerationState string

const (
	// GenActive is the generation new data is written under; exactly one per app unless deactivated.
	GenActive GenerationState = "ACTIVE"
	// GenPending is being introduced by a running re-encryption.
	GenPending GenerationState = "PENDING"
	// GenRetired was superseded by re-encryption (or its re-encryption was aborted); its backups
	// are disabled for good (R6) and are never reactivated.
	GenRetired GenerationState = "RETIRED"
	// GenRevoked has a key that was disabled or scheduled for deletion (R8); reactivation (B1)
	// may bring it back to ACTIVE if it is still the app's active generation.
	GenRevoked GenerationState = "REVOKED"
)

// RestoreStatus is the state of a restore request.
type RestoreStatus string

const (
	RestorePending   RestoreStatus = "PENDING"
	RestoreRunning   RestoreStatus = "RUNNING"
	RestoreSucceeded RestoreStatus = "SUCCEEDED"
	RestoreFailed    RestoreStatus = "FAILED"
	RestoreRefused   RestoreStatus = "REFUSED"
)

// Terminal reports whether the restore has finished (succeeded, failed or refused).
func (s RestoreStatus) Terminal() bool {
	return s == RestoreSucceeded || s == RestoreFailed || s == RestoreRefused
}

// Org is a customer. Its id is in the encryption context of every KMS call made for it
// (keys.ContextKeyOrg), so a customer's key policy can admit keyline for that org alone.
type Org struct {
	ID   string `json:"orgId"`
	Name string `json:"name"`
	// Accounts are the AWS account ids the org enrolled: its apps may use customer-managed
	// keys in these accounts only, and only key events from them count (B10).
	Accounts []string `json:"accounts"`
	// KeyARNs, when not empty, narrow that further to these keys (each in an enrolled account).
	KeyARNs   []string  `json:"keyArns,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
}

// Lease is the backup lease of an app: while an unexpired lease is held, no re-encryption
// begins; while the app re-encrypts, no lease is granted (R5).
type Lease struct {
	Holder string    `json:"holder"`
	Until  time.Time `json:"until"`
}

// App is an app instance of an org.
type App struct {
	ID           string    `json:"appId"`
	OrgID        string    `json:"orgId"`
	KeyModel     KeyModel  `json:"keyModel"`
	Status       AppStatus `json:"status"`
	StatusReason string    `json:"statusReason"`
	// ActiveGeneration is the number of the generation new data is written under.
	ActiveGeneration int `json:"activeGeneration"`
	// PendingGeneration is the generation a running re-encryption introduces (0 when none).
	PendingGeneration int `json:"pendingGeneration,omitempty"`
	// LatestGeneration is the highest generation number ever allocated for the app.
	LatestGeneration int `json:"latestGeneration"`
	// Version is incremented by every write of the app; writes are conditional on it.
	Version      int64     `json:"version"`
	BackupLease  *Lease    `json:"backupLease,omitempty"`
	LastBackupAt time.Time `json:"lastBackupAt,omitempty"`
	CreatedAt    time.Time `json:"createdAt"`
}

// LeaseHeld reports whether an unexpired backup lease is held at now.
func (a App) LeaseHeld(now time.Time) bool {
	return a.BackupLease != nil && now.Before(a.BackupLease.Until)
}

// Generation is one step of an app's key lineage.
type Generation struct {
	AppID       string          `json:"appId"`
	OrgID       string          `json:"orgId,omitempty"`
	Number      int             `json:"generation"`
	KeyARN      string          `json:"keyArn"`
	KeyModel    KeyModel        `json:"keyModel"`
	State       GenerationState `json:"state"`
	StateReason string          `json:"stateReason,omitempty"`
	// Since is when the generation entered its current state.
	Since time.Time `json:"since"`
	// WrappedDataKey is the generation's data key, wrapped by KMS under KeyARN; the app's
	// objects of this generation are sealed with it (one KMS call per generation).
	WrappedDataKey []byte `json:"wrappedDataKey,omitempty"`
	// RevokedBy is the id of the event (or check) that revoked the key, when REVOKED.
	RevokedBy string `json:"revokedBy,omitempty"`
	// AwaitingOperator is set on a REVOKED generation whose key came back after the
	// reactivation window: an operator must reactivate the app (B1).
	AwaitingOperator bool      `json:"awaitingOperator,omitempty"`
	CreatedAt        time.Time `json:"createdAt"`
}

// Backup is one sealed snapshot of an app. It points at the generation it was sealed under;
// its restorability is derived from that generation (Restorability), never stored.
type Backup struct {
	AppID      string    `json:"appId"`
	ID         string    `json:"backupId"`
	CreatedAt  time.Time `json:"createdAt"`
	Generation int       `json:"generation"`
	KeyARN     string    `json:"keyArn"`
	ObjectKey  string    `json:"objectKey"`
	SizeBytes  int64     `json:"sizeBytes"`
	// Digest is the sha256 (hex) of the plaintext snapshot.
	Digest      string `json:"digest"`
	ObjectCount int    `json:"objectCount"`
}

// BackupView is a backup with its derived restorability, as ListBackups returns it.
type BackupView struct {
	Backup
	Restorable bool   `json:"restorable"`
	Reason     string `json:"reason,omitempty"`
}

// Restore is a restore request made by a person through the console API, and its outcome.
type Restore struct {
	// AppID is the target app the backup is restored into.
	AppID    string `json:"appId"`
	ID       string `json:"restoreId"`
	BackupID string `json:"backupId"`
	// SourceAppID is the app the backup belongs to (equal to AppID when restoring in place).
	SourceAppID  string        `json:"sourceAppId"`
	Status       RestoreStatus `json:"status"`
	Reason       string        `json:"reason,omitempty"`
	ExecutionArn string        `json:"executionArn,omitempty"`
	RequestedBy  string        `json:"requestedBy,omitempty"`
	CreatedAt    time.Time     `json:"createdAt"`
	FinishedAt   time.Time     `json:"finishedAt,omitempty"`
	// Digest is the sha256 (hex) of the restored plaintext, checked against the backup's.
	Digest string `json:"digest,omitempty"`
}

// Cause says why a change happened: the event, request or execution behind it.
type Cause struct {
	EventID string `json:"eventId,omitempty"`
	// RequestID is keyline's own id of the request (never chosen by the client).
	RequestID string `json:"requestId,omitempty"`
	// ClientRequestID is the client's X-Request-Id, kept apart and length-limited.
	ClientRequestID string `json:"clientRequestId,omitempty"`
	ExecutionArn    string `json:"executionArn,omitempty"`
	// Actor is who asked (a person, "scheduler", "cloudtrail", "key-health", …). Optional:
	// AuditEntry.Actor takes it when the entry has none.
	Actor string `json:"actor,omitempty"`
}

// Audit actions written by the store itself. Callers may append entries with other actions.
const (
	ActionAppCreated          = "app.created"
	ActionBackupRecorded      = "backup.recorded"
	ActionBackupSkipped       = "backup.skipped"
	ActionReencryptBegun      = "reencrypt.begun"
	ActionReencryptCommitted  = "reencrypt.committed"
	ActionReencryptAborted    = "reencrypt.aborted"
	ActionKeyRevoked          = "key.revoked"           // app deactivated, its active generation REVOKED
	ActionPendingKeyRevoked   = "key.pending_revoked"   // a PENDING generation's key revoked (B8)
	ActionKeyReactivated      = "key.reactivated"       // generation ACTIVE again, app ACTIVE (B1)
	ActionReactivationWaiting = "key.awaiting_operator" // revoked longer ago than the window (B1)
	ActionRestoreRequested    = "restore.requested"
	ActionRestoreUpdated      = "restore.updated"
)

// AuditEntry is one append-only entry of an app's audit trail (B5).
type AuditEntry struct {
	AppID string    `json:"appId"`
	Time  time.Time `json:"time"`
	// Seq orders entries that share a timestamp.
	Seq    int64             `json:"seq"`
	Action string            `json:"action"`
	Actor  string            `json:"actor,omitempty"`
	Cause  Cause             `json:"cause"`
	Detail map[string]string `json:"detail,omitempty"`
}

// Skip records a backup that did not run, and why (R5).
type Skip struct {
	AppID  string    `json:"appId"`
	Time   time.Time `json:"time"`
	Reason string    `json:"reason"`
	Cause  Cause     `json:"cause"`
}

// Effect is what a key revocation or reactivation did to one app.
type Effect string

const (
	// EffectDeactivated: the app's active generation was revoked and the app deactivated.
	EffectDeactivated Effect = "deactivated"
	// EffectPendingRevoked: a PENDING generation was revoked; its re-encryption must abort (B8).
	EffectPendingRevoked Effect = "pending-revoked"
	// EffectReactivated: the generation is ACTIVE again and the app ACTIVE (B1).
	EffectReactivated Effect = "reactivated"
	// EffectAwaitingOperator: revoked longer ago than the reactivation window; an operator
	// must call ReactivateApp (B1).
	EffectAwaitingOperator Effect = "awaiting-operator"
)

// AffectedApp is one app a key revocation or reactivation acted on.
type AffectedApp struct {
	AppID      string `json:"appId"`
	OrgID      string `json:"orgId"`
	Generation int    `json:"generation"`
	KeyARN     string `json:"keyArn"`
	Effect     Effect `json:"effect"`
}

// Page is one page of a listing; pass Next back as the cursor to get the following page.
// Next is empty on the last page.
type Page[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next,omitempty"`
}
