package dynamodb_test

import (
	"context"
	"net"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/keyline/keyline/internal/local/dynamodb"
	"github.com/keyline/keyline/internal/testenv"
)

// TestListensOnLoopbackOnly: DynamoDB Local started by keyline accepts connections on 127.0.0.1
// and refuses them on the machine's other addresses; its listening socket is bound to loopback.
func TestListensOnLoopbackOnly(t *testing.T) {
	p, err := dynamodb.Start(context.Background(), dynamodb.Options{InMemory: true})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = p.Stop() })
	port := endpointPort(t, p.Endpoint())
	reportAddrs(t)
	problems, err := testenv.LoopbackOnlyProblems(port)
	if err != nil {
		t.Fatal(err)
	}
	for _, pr := range problems {
		t.Errorf("DynamoDB Local reachable beyond loopback: %s", pr)
	}
}

// TestLoopbackProbeCatchesPlainLaunch: the same probe finds DynamoDB Local started the plain
// way (`java -jar DynamoDBLocal.jar`), which listens on every interface.
func TestLoopbackProbeCatchesPlainLaunch(t *testing.T) {
	jarDir := testenv.DynamoDBLocalDir(t)
	java, err := exec.LookPath("java")
	if err != nil {
		t.Fatalf("java: %v", err)
	}
	port := freeLoopbackPort(t)
	cmd := exec.Command(java, "-Djava.library.path="+filepath.Join(jarDir, "DynamoDBLocal_lib"), "-jar", filepath.Join(jarDir, "DynamoDBLocal.jar"),
		"-port", strconv.Itoa(port), "-disableTelemetry", "-inMemory")
	cmd.Dir = jarDir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	waitListening(t, port, exited)
	problems, err := testenv.LoopbackOnlyProblems(port)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) == 0 {
		t.Fatal("the probe found nothing wrong with DynamoDB Local listening on every interface")
	}
	t.Logf("plain launch, as expected: %v", problems)
}

func reportAddrs(t *testing.T) {
	addrs, err := testenv.NonLoopbackAddrs()
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) == 0 {
		t.Log("this machine has no non-loopback address: only the listening socket's address is checked")
		return
	}
	t.Logf("probing non-loopback addresses %v", addrs)
}

func endpointPort(t *testing.T, endpoint string) int {
	t.Helper()
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	return port
}

func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitListening waits until something accepts connections on 127.0.0.1:port, or the process exits.
func waitListening(t *testing.T, port int, exited <-chan struct{}) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on port %d: %v", port, err)
		}
		select {
		case <-exited:
			t.Fatal("DynamoDB Local exited before listening")
		case <-time.After(50 * time.Millisecond):
		}
	}
}
