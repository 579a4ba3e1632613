package infra

import (
	"time"

	"github.com/keyline/keyline/internal/decl"
)

// EnvOperatorTokenSecret carries the ARN of the operator token's secret to the functions that
// check tokens (the console and its authorizer); they read the token with GetSecretValue.
const EnvOperatorTokenSecret = "KEYLINE_OPERATOR_TOKEN_SECRET"

// The operator token's secret: its name in a stack, and how Secrets Manager generates it when
// the stack is deployed. 64 characters from 62 letters and digits are 381 bits (at least 256).
const (
	operatorTokenSecretSuffix = "/operator-token"
	// OperatorTokenLength is the generated token's length.
	OperatorTokenLength = 64
	// OperatorTokenAlphabet is the number of distinct characters the token is drawn from
	// (letters and digits: Secrets Manager's ExcludePunctuation).
	OperatorTokenAlphabet = 62
)

// OperatorTokenSecretName is the name of the operator token's secret in a stack.
func OperatorTokenSecretName(stack string) string { return stack + operatorTokenSecretSuffix }

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
				// It checks bearer tokens again behind the authorizer.
				{Resource: OperatorTokenSecret, Level: LevelRead},
				// Revoking an org token deletes its two items (TOKEN#<sha256> and
				// ORG#<orgId>/TOKEN#<tokenId>); no partition with audit entries.
				{Resource: Table, Level: LevelDelete, Partitions: []string{decl.TokenPartitionPrefix, decl.OrgPartitionPrefix}},
			},
			StartsStateMachines: []string{SMBackup, SMReencrypt, SMRestore},
			// GET /v1/executions/{arn} reports scheduled restore drills too (B4).
			FollowsStateMachines: []string{SMRestoreDrill},
		}, {
			// API Gateway's Lambda TOKEN authorizer of the console API: it checks the bearer
			// token (the operator's hash, org tokens in the table) before any request reaches
			// the console, which checks it again.
			Name:        FnConsoleAuthorizer,
			Description: "API Gateway TOKEN authorizer of the console API: bearer token → IAM policy naming the operator or the org.",
			Timeout:     5 * time.Second,
			MemoryMB:    128,
			// It reads org tokens only (TOKEN#<sha256> items) and the operator token's secret.
			Access: []Access{
				{Resource: Table, Level: "read", Partitions: []string{decl.TokenPartitionPrefix}},
				{Resource: OperatorTokenSecret, Level: LevelRead},
			},
		}},
	}
}
