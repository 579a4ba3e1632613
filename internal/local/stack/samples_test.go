package stack

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/keyline/keyline/internal/testenv"
)

// TestSampleEvents runs every sample event of events/ through what it triggers, on a stack
// seeded with the demo data: state-machine inputs through Step Functions, function events
// through the Lambda registry. Samples that name things the demo does not have (a restore
// of a backup id made up for the example, a re-encryption to a key that does not exist)
// must be refused with a domain error, never fail on their shape.
func TestSampleEvents(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	st, err := Start(ctx, Options{
		DataDir: t.TempDir(), Addr: "127.0.0.1:0", ConsoleAddr: "127.0.0.1:0", Seed: SeedDemo,
		SeedSize: SeedSize{SmallObjects: 24, LargeObjects: 1, LargeBytes: 1 << 20, Concurrency: 4},
	})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer st.Close()
	if err := st.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(testenv.RepoRoot(t), "events")
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	sf := sfn.NewFromConfig(st.AWSConfig())
	runMachine := func(machine, file string) *sfn.DescribeExecutionOutput {
		out, err := sf.StartExecution(ctx, &sfn.StartExecutionInput{
			StateMachineArn: aws.String(st.Machines[machine]), Input: aws.String(string(read(file))),
		})
		if err != nil {
			t.Fatalf("%s with %s: %v", machine, file, err)
		}
		// Wait on the execution's end, then read it back through the API.
		if _, err := st.SFN.WaitExecution(ctx, aws.ToString(out.ExecutionArn)); err != nil {
			t.Fatalf("%s with %s: %v", machine, file, err)
		}
		d, err := sf.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: out.ExecutionArn})
		if err != nil {
			t.Fatalf("%s with %s: %v", machine, file, err)
		}
		return d
	}
	covered := map[string]bool{}
	for machine, files := range map[string][]string{
		"backup":        {"schedule-backup.json", "backup-on-demand.json"},
		"restore-drill": {"schedule-restore-drill.json"},
	} {
		for _, f := range files {
			covered[f] = true
			if d := runMachine(machine, f); d.Status != "SUCCEEDED" {
				t.Errorf("%s with %s: %s %s %s", machine, f, d.Status, aws.ToString(d.Error), aws.ToString(d.Cause))
			}
		}
	}
	for machine, f := range map[string]string{"restore": "restore-request.json", "reencrypt": "reencrypt-request.json"} {
		covered[f] = true
		d := runMachine(machine, f)
		e := aws.ToString(d.Error)
		if d.Status != "FAILED" || e == "" || strings.HasPrefix(e, "States.") || e == "Invalid" {
			t.Errorf("%s with %s: %s %s %s; want a domain refusal (the sample names a made-up backup or key)", machine, f, d.Status, e, aws.ToString(d.Cause))
		}
	}
	for fn, f := range map[string]string{
		"keyevent": "kms-disable-key.json", "keyhealth": "schedule-key-health.json",
		"backuplistdue": "backuplistdue.json", "drillplan": "drillplan.json",
	} {
		covered[f] = true
		if _, err := st.Lambda.Invoke(ctx, fn, read(f)); err != nil {
			t.Errorf("%s with %s: %v", fn, f, err)
		}
	}
	// The authorizer's sample carries a placeholder token: API Gateway gets a Deny policy.
	covered["console-authorizer.json"] = true
	if out, err := st.Lambda.Invoke(ctx, "console-authorizer", read("console-authorizer.json")); err != nil || !strings.Contains(string(out), `"Deny"`) {
		t.Errorf("console-authorizer with its sample: %s %v; want a Deny policy", out, err)
	}
	// The other CloudTrail samples run through the key-event handler in the key plane's
	// own tests (internal/workflow/revocation TestSampleEventsThroughHandler).
	for _, f := range []string{"kms-cancel-key-deletion.json", "kms-disable-key-failed.json", "kms-enable-key.json",
		"kms-schedule-key-deletion.json"} {
		covered[f] = true
	}
	all, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	for _, p := range all {
		if !covered[filepath.Base(p)] {
			t.Errorf("sample event %s is exercised by no test", filepath.Base(p))
		}
	}
}
