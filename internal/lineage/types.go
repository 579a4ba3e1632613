// Package lineage is keyline's record of orgs, apps, their key generations, keys,
// backups, restores and audit trail, kept in one DynamoDB table (DESIGN.md §2). Like a
// keyring with sequential terms, an app's lineage is generations 1..n, exactly one ACTIVE,
// at most one PENDING (being introduced by a re-encryption), the others RETIRED; new data
// is always written under the active one. The invariants are enforced here, in the store,
// not by callers: the app's in changeApp and checkAppInvariant (store.go), the key's in
// changeKey (key.go, K1-K7).
//
// State lives in one place. A KMS key's state (USABLE or REVOKED, since, cause, the last
// key event applied) lives in its key item, KEY#arn / META, and nowhere else: revoking or
// reactivating a key is one conditional write of that item, whatever the number of apps
// on it, refused for an event older than the last one applied (K3). An app is DEACTIVATED
// exactly when its active generation's key is revoked or an operator holds it; a
// generation is usable exactly when it is ACTIVE or PENDING and its key is not revoked; a
// backup is restorable exactly when its generation is ACTIVE, its key USABLE and the app
// not deactivated. All three are derived on every read (Backup.Restorability, deriveApp,
// deriveGen), never copied: a read of one app costs the app item and its keys (one
// BatchGetItem), a listing page one BatchGetItem of the keys on the page.
//
// B1, reactivation: a key that comes back within the reactivation window, measured from
// its revocation, is verified by the caller (a test round trip) and becomes USABLE, which
// reactivates every app on it and makes their backups under an ACTIVE generation
// restorable again; a generation RETIRED by re-encryption never becomes usable again (the
// lineage A→B→A shows it: only the generation that uses A now comes back). Past the window
// an operator decides, per key: the key stays REVOKED, marked AwaitingOperator, until an
// operator reactivates it (ReactivateApp on any of its apps, or the key itself). Per key,
// because the window and the revocation are facts of the key that all its apps share: an
// operator judging a key that was gone for weeks judges the key, a per-app decision would
// need one write per app when the key returns (the fan-out the key item removes) and would
// leave apps of one usable key in different states that no key event explains. An
// operator who wants one app kept down holds it (HoldApp); the hold is part of the same
// derivation.
//
// B8: revoking a key makes every PENDING generation on it unusable at once; the
// re-encryptions are found through GSI1 (PENDING generations have their own sort-key
// prefix), confirmed with strongly consistent reads (FindPendingOnKey), and cannot commit
// in any case: CommitReencrypt carries a ConditionCheck on the new key's item. Every change
// that needs a usable key carries such a check in its own transaction (K5): backup lease
// and record, restore start, re-encryption begin and commit, app creation.
//
// App items carry a Version attribute that every write checks and increments, so
// concurrent changes to one app are fenced and the loser gets a *ConflictError
// (errors.Is(err, ErrConflict), plus the specific sentinel such as ErrLeaseHeld,
// ErrReencrypting, ErrAppDeactivated or ErrKeyRevoked when there is one).
//
// Items written before the key item existed (generations REVOKED per app, apps stored
// DEACTIVATED, a KEY#arn / CLOCK item) are read correctly and upgraded by Migrate
// (migrate.go), which `keyline local` runs on start and the keystatemigrate function runs
// once in AWS.
//
// Table layout (PK / SK):
//
//	ORG#id    / META                     org                (GSI1: ORGS / ORG#id)
//	APP#id    / META                     app                (GSI1: ORG#orgId / APP#id)
//	APP#id    / GEN#0000000n             key generation     (GSI1: KEY#arn / <state>#APP#id#GEN#0000000n)
//	APP#id    / BACKUP#time#id           backup
//	APP#id    / BACKUPREF#id             backup id → its sort key (idempotency, GetBackup)
//	APP#id    / SKIP#time#seq            skipped backup (R5)
//	APP#id    / RESTORE#id               restore request and outcome
//	APP#id    / AUDIT#time#seq#nonce     audit entry of the app (append-only)
//	KEY#arn   / META                     the key's state (K1-K7)
//	KEY#arn   / AUDIT#time#seq#nonce     audit entry of the key, shown in its apps' trails
//	EVENT#id  / EVENT                    event dedupe, expires through TTL on ExpiresAt
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
	// AppDeactivated: the active generation's key is revoked (R8) or an operator holds the app;
	// nothing runs until reactivation (B1). Derived on every read from the key item and the
	// app's hold, never stored (items written before the key item existed may still say so:
	// Migrate upgrades them).
	AppDeactivated AppStatus = "DEACTIVATED"
)

