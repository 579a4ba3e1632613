package infra

import (
	"encoding/json"
	"time"

	"github.com/keyline/keyline/internal/decl"
)

// Key-plane function and machine names. Function names carry no '-', so that the
// `${Fn_<name>}` placeholders of the ASL files match them.
const (
	FnKeyEvent  = "keyevent"
	FnKeyHealth = "keyhealth"
	FnKeyNotify = "keynotify"
	// FnKeyStateMigrate is the one-off upgrade of a table written before the key item
	// existed (lineage Migrate): invoke it once after deploying; it is idempotent.
	FnKeyStateMigrate   = "keystatemigrate"
	FnReencryptValidate = "reencryptvalidate"
	FnReencryptBegin    = "reencryptbegin"
	FnReencryptBatch    = "reencryptbatch"
	FnReencryptCommit   = "reencryptcommit"
	FnReencryptAbort    = "reencryptabort"
	// SMReencrypt is the re-encryption state machine; its input is
	// {"appId","keyArn","requestedBy","requestId"}.
	SMReencrypt = "reencrypt"
	// EnvReactivationWindow sets how long after a revocation a key's return reactivates
	// its apps by itself (B1): a duration ("240h") or days ("10d").
	EnvReactivationWindow = "KEYLINE_REACTIVATION_WINDOW"
)

// KMSKeyEventPattern is the rule pattern for CloudTrail KMS key-state changes that
// succeeded: a call with an errorCode changes nothing (B3) and never reaches keyline.
const KMSKeyEventPattern = `{"source":["aws.kms"],"detail-type":["AWS API Call via CloudTrail"],` +
	`"detail":{"eventSource":["kms.amazonaws.com"],` +
	`"eventName":["DisableKey","ScheduleKeyDeletion","EnableKey","CancelKeyDeletion"],` +
	`"errorCode":[{"exists":false}]}}`

// KeyNotificationPattern matches keyline's own continuation events of a key change's
// notifications (internal/audit DetailKeyNotificationPage), on keyline's bus.
const KeyNotificationPattern = `{"source":["keyline"],"detail-type":["Key Notification Page"]}`

// keyCheck is the access a test round trip (DescribeKey, GenerateDataKey, Decrypt) needs.
const keyCheck = "describe,generate,decrypt"

