package testenv

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/keyline/keyline/internal/lineage"
	ddblocal "github.com/keyline/keyline/internal/local/dynamodb"
)

// DynamoDBEndpointEnv names the environment variable through which `make test` hands every
// test binary the address of the one DynamoDB Local it started for the run.
const DynamoDBEndpointEnv = "KEYLINE_TEST_DYNAMODB_ENDPOINT"

// DynamoDBRegion is the region the DynamoDB clients of tests use.
const DynamoDBRegion = "us-east-1"

const ddbModule = "github.com/keyline/keyline"

// One DynamoDB Local per test binary (when the environment does not provide one).
var (
	ddbOnce     sync.Once
	ddbEndpoint string
	ddbErr      error
	ddbMu       sync.Mutex
	ddbCmd      *exec.Cmd
	ddbDone     chan struct{}
)

// DynamoDBEndpoint returns the URL of the DynamoDB Local the tests share: the one named by
// KEYLINE_TEST_DYNAMODB_ENDPOINT, or else one started (once per test binary) from
// <repo>/.local/dynamodb, installing it with scripts/install-dynamodb-local.sh when missing.
// It fails the test when DynamoDB Local cannot be had; it never skips.
func DynamoDBEndpoint(t testing.TB) string {
	t.Helper()
	if ep := strings.TrimSpace(os.Getenv(DynamoDBEndpointEnv)); ep != "" {
		return ep
	}
	ddbOnce.Do(func() { ddbEndpoint, ddbErr = ddbStart() })
	if ddbErr != nil {
		t.Fatalf("testenv: DynamoDB Local: %v", ddbErr)
	}
	return ddbEndpoint
}

// DynamoDB returns an aws-sdk-go-v2 DynamoDB client on the shared DynamoDB Local.
func DynamoDB(t testing.TB) *dynamodb.Client {
	t.Helper()
	return DynamoDBClient(DynamoDBEndpoint(t))
}

// DynamoDBClient returns a DynamoDB client for a DynamoDB Local at endpoint, with static
// dummy credentials and enough idle connections for parallel work.
func DynamoDBClient(endpoint string) *dynamodb.Client {
	hc := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.MaxIdleConns = 256
		tr.MaxIdleConnsPerHost = 128
	})
	return dynamodb.New(dynamodb.Options{
		Region:       DynamoDBRegion,
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("keyline", "keyline", ""),
		HTTPClient:   hc,
	})
}

// NewTable creates a fresh, uniquely named keyline lineage table (lineage.CreateTable) for
// this test and deletes it when the test ends, so tests are isolated on one DynamoDB Local.
func NewTable(t testing.TB, client *dynamodb.Client) string {
	t.Helper()
	name := ddbTableName(t.Name())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := lineage.CreateTable(ctx, client, name); err != nil {
		t.Fatalf("testenv: create table %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = client.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(name)})
	})
	return name
}

var ddbNameClean = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

func ddbTableName(testName string) string {
	base := ddbNameClean.ReplaceAllString(testName, "-")
	if len(base) > 150 {
		base = base[:150]
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "keyline-" + base + "-" + hex.EncodeToString(b[:])
}

// Main runs the tests and then stops a DynamoDB Local the binary started, and exits with the
// tests' code. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	StopDynamoDB()
	os.Exit(code)
}

// StopDynamoDB stops the DynamoDB Local this test binary started, if any. Tests must not use
// it afterwards.
func StopDynamoDB() {
	ddbMu.Lock()
	cmd, done := ddbCmd, ddbDone
	ddbCmd = nil
	ddbMu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Kill()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
}

// ddbRepoRoot walks up from the working directory (then from this source file) to the
// directory whose go.mod declares the keyline module.
func ddbRepoRoot() (string, error) {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		starts = append(starts, filepath.Dir(file))
	}
	for _, dir := range starts {
		for d := dir; ; {
			if ddbIsRoot(d) {
				return d, nil
			}
			parent := filepath.Dir(d)
			if parent == d {
				break
			}
			d = parent
		}
	}
	return "", fmt.Errorf("no go.mod declaring module %s above %v", ddbModule, starts)
}

func ddbIsRoot(dir string) bool {
	f, err := os.Open(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "module" {
			return strings.Trim(fields[1], `"`) == ddbModule
		}
	}
	return false
}

