// Package testenv gives tests the real parts keyline runs on, reached through the real
// aws-sdk-go-v2 clients over HTTP on 127.0.0.1: DynamoDB Local (DynamoDB, NewTable),
// local-kms in process (KMS) and gofakes3 in process (S3).
//
// Each part is started once per test binary and shared; tests isolate themselves with
// fresh names (a fresh table, key or bucket per test). Nothing is skipped: a part that
// cannot start fails the test with the reason.
//
// A package whose tests use DynamoDB may call Main from TestMain so that a DynamoDB Local
// started by the test binary is stopped when the tests end (it is also killed when the
// test process dies, through the parent-death signal on Linux):
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
package testenv