// GenerationState is the state of one key generation of an app.
type GenerationState string

const (
	// GenActive is the generation new data is written under; exactly one per app. It is usable
	// only while its key is (Generation.KeyRevoked, derived from the key item).
	GenActive GenerationState = "ACTIVE"
	// GenPending is being introduced by a running re-encryption.
	GenPending GenerationState = "PENDING"
	// GenRetired was superseded by re-encryption (or its re-encryption was aborted); its backups
	// are disabled for good (R6) and are never reactivated.
	GenRetired GenerationState = "RETIRED"
	// GenRevoked is a legacy state: items written before the key item existed copied the
	// key's revocation onto each generation. It is never written any more; reads treat it as
	// ACTIVE or PENDING (whichever the app says) and Migrate rewrites it.
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
	// ActiveKeyARN is the key of the active generation (a copy of an immutable fact of that
	// generation, so that reading the app needs no read of the generation). Empty on items
	// written before it existed: the store then reads the generation.
	ActiveKeyARN string `json:"activeKeyArn,omitempty"`
	// PendingKeyARN is the key of the pending generation ("" when none).
	PendingKeyARN string `json:"pendingKeyArn,omitempty"`
	// Hold, when set, is an operator's hold on the app: it is deactivated whatever its key's
	// state, until the operator releases it.
	Hold string `json:"hold,omitempty"`
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
	WrappedDataKey []byte    `json:"wrappedDataKey,omitempty"`
	CreatedAt      time.Time `json:"createdAt"`
	// KeyRevoked and KeyReason are derived on read from the key item (never stored): the
	// generation is unusable while its key is revoked.
	KeyRevoked bool   `json:"keyRevoked,omitempty" dynamodbav:"-"`
	KeyReason  string `json:"keyReason,omitempty" dynamodbav:"-"`
}

// Usable reports whether new data may be sealed under, or old data opened with, the
// generation: it is ACTIVE or PENDING and its key is not revoked.
func (g Generation) Usable() bool {
	return (g.State == GenActive || g.State == GenPending) && !g.KeyRevoked
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
	// KeyARN is the key of the backup's generation. Moving the restore to RUNNING carries a
	// ConditionCheck that it and the target app's active key are usable (K5).
	KeyARN string `json:"keyArn,omitempty"`
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
	ActionKeyRevoked          = "key.revoked"           // on the key's trail: the key REVOKED, its apps deactivated
	ActionPendingKeyRevoked   = "key.pending_revoked"   // on an app's trail: its PENDING generation's key revoked (B8)
	ActionKeyReactivated      = "key.reactivated"       // on the key's trail: USABLE again, its apps reactivated (B1)
	ActionReactivationWaiting = "key.awaiting_operator" // on the key's trail: came back past the window (B1)
	ActionKeyAwaitingEnable   = "key.awaiting_enable"   // on the key's trail: deletion cancelled, still Disabled
	ActionAppHeld             = "app.held"              // an operator holds the app
	ActionAppReleased         = "app.released"          // an operator released the hold
	ActionRestoreRequested    = "restore.requested"
	ActionRestoreUpdated      = "restore.updated"
)

// AuditEntry is one append-only entry of an app's or a key's audit trail (B5). An entry of
// a key's trail has KeyARN set and no AppID; GET /v1/apps/{id}/audit shows both merged.
type AuditEntry struct {
	AppID  string    `json:"appId,omitempty"`
	KeyARN string    `json:"keyArn,omitempty"`
	Time   time.Time `json:"time"`
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
