package lineage

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// ErrKeyNotEnrolled is returned for a key outside the accounts (or key ARNs) an org enrolled.
var ErrKeyNotEnrolled = errors.New("lineage: the key is not in an account the org enrolled")

// ErrAccountEnrolled is returned when an org enrols an AWS account another org enrolled: an
// account belongs to one org (its keys, its key events). Returned as *AccountEnrolledError.
var ErrAccountEnrolled = errors.New("lineage: the AWS account is enrolled by another org")

// AccountEnrolledError names the account another org enrolled (never that org).
type AccountEnrolledError struct{ Account string }

func (e *AccountEnrolledError) Error() string {
	return fmt.Sprintf("AWS account %s is already enrolled by another org: an account belongs to one org only; enrol the org's own accounts", e.Account)
}

// Is makes errors.Is(err, ErrAccountEnrolled) true.
func (e *AccountEnrolledError) Is(target error) bool { return target == ErrAccountEnrolled }

// MaxOrgAccounts and MaxOrgKeyARNs bound an org's enrolment: the org is one item, written in
// one transaction with one claim per account (at most 100 items).
const (
	MaxOrgAccounts = 99
	MaxOrgKeyARNs  = 100
)

var (
	accountPattern = regexp.MustCompile(`^[0-9]{12}$`)
	// kmsKeyARNPattern is a KMS key ARN: arn:<partition>:kms:<region>:<account>:key/<id>.
	kmsKeyARNPattern = regexp.MustCompile(`^arn:aws[a-z-]*:kms:[a-z0-9-]+:([0-9]{12}):key/[A-Za-z0-9-]+$`)
)

// ValidAccountID reports whether id is an AWS account id (12 digits).
func ValidAccountID(id string) bool { return accountPattern.MatchString(id) }

// KeyAccount returns the AWS account of a KMS key ARN, or false when arn is not one.
func KeyAccount(arn string) (string, bool) {
	m := kmsKeyARNPattern.FindStringSubmatch(arn)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// Enrolled reports whether account is one of the org's enrolled accounts.
func (o Org) Enrolled(account string) bool { return slices.Contains(o.Accounts, account) }

// AllowsKey reports whether the org's apps may use the KMS key keyARN: it is in an account the
// org enrolled and, when the org lists key ARNs, it is one of them.
func (o Org) AllowsKey(keyARN string) bool {
	account, ok := KeyAccount(keyARN)
	if !ok || !o.Enrolled(account) {
		return false
	}
	return len(o.KeyARNs) == 0 || slices.Contains(o.KeyARNs, keyARN)
}

// CheckKey returns nil when the org may use keyARN, else an error wrapping ErrKeyNotEnrolled.
// The error names the org, never anything about the key beyond what the caller sent.
func (o Org) CheckKey(keyARN string) error {
	if o.AllowsKey(keyARN) {
		return nil
	}
	return fmt.Errorf("%w: org %s", ErrKeyNotEnrolled, o.ID)
}

// validateEnrolment checks and normalizes an org's accounts and key ARNs: 12-digit account ids
// (duplicates dropped), key ARNs that are KMS key ARNs in an enrolled account.
func validateEnrolment(o *Org) error {
	if len(o.Accounts) > MaxOrgAccounts {
		return invalid("org %s: at most %d accounts", o.ID, MaxOrgAccounts)
	}
	if len(o.KeyARNs) > MaxOrgKeyARNs {
		return invalid("org %s: at most %d key ARNs", o.ID, MaxOrgKeyARNs)
	}
	var accounts []string
	for _, a := range o.Accounts {
		a = strings.TrimSpace(a)
		if !ValidAccountID(a) {
			return invalid("org %s: account %q is not an AWS account id (12 digits)", o.ID, a)
		}
		if !slices.Contains(accounts, a) {
			accounts = append(accounts, a)
		}
	}
	var arns []string
	for _, k := range o.KeyARNs {
		account, ok := KeyAccount(k)
		if !ok {
			return invalid("org %s: %q is not a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)", o.ID, k)
		}
		if !slices.Contains(accounts, account) {
			return invalid("org %s: key ARN %s is in account %s, which the org does not enrol", o.ID, k, account)
		}
		if !slices.Contains(arns, k) {
			arns = append(arns, k)
		}
	}
	if accounts == nil {
		accounts = []string{}
	}
	o.Accounts, o.KeyARNs = accounts, arns
	return nil
}

// KeyRefusedMessage is the one answer given when an org names a key it may not or cannot use:
// outside its enrolled accounts or key ARNs, unknown, disabled, or not admitting keyline for
// the org. It says what to do and reveals nothing about the key (no KMS error text).
const KeyRefusedMessage = "this key cannot be used for this org: use an enabled KMS key in an AWS account the org enrolled " +
	"(and among its key ARNs if it lists any) whose key policy admits keyline for this org (see `keyline key-policy`), then retry"

// KeyRefusedFor is KeyRefusedMessage naming what the customer must add for org: the key policy
// statements `keyline key-policy --org ORG --account ACCOUNT` prints (ACCOUNT: keyline's AWS
// account, whose roles they admit). It is the same whatever the cause, so it reveals nothing
// about the key. Without keyline's account it is KeyRefusedMessage.
func KeyRefusedFor(org, keylineAccount string) string {
	if org == "" || keylineAccount == "" {
		return KeyRefusedMessage
	}
	return "this key cannot be used for this org: use an enabled KMS key in an AWS account the org enrolled " +
		"(and among its key ARNs if it lists any) whose key policy admits keyline for this org: add to the key's policy " +
		"the statements that `keyline key-policy --org " + org + " --account " + keylineAccount + "` prints, then retry"
}