func ddbStart() (string, error) {
	root, err := ddbRepoRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, ".local", "dynamodb")
	jar := filepath.Join(dir, "DynamoDBLocal.jar")
	if _, err := os.Stat(jar); err != nil {
		script := filepath.Join(root, "scripts", "install-dynamodb-local.sh")
		cmd := exec.Command(script)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("%s is missing and %s failed: %v\n%s", jar, script, err, out)
		}
		if _, err := os.Stat(jar); err != nil {
			return "", fmt.Errorf("%s still missing after %s:\n%s", jar, script, out)
		}
	}
	java, err := exec.LookPath("java")
	if err != nil {
		return "", fmt.Errorf("java not found on PATH (DynamoDB Local needs Java 17+; scripts/ensure-java.sh installs it): %w", err)
	}
	// DynamoDB Local listens on 127.0.0.1 only, through keyline's loopback launcher.
	launcherDir, err := ddblocal.EnsureLauncher(dir)
	if err != nil {
		return "", err
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		ep, err := ddbLaunch(java, dir, launcherDir)
		if err == nil {
			return ep, nil
		}
		lastErr = err
	}
	return "", lastErr
}

// ddbLaunch starts DynamoDB Local on a free loopback port and waits until it answers.
func ddbLaunch(java, dir, launcherDir string) (string, error) {
	port, err := ddbFreePort()
	if err != nil {
		return "", err
	}
	out := &ddbBuffer{}
	started := make(chan error, 1)
	done := make(chan struct{})
	var cmd *exec.Cmd
	// The parent-death signal fires when the thread that started the child exits, so start
	// it from a goroutine locked to its thread that lives as long as the child.
	go func() {
		runtime.LockOSThread()
		cmd = exec.Command(java, ddblocal.LaunchArgs(dir, launcherDir, port, "-inMemory")...)
		cmd.Dir = dir
		cmd.Stdout = out
		cmd.Stderr = out
		ddbSetParentDeath(cmd)
		if err := cmd.Start(); err != nil {
			started <- err
			close(done)
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(done)
		// Leaving the goroutine locked ends its thread, after the child is gone.
	}()
	if err := <-started; err != nil {
		return "", fmt.Errorf("start DynamoDB Local: %w", err)
	}
	ep := "http://127.0.0.1:" + strconv.Itoa(port)
	client := DynamoDBClient(ep)
	deadline := time.Now().Add(90 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := client.ListTables(ctx, &dynamodb.ListTablesInput{})
		cancel()
		if err == nil {
			break
		}
		select {
		case <-done:
			return "", fmt.Errorf("DynamoDB Local exited before answering on port %d:\n%s", port, out.String())
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return "", fmt.Errorf("DynamoDB Local did not answer ListTables on port %d within 90s: %v\n%s", port, err, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	ddbMu.Lock()
	ddbCmd, ddbDone = cmd, done
	ddbMu.Unlock()
	return ep, nil
}

func ddbFreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return 0, errors.New("find a free port: not a TCP address")
	}
	return addr.Port, nil
}

// ddbBuffer collects the child's output for error messages, safely across goroutines.
type ddbBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *ddbBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.b.Len() < 64<<10 {
		b.b.Write(p)
	}
	return len(p), nil
}

func (b *ddbBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// DynamoDBLocalDir is the directory holding DynamoDBLocal.jar (<repo>/.local/dynamodb).
func DynamoDBLocalDir(t testing.TB) string {
	t.Helper()
	root, err := ddbRepoRoot()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	dir := filepath.Join(root, ".local", "dynamodb")
	if _, err := os.Stat(filepath.Join(dir, "DynamoDBLocal.jar")); err != nil {
		t.Fatalf("testenv: DynamoDB Local is not installed (run `make deps`): %v", err)
	}
	return dir
}

// DynamoDBPort is the loopback port of the tests' DynamoDB Local.
func DynamoDBPort(t testing.TB) int {
	t.Helper()
	u, err := url.Parse(DynamoDBEndpoint(t))
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatalf("testenv: endpoint %s has no port: %v", u, err)
	}
	return port
}

// RepoRoot is the keyline repository's root (the directory whose go.mod declares the
// module), for tests that read files of the tree (events/, scripts/, tools/node/).
func RepoRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := ddbRepoRoot()
	if err != nil {
		tb.Fatal(err)
	}
	return dir
}
