package infra

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"

	"github.com/keyline/keyline/internal/decl"
)

var (
	accountPattern = regexp.MustCompile(`^[0-9]{12}$`)
	orgPattern     = regexp.MustCompile(decl.IDPattern)
)

// CheckAccount refuses anything but a 12-digit AWS account id.
func CheckAccount(account string) error {
	if !accountPattern.MatchString(account) {
		return fmt.Errorf("%w: account %q is not a 12-digit AWS account id", ErrContract, account)
	}
	return nil
}

// CheckOrg refuses anything but an org id the console accepts.
func CheckOrg(org string) error {
	if !orgPattern.MatchString(org) {
		return fmt.Errorf("%w: org %q is not an org id (%s)", ErrContract, org, decl.IDPattern)
	}
	return nil
}

// KeyPolicyTarget says which keyline deployment a customer key policy admits.
type KeyPolicyTarget struct {
	// Org is the org whose calls the key admits (kms:EncryptionContext:keyline:org).
	Org string
	// Account is keyline's AWS account, where its function roles live.
	Account string
	// Partition defaults to "aws"; Stack to DefaultStackName.
	Partition string
	Stack     string
}

// CustomerKeyStatements are the statements a customer adds to their KMS key's policy so that
// keyline may use the key for one org alone: each role of a function that uses customer keys
// may call exactly the actions its own policy names, cryptographic calls only with keyline's
// encryption-context keys (decl.ContextKeys, the same declaration as keyline's IAM
// policies) and the org's `keyline:org`. DescribeKey carries no context: it reveals metadata
// only.
func (d Deployment) CustomerKeyStatements(t KeyPolicyTarget) ([]Statement, error) {
	if err := CheckOrg(t.Org); err != nil {
		return nil, err
	}
	if err := CheckAccount(t.Account); err != nil {
		return nil, err
	}
	if t.Partition == "" {
		t.Partition = "aws"
	}
	if t.Stack == "" {
		t.Stack = DefaultStackName
	}
	roles := map[string][]string{} // action → role ARNs
	for _, f := range d.Functions {
		lv, _, err := f.accessLevels()
		if err != nil {
			return nil, err
		}
		for level := range lv[CustomerKeys] {
			act := keyActions[level]
			roles[act] = append(roles[act], RoleARN(t.Partition, t.Account, t.Stack, f.Name))
		}
	}
	sids := map[string]string{
		"kms:GenerateDataKey": "KeylineGenerateDataKeyForOrg",
		"kms:Decrypt":         "KeylineDecryptForOrg",
		"kms:Encrypt":         "KeylineEncryptForOrg",
		"kms:DescribeKey":     "KeylineDescribeKey",
	}
	actions := make([]string, 0, len(roles))
	for a := range roles {
		actions = append(actions, a)
	}
	// Cryptographic statements first (their names sort before DescribeKey's), then describe.
	sort.Slice(actions, func(i, j int) bool {
		di, dj := actions[i] == "kms:DescribeKey", actions[j] == "kms:DescribeKey"
		if di != dj {
			return dj
		}
		return actions[i] > actions[j] // GenerateDataKey, Encrypt, Decrypt
	})
	var out []Statement
	for _, a := range actions {
		arns := roles[a]
		sort.Strings(arns)
		st := Statement{Sid: sids[a], Effect: Allow, Principal: map[string]any{"AWS": arns}, Action: []string{a}, Resource: []string{"*"}}
		if a != "kms:DescribeKey" {
			st.Condition = EncryptionContextCondition()
			st.Condition["StringEquals"] = map[string]any{"kms:EncryptionContext:" + decl.ContextKeyOrg: t.Org}
		}
		out = append(out, st)
	}
	return out, nil
}

// CustomerKeyPolicy returns the statements of keyline's own deployment (Description()) for
// an org and keyline's account, in the default stack and partition.
func CustomerKeyPolicy(org, account string) ([]Statement, error) {
	return Description().CustomerKeyStatements(KeyPolicyTarget{Org: org, Account: account})
}

// KeyPolicyJSON is the customer key policy statements of keyline's deployment
// (Description()) as the indented JSON list a customer pastes into their key policy's
// "Statement": what `keyline key-policy` prints.
func KeyPolicyJSON(t KeyPolicyTarget) ([]byte, error) {
	st, err := Description().CustomerKeyStatements(t)
	if err != nil {
		return nil, err
	}
	return marshalIndent(st), nil
}

// customerAdminActions are what a customer's own account keeps on its key in the full policy
// CustomerKeyPolicyDocument builds (the local runtime's customer keys): administration and use
// by the account's own principals, each action named.
var customerAdminActions = []string{
	"kms:CancelKeyDeletion", "kms:CreateGrant", "kms:Decrypt", "kms:DescribeKey", "kms:DisableKey",
	"kms:EnableKey", "kms:Encrypt", "kms:GenerateDataKey", "kms:GetKeyPolicy", "kms:ListGrants",
	"kms:ListResourceTags", "kms:PutKeyPolicy", "kms:RevokeGrant", "kms:ScheduleKeyDeletion",
	"kms:TagResource", "kms:UntagResource", "kms:UpdateKeyDescription",
}

// CustomerKeyPolicyDocument is a whole key policy for a customer key in customerAccount: the
// account administers its key (through IAM), and keyline's statements for the org.
func (d Deployment) CustomerKeyPolicyDocument(customerAccount string, t KeyPolicyTarget) (PolicyDocument, error) {
	if err := CheckAccount(customerAccount); err != nil {
		return PolicyDocument{}, err
	}
	st, err := d.CustomerKeyStatements(t)
	if err != nil {
		return PolicyDocument{}, err
	}
	partition := t.Partition
	if partition == "" {
		partition = "aws"
	}
	admin := Statement{
		Sid: "AccountAdministersAndDelegatesToIAM", Effect: Allow,
		Principal: map[string]any{"AWS": "arn:" + partition + ":iam::" + customerAccount + ":root"},
		Action:    customerAdminActions, Resource: []string{"*"},
	}
	return PolicyDocument{Version: PolicyVersion, Statement: append([]Statement{admin}, st...)}, nil
}

// CustomerBusPolicy is the policy of keyline's customer bus: enrolled customer accounts may
// put their forwarded CloudTrail KMS events on it (source aws.kms), nothing else.
func CustomerBusPolicy(busARN string, accounts []string) PolicyDocument {
	return PolicyDocument{Version: PolicyVersion, Statement: []Statement{{
		Sid: "EnrolledCustomersPutKMSEvents", Effect: Allow,
		Principal: map[string]any{"AWS": accounts},
		Action:    []string{"events:PutEvents"},
		Resource:  []string{busARN},
		Condition: map[string]map[string]any{"StringEquals": {"events:source": "aws.kms"}},
	}}}
}

// CustomerForwarderRole is the name of the role a customer's forwarding rule (DEPLOY.md)
// puts its CloudTrail KMS events on keyline's customer bus with.
const CustomerForwarderRole = "keyline-forwarder"

// CustomerForwarderPolicy is the permissions policy of the customer's forwarder role
// (DEPLOY.md): put events on keyline's customer bus, nothing else.
func CustomerForwarderPolicy(busARN string) PolicyDocument {
	return PolicyDocument{Version: PolicyVersion, Statement: []Statement{{
		Sid: "ForwardKMSEventsToKeyline", Effect: Allow,
		Action: []string{"events:PutEvents"}, Resource: []string{busARN},
	}}}
}

func marshalIndent(v any) []byte {
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		// Only strings, lists of strings and maps of those: cannot fail.
		panic(err)
	}
	return append(out, '\n')
}
