// Package decl holds the domain's declarations that the deployment contract (package infra)
// is generated from: the encryption-context keys every KMS call may carry and the table
// partitions a function may be confined to. It imports nothing, so that infra (and the CDK app
// through it) can read the declarations without the domain's behaviour.
//
// The domain packages use these constants (internal/keys, internal/objects,
// internal/workflow/backup, internal/console); the IAM policies and the customer key policy
// are generated from ContextKeys, so a key added here is allowed everywhere at once.
package decl

// Encryption-context keys. Customers' key policies condition on them
// (kms:EncryptionContextKeys, kms:EncryptionContext:<key>): they are stable, never rename one.
const (
	// ContextKeyOrg names the org an app belongs to (B10): a customer's key policy pins it.
	ContextKeyOrg = "keyline:org"
	// ContextKeyApp names the app instance.
	ContextKeyApp = "keyline:app"
	// ContextKeyGeneration is the app's key generation (0 for managed-scope keys).
	ContextKeyGeneration = "keyline:generation"
	// ContextKeyPurpose says what the call is for (data, backup, restore, key-check, reencrypt).
	ContextKeyPurpose = "keyline:purpose"
	// ContextKeyBackup names the backup a backup's data key seals.
	ContextKeyBackup = "keyline:backup"
	// ContextKeyScope marks a managed-scope data key (wrapped under the provider key).
	ContextKeyScope = "keyline:scope"
)

// ContextKeys returns every encryption-context key keyline may send, sorted. A KMS call whose
// context holds any other key is refused by keyline's IAM policies and by the customer key
// policy (ForAllValues:StringEquals on kms:EncryptionContextKeys).
func ContextKeys() []string {
	return []string{
		ContextKeyApp, ContextKeyBackup, ContextKeyGeneration,
		ContextKeyOrg, ContextKeyPurpose, ContextKeyScope,
	}
}

// TokenPartitionPrefix starts the partition key of a console token item (`TOKEN#<sha256>`):
// the console authorizer reads only these (dynamodb:LeadingKeys).
const TokenPartitionPrefix = "TOKEN#"

// OrgPartitionPrefix starts the partition key of an org's items (`ORG#<id>`: its META item and
// its token list, `TOKEN#<tokenId>`): no audit entry lives there.
const OrgPartitionPrefix = "ORG#"

// AuditPartitionPrefixes start the partitions that hold audit entries (`APP#<id>/AUDIT#…`,
// `KEY#<arn>/AUDIT#…`): no function may delete items there (deletes are confined with
// dynamodb:LeadingKeys, which cannot tell an audit entry from its partition's other items).
func AuditPartitionPrefixes() []string { return []string{AppPartitionPrefix, KeyPartitionPrefix} }

// AppPartitionPrefix starts the partition key of an app's items (`APP#<id>`), its audit
// entries among them.
const AppPartitionPrefix = "APP#"

// KeyPartitionPrefix starts the partition key of a key's items (`KEY#<arn>`), its audit
// entries among them.
const KeyPartitionPrefix = "KEY#"

// AccountPartitionPrefix starts the partition key of an account claim (`ACCOUNT#<id>`): the
// item that ties an enrolled AWS account to its one org.
const AccountPartitionPrefix = "ACCOUNT#"

// IDPattern is what an org or app id looks like (the console refuses any other).
const IDPattern = `^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`

// AuditSource is the `source` of every audit event keyline emits (internal/audit).
const AuditSource = "keyline"

// Detail types of the audit events a revocation emits (internal/workflow/revocation): one
// per revoked key (with the number of apps on it), one per app deactivated because its
// active generation's key was revoked (sent after it, in pages), and one per re-encryption
// whose pending generation was revoked (B8).
const (
	DetailKeyRevoked               = "Key Revoked"
	DetailAppDeactivated           = "App Deactivated"
	DetailPendingGenerationRevoked = "Pending Key Generation Revoked"
)

// RevocationDetailTypes are the detail types the revocation alarm counts: one event per
// revoked key, whatever the number of apps on it, and each aborted re-encryption (B8).
func RevocationDetailTypes() []string {
	return []string{DetailKeyRevoked, DetailPendingGenerationRevoked}
}

// The metric keyline publishes about backups (internal/workflow/backup, embedded metric
// format, no dimensions); the stale-backup alarm reads exactly this namespace and name.
const (
	MetricNamespace    = "keyline"
	MetricBackupAgeMax = "BackupAgeMaxSeconds"
)

// Defaults named once: the domain applies them when a setting is absent and the deployment
// contract deploys exactly these (untyped, so that this package imports nothing).
const (
	// PartSizeMiB is the part size of the multipart uploads of backups and restores.
	PartSizeMiB = 16
	// UploadConcurrency is how many parts of one upload are in flight at once: three 16 MiB
	// parts stay well inside the backup function's memory limit, and restores and drills
	// use the same value.
	UploadConcurrency = 3
	// ReactivationWindowHours is how long after a revocation a returning key reactivates its
	// apps by itself (B1): ten days.
	ReactivationWindowHours = 240
)
