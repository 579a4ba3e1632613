package iam

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// childEnv marks the re-executed test binary in TestRecordEnv.
const childEnv = "KEYLINE_IAM_RECORD_TEST_CHILD"

// TestRecordEnv runs this test binary again with KEYLINE_IAM_RECORD set and
// checks that Evaluate appended its decisions to the named file.
func TestRecordEnv(t *testing.T) {
	if os.Getenv(childEnv) == "1" {
		Evaluate(kmsRequest(backupSession, "kms:Decrypt", customerKey, "org-1"), []*Policy{roleKMSPolicy}, keyPolicyNamesRole)
		Evaluate(&Request{Principal: backupRole, Action: "dynamodb:Query", Resource: tableA}, nil, nil)
		return
	}
	path := filepath.Join(t.TempDir(), "decisions.jsonl")
	for run := 0; run < 2; run++ { // the second run appends
		cmd := exec.Command(os.Args[0], "-test.run=^TestRecordEnv$", "-test.count=1")
		cmd.Env = append(os.Environ(), childEnv+"=1", RecordEnv+"="+path)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d recorded lines, want 4:\n%s", len(lines), data)
	}
	var first, second Record
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &second); err != nil {
		t.Fatal(err)
	}
	if !first.Decision.Allowed || first.Decision.Grant != "key-policy/KeylineBackup" || first.ResourcePolicy == nil || first.ResourcePolicy.Account != "111111111111" {
		t.Errorf("first record %+v", first)
	}
	if second.Decision.Allowed || second.Decision.Reason != "ImplicitDeny" || second.Decision.Missing == "" || second.ResourcePolicy != nil {
		t.Errorf("second record %+v", second)
	}
}