func keyPlane() Deployment {
	return Deployment{
		Functions: []Function{
			{
				Name: FnKeyEvent,
				Description: "Applies CloudTrail KMS key events: DisableKey/ScheduleKeyDeletion deactivate the key's apps (R8), " +
					"EnableKey reactivates them after a test round trip (B1), CancelKeyDeletion is recorded.",
				Timeout:             60 * time.Second,
				MemoryMB:            512,
				ReservedConcurrency: 10,
				Env:                 map[string]string{EnvReactivationWindow: reactivationWindow},
				Access: []Access{
					{Resource: Table, Level: "write"},
					{Resource: CustomerKeys, Level: keyCheck},
					{Resource: ProviderKey, Level: keyCheck},
					{Resource: EventBus, Level: "write"},
				},
			},
			{
				Name: FnKeyNotify,
				Description: "Sends a key change's notifications (B5): the per-key event with the number of apps on the key, then " +
					"App Deactivated / App Reactivated per app, one page of apps per invocation, each page triggering the next (at least once).",
				Timeout:             5 * time.Minute,
				MemoryMB:            256,
				ReservedConcurrency: 5,
				Access: []Access{
					{Resource: Table, Level: "read"},
					{Resource: EventBus, Level: "write"},
				},
			},
			{
				Name: FnKeyStateMigrate,
				Description: "One-off upgrade to the key item (lineage Migrate): per-app revocations written by earlier versions move onto " +
					"the key item; idempotent, safe to run against the live system. No trigger: invoke it once after deploying.",
				Timeout:  15 * time.Minute,
				MemoryMB: 512,
				Access: []Access{
					{Resource: Table, Level: "write"},
					// It pages through the whole table for per-app revocations (lineage Migrate);
					// it deletes nothing (a key's legacy CLOCK item is retired with an update and
					// expires by TTL: KEY# partitions hold the key's audit entries).
					{Resource: Table, Level: LevelScan},
				},
			},
			{
				Name: FnKeyHealth,
				Description: "Scheduled key health (B2): DescribeKey and a test data-key round trip per distinct active key; " +
					"a revoked key feeds the revocation path, throttling and 5xx never deactivate anything; " +
					"a revoked key usable again reactivates its apps within the window (B1).",
				Timeout:             5 * time.Minute,
				MemoryMB:            512,
				ReservedConcurrency: 1,
				Env:                 map[string]string{EnvReactivationWindow: reactivationWindow},
				Access: []Access{
					{Resource: Table, Level: "write"},
					{Resource: CustomerKeys, Level: keyCheck},
					{Resource: ProviderKey, Level: keyCheck},
					{Resource: EventBus, Level: "write"},
				},
				// It reports apps left REENCRYPTING without a running execution (I7).
				FollowsStateMachines: []string{SMReencrypt},
			},
			{
				Name:        FnReencryptValidate,
				Description: "Re-encryption step: validates the new key (CMK app, not the active key, DescribeKey and a test round trip).",
				Timeout:     30 * time.Second,
				MemoryMB:    256,
				Access: []Access{
					{Resource: Table, Level: "read"},
					{Resource: CustomerKeys, Level: keyCheck},
					// Only to know the provider key's ARN, which a CMK app may never move to (R1).
					{Resource: ProviderKey, Level: "describe"},
				},
			},
			{
				Name:        FnReencryptBegin,
				Description: "Re-encryption step: generation n+1 PENDING with its data key, app REENCRYPTING (refused while a backup lease is held).",
				Timeout:     30 * time.Second,
				MemoryMB:    256,
				Access: []Access{
					{Resource: Table, Level: "write"},
					{Resource: CustomerKeys, Level: "generate"},
					{Resource: EventBus, Level: "write"},
				},
			},
			{
				Name:                FnReencryptBatch,
				Description:         "Re-encryption step: moves a batch of CMK-scope objects from generation n to n+1, their previous versions kept in the stash (idempotent).",
				Timeout:             5 * time.Minute,
				MemoryMB:            1024,
				ReservedConcurrency: 20,
				Access: []Access{
					{Resource: Table, Level: "write"},
					{Resource: DataBucket, Level: "write"},
					{Resource: CustomerKeys, Level: keyCheck},
					{Resource: EventBus, Level: "write"},
				},
			},
			{
				Name:        FnReencryptCommit,
				Description: "Re-encryption step: n+1 ACTIVE, n RETIRED (its backups disabled, R6), app ACTIVE; drops the stash of the moved objects' previous versions.",
				Timeout:     5 * time.Minute,
				MemoryMB:    256,
				Access: []Access{
					{Resource: Table, Level: "write"},
					// Lists and deletes reencrypt-stash/<appId>/<n+1>/... (internal/objects).
					{Resource: DataBucket, Level: "write"},
					{Resource: EventBus, Level: "write"},
				},
			},
			{
				Name: FnReencryptAbort,
				Description: "Re-encryption compensation (B8): pending generation retired, app back on its previous generation (or left deactivated); " +
					"moved objects put back from the stash (no KMS call), objects written meanwhile re-sealed if possible.",
				// Pages through every CMK-scope object of the app; a retry after a timeout
				// carries on (the state machine retries Sandbox.Timedout).
				Timeout:  15 * time.Minute,
				MemoryMB: 1024,
				Access: []Access{
					{Resource: Table, Level: "write"},
					// Reads the apps' objects and the stash, writes objects back, deletes the stash.
					{Resource: DataBucket, Level: "write"},
					// Opens an object a client wrote under the aborted generation and seals it
					// under the previous one (both data keys are unwrapped with Decrypt).
					{Resource: CustomerKeys, Level: "decrypt"},
					{Resource: EventBus, Level: "write"},
				},
			},
		},
		StateMachines: []StateMachine{{
			Name: SMReencrypt,
			File: "reencrypt.asl.json",
			Functions: []string{FnReencryptValidate, FnReencryptBegin, FnReencryptBatch,
				FnReencryptCommit, FnReencryptAbort},
		}},
		Rules: []Rule{{
			Name:         "kms-key-events",
			Description:  "CloudTrail KMS key-state changes without errorCode → the key-event function (deactivation within seconds).",
			EventPattern: json.RawMessage(KMSKeyEventPattern),
			Target:       Target{Function: FnKeyEvent},
		}, {
			Name:         "key-notifications",
			Description:  "A key change's notification pages (keyline's own events) → the notify function, one page per invocation.",
			EventPattern: json.RawMessage(KeyNotificationPattern),
			Target:       Target{Function: FnKeyNotify},
			Bus:          BusKeyline,
		}},
		Schedules: []Schedule{{
			Name:        "key-health",
			Description: "DescribeKey and a test round trip of every active key (B2).",
			Expression:  "rate(15 minutes)",
			Target:      Target{Function: FnKeyHealth},
		}},
	}
}

// ContextKeys are the encryption-context keys keyline's KMS calls may carry (declared once in
// the domain, internal/decl); every KMS statement keyline generates is built from them.
func ContextKeys() []string { return decl.ContextKeys() }

// RevocationAlarmPattern is the event pattern of the rule on keyline's audit bus whose matches
// the revocation alarm counts: the events a revocation emits (an app deactivated, a pending
// generation revoked), whatever path revoked the key.
func RevocationAlarmPattern() json.RawMessage {
	p := map[string]any{"source": []string{decl.AuditSource}, "detail-type": decl.RevocationDetailTypes()}
	b, err := json.Marshal(p)
	if err != nil {
		panic(err) // strings only
	}
	return b
}
