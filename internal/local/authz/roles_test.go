package authz_test

import (
	"testing"

	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/local/authz"
	"github.com/keyline/keyline/internal/local/iam"
)

// TestLocalRolesAreTheContractsRoles: a local function calls as the role the deployment
// contract names (infra.RoleARN), so the customer key policy `keyline key-policy` prints admits
// it. Before, local roles were keyline-<function> and every customer-key call was denied.
func TestLocalRolesAreTheContractsRoles(t *testing.T) {
	const customer = "111111111111"
	key := "arn:aws:kms:us-east-1:" + customer + ":key/k"
	doc, err := infra.Description().CustomerKeyPolicyDocument(customer, infra.KeyPolicyTarget{Org: "acme", Account: authz.KeylineAccount})
	if err != nil {
		t.Fatal(err)
	}
	keyPolicy := iam.MustParsePolicy("customer-key", string(doc.JSON()))
	for _, f := range infra.Description().Functions {
		p := authz.NewPrincipals(authz.KeylineAccount, []string{f.Name}).Resolve(authz.FunctionAccessKeyID(f.Name))
		if want := infra.RoleARN("aws", authz.KeylineAccount, infra.DefaultStackName, f.Name); p.RoleARN != want {
			t.Errorf("%s calls as %s, the contract's role is %s", f.Name, p.RoleARN, want)
		}
		if f.Name != infra.FnBackupUpload {
			continue
		}
		// The key policy alone (the resource side of the cross-account decision) names it.
		allow := iam.MustParsePolicy("allow-all", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:GenerateDataKey","Resource":"*"}]}`)
		d := iam.Evaluate(&iam.Request{Account: p.Account, Principal: p.ARN, Action: "kms:GenerateDataKey", Resource: key,
			ResourceAccount: customer, Context: iam.Context{
				"kms:EncryptionContext:keyline:org": iam.String("acme"),
				"kms:EncryptionContextKeys":         iam.Strings("keyline:app", "keyline:org"),
			}}, []*iam.Policy{allow}, keyPolicy)
		if !d.Allowed {
			t.Errorf("the customer key policy does not admit %s: %s", p.ARN, d)
		}
	}
}
