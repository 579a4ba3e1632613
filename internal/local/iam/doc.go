// Package iam evaluates AWS IAM policies the way AWS does, so that the local
// endpoint refuses what AWS refuses.
//
// Policies are parsed once ([ParsePolicy]) into a compiled form; a [Request]
// is then evaluated against the caller's identity-based policies and the
// resource's resource-based policy (a KMS key policy, bucket policy, event
// bus policy, …) by [Evaluate], which returns a [Decision].
//
// The evaluation follows AWS's documented policy evaluation logic for a
// single account and across accounts (no SCPs, RCPs, permissions boundaries
// or session policies — keyline deploys none):
//
//  1. An explicit Deny in any applicable policy wins. A Deny in a resource
//     policy applies when its principal names the caller, or the caller's
//     account (a Deny to an account applies to every principal in it).
//  2. Otherwise an Allow is needed:
//     - Same account: an identity-based policy allows, or the resource
//     policy allows the caller directly (its ARN, its role for a role
//     session, "*", or its service principal). A resource policy that names
//     only the account ("arn:aws:iam::ACCT:root" or "ACCT") delegates to
//     IAM and grants nothing on its own.
//     - Cross account: the caller's identity-based policies must allow, AND
//     the resource policy must allow the caller or the caller's account.
//     - KMS keys: the key policy is required. Identity-based policies count,
//     even in the key's own account, only where a key policy statement that
//     applies to the request names the account (delegates to the root).
//     - Service principals ("events.amazonaws.com") have no identity
//     policies: only a resource policy naming the service allows them.
//  3. Otherwise the request is implicitly denied.
//
// The account root user is allowed everything by identity in its own account
// (it has implicit full identity permissions), but it is still subject to
// explicit denies, to KMS key policies, and to the cross-account rules.
//
// Policy variables (${aws:username}, …) are not supported: a policy that uses
// them is rejected when parsed rather than evaluated literally.
//
// # Recording and the independent yardstick
//
// With KEYLINE_IAM_RECORD=<file> in the environment, every decision Evaluate
// makes is appended to the file as a JSON line (see [Record]): the request,
// the identity-based and resource-based policies with their accounts, and the
// decision. tools/node/iam-compare.mjs replays such a file through an
// independent IAM simulator and prints "iam decisions: N compared, M
// disagree". TestAgreesWithIAMSimulate does so for thousands of generated
// decisions, and for the file named by KEYLINE_IAM_DECISIONS when set.
package iam
