package authz

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// SecretResolver resolves a SecretId (an ARN or a name) to the secret's ARN.
type SecretResolver func(id string) (string, bool)

// SecretsManagerExtractor returns the checks of Secrets Manager requests:
// secretsmanager:<Operation> on the secret's ARN (a name is resolved; an unknown one is
// checked on the ARN it would have in the caller's account, so a denial does not reveal
// whether it exists).
func SecretsManagerExtractor(resolve SecretResolver) Extractor {
	return ExtractorFunc(func(_ context.Context, r *Request) ([]Check, error) {
		if r.Target == "" {
			return nil, fmt.Errorf("secretsmanager: no operation")
		}
		var b struct {
			SecretId string `json:"SecretId"`
		}
		if len(strings.TrimSpace(string(r.Body))) > 0 {
			if err := json.Unmarshal(r.Body, &b); err != nil {
				return nil, fmt.Errorf("secretsmanager %s: %w", r.Target, err)
			}
		}
		arn, ok := resolve(b.SecretId)
		if !ok {
			arn = b.SecretId
			if !strings.HasPrefix(arn, "arn:") {
				arn = "arn:aws:secretsmanager:" + r.Region + ":" + r.Principal.Account + ":secret:" + b.SecretId
			}
		}
		acct := ARNAccount(arn)
		return []Check{{Action: "secretsmanager:" + r.Target, Resource: arn, ResourceAccount: acct,
			Context: map[string]Value{CtxResourceAccount: One(acct)}}}, nil
	})
}
