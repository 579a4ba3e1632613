//go:build linux

package dynamodb_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyline/keyline/internal/local/dynamodb"
)

// TestChildDiesWithParent kills (SIGKILL, no cleanup) a helper process that started
// DynamoDB Local, and checks that DynamoDB Local goes too.
func TestChildDiesWithParent(t *testing.T) {
	if os.Getenv("KEYLINE_DDB_HELPER") == "1" {
		p, err := dynamodb.Start(context.Background(), dynamodb.Options{InMemory: true})
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(1)
		}
		fmt.Println("PID", p.Pid())
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildDiesWithParent$")
	cmd.Env = append(os.Environ(), "KEYLINE_DDB_HELPER=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(out)
	pid := 0
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "PID "); ok {
			pid, _ = strconv.Atoi(v)
			break
		}
		if strings.HasPrefix(line, "ERR") {
			t.Fatal(line)
		}
	}
	if pid == 0 {
		t.Fatal("helper did not report the child pid")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		// A zombie still answers kill 0; check its state.
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			if f := strings.Fields(string(b)); len(f) > 2 && f[2] == "Z" {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	t.Fatalf("DynamoDB Local (pid %d) outlived its parent", pid)
}
