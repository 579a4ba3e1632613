package infra

import "time"

// EnvOperatorTokenHash carries the hex SHA-256 of the operator token to the console.
const EnvOperatorTokenHash = "KEYLINE_OPERATOR_TOKEN_SHA256"

func consolePlane() Deployment {
	return Deployment{
		Functions: []Function{{
			Name:        "console-api",
			Description: "The console API (API.md) behind API Gateway: orgs, apps, objects, backups, re-encryptions, restores, audit.",
			Timeout:     29 * time.Second,
			MemoryMB:    512,
			Access: []Access{
				{Resource: Table, Level: "write"},
				{Resource: DataBucket, Level: "write"},
				{Resource: BackupBucket, Level: "read"},
				{Resource: ProviderKey, Level: "generate,decrypt,describe"},
				{Resource: CustomerKeys, Level: "generate,decrypt,describe"},
			},
			StartsStateMachines: []string{"backup", "reencrypt", "restore"},
		}},
	}
}
