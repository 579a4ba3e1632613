package infra

import (
	"time"

	"github.com/keyline/keyline/internal/decl"
)

// EnvOperatorTokenHash carries the hex SHA-256 of the operator token to the console and its
// authorizer.
const EnvOperatorTokenHash = "KEYLINE_OPERATOR_TOKEN_SHA256"

// The console's functions.
const (
	FnConsoleAPI        = "console-api"
	FnConsoleAuthorizer = "console-authorizer"
)

func consolePlane() Deployment {
	return Deployment{
		Functions: []Function{{
			Name:        FnConsoleAPI,
			Description: "The console API (API.md) behind API Gateway: orgs, apps, objects, backups, re-encryptions, restores, audit.",
			Timeout:     29 * time.Second,
			MemoryMB:    512,
			Access: []Access{
				{Resource: Table, Level: "write"},
				{Resource: DataBucket, Level: "write"},
				{Resource: BackupBucket, Level: "read"},
				{Resource: ProviderKey, Level: "generate,decrypt,describe"},
				{Resource: CustomerKeys, Level: "generate,decrypt,describe"},
				// Audit events of what it changes (reactivations, revocations met while
				// working): B5.
				{Resource: EventBus, Level: "write"},
			},
			StartsStateMachines: []string{SMBackup, SMReencrypt, SMRestore},
			// GET /v1/executions/{arn} reports scheduled restore drills too (B4).
			FollowsStateMachines: []string{SMRestoreDrill},
			OperatorTokenHash:    true,
		}, {
			// API Gateway's Lambda TOKEN authorizer of the console API: it checks the bearer
			// token (the operator's hash, org tokens in the table) before any request reaches
			// the console, which checks it again.
			Name:        FnConsoleAuthorizer,
			Description: "API Gateway TOKEN authorizer of the console API: bearer token → IAM policy naming the operator or the org.",
			Timeout:     5 * time.Second,
			MemoryMB:    128,
			// It reads org tokens only (TOKEN#<sha256> items).
			Access:            []Access{{Resource: Table, Level: "read", Partitions: []string{decl.TokenPartitionPrefix}}},
			OperatorTokenHash: true,
		}},
	}
}
