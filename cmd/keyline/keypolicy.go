package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/keyline/keyline/infra"
)

const keyPolicyUsage = `usage: keyline key-policy --org ORG --account ACCOUNT [--stack NAME] [--partition aws]

Prints the statements a customer adds to their KMS key's policy so that keyline may use
the key for one org alone: keyline's function roles (in ACCOUNT, keyline's AWS account)
may generate and decrypt data keys only with keyline's encryption-context keys and
keyline:org = ORG, and describe the key. Generated from the same contract as keyline's
IAM policies.

`

// cmdKeyPolicy prints the customer key policy statements for an org.
func cmdKeyPolicy(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keyline key-policy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, keyPolicyUsage); fs.PrintDefaults() }
	org := fs.String("org", "", "the org whose calls the key admits")
	account := fs.String("account", "", "keyline's AWS account id (12 digits), where its function roles live")
	stack := fs.String("stack", infra.DefaultStackName, "keyline's stack name (its roles are named after it)")
	partition := fs.String("partition", "aws", "the AWS partition")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "keyline key-policy: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	out, err := infra.KeyPolicyJSON(infra.KeyPolicyTarget{Org: *org, Account: *account, Stack: *stack, Partition: *partition})
	if err != nil {
		fmt.Fprintln(stderr, "keyline key-policy:", err)
		return 2
	}
	if _, err := stdout.Write(out); err != nil {
		fmt.Fprintln(stderr, "keyline key-policy:", err)
		return 1
	}
	return 0
}
