// Package dynamodb runs DynamoDB Local (AWS's own, a Java program) as a child process
// with its data under the local data directory, and reverse-proxies requests to it so it
// is reached through the local endpoint's one address.
//
// The child gets Pdeathsig (Linux), so it dies with its parent even if the parent is
// killed; Stop ends it cleanly.
package dynamodb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Errors New and Start report.
var (
	// ErrJavaMissing means no java executable was found.
	ErrJavaMissing = errors.New("dynamodb: Java is not installed (DynamoDB Local needs Java 17); run `make deps`")
	// ErrJarMissing means DynamoDBLocal.jar was not found.
	ErrJarMissing = errors.New("dynamodb: DynamoDB Local is not installed (no DynamoDBLocal.jar); run `make deps`")
	// ErrNotReady means the process did not answer before the readiness timeout, or exited.
	ErrNotReady = errors.New("dynamodb: DynamoDB Local did not become ready")
)

// Options configure a Process.
type Options struct {
	// DataDir is the local data directory; tables live in DataDir/dynamodb.
	// Empty with InMemory set keeps nothing on disk.
	DataDir string
	// InMemory runs DynamoDB Local with -inMemory instead of -dbPath.
	InMemory bool
	// JarDir holds DynamoDBLocal.jar and DynamoDBLocal_lib (default: <repo>/.local/dynamodb,
	// found by walking up from the working directory to keyline's go.mod).
	JarDir string
	// Java is the java executable (default: "java" on PATH, then $JAVA_HOME/bin/java).
	Java string
	// Port is the loopback port for the child (0: a free one).
	Port int
	// ReadyTimeout bounds the wait for the child to answer (default 90s).
	ReadyTimeout time.Duration
	// Logger receives the child's output at debug level and warnings.
	Logger *slog.Logger
}

// Process is a running DynamoDB Local.
type Process struct {
	cmd      *exec.Cmd
	endpoint *url.URL
	proxy    *httputil.ReverseProxy
	log      *slog.Logger
	exited   chan struct{}
	waitErr  error
	output   *tailBuffer
	stopOnce sync.Once
}

// Start launches DynamoDB Local and waits until it answers.
func Start(ctx context.Context, opts Options) (*Process, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 90 * time.Second
	}
	java, err := findJava(opts.Java)
	if err != nil {
		return nil, err
	}
	jarDir := opts.JarDir
	if jarDir == "" {
		jarDir = defaultJarDir()
	}
	if _, err := os.Stat(filepath.Join(jarDir, "DynamoDBLocal.jar")); err != nil {
		return nil, fmt.Errorf("%w (looked in %s)", ErrJarMissing, jarDir)
	}
	port := opts.Port
	if port == 0 {
		if port, err = freePort(); err != nil {
			return nil, fmt.Errorf("dynamodb: %w", err)
		}
	}
	launcherDir, err := EnsureLauncher(jarDir)
	if err != nil {
		return nil, err
	}
	// One database whatever the caller's access key and region, as one AWS account
	// would have: `keyline invoke`, the AWS CLI and the stack all see the same tables.
	args := LaunchArgs(jarDir, launcherDir, port, "-sharedDb")
	switch {
	case opts.InMemory:
		args = append(args, "-inMemory")
	case opts.DataDir != "":
		dbPath := filepath.Join(opts.DataDir, "dynamodb")
		if err := os.MkdirAll(dbPath, 0o700); err != nil {
			return nil, fmt.Errorf("dynamodb: %w", err)
		}
		args = append(args, "-dbPath", dbPath)
	default:
		return nil, errors.New("dynamodb: Options.DataDir is required unless InMemory is set")
	}
	cmd := exec.Command(java, args...)
	cmd.Dir = jarDir
	cmd.SysProcAttr = sysProcAttr()
	out := &tailBuffer{max: 16 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	endpoint := &url.URL{Scheme: "http", Host: net.JoinHostPort(LoopbackHost, strconv.Itoa(port))}
	p := &Process{cmd: cmd, endpoint: endpoint, log: opts.Logger, exited: make(chan struct{}), output: out}
	// Pdeathsig fires when the OS thread that started the child exits, not the process:
	// start and wait on one locked thread, so that thread outlives the child.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("dynamodb: start %s: %w", java, err)
	}
	p.proxy = newProxy(endpoint)
	if err := p.waitReady(ctx, opts.ReadyTimeout); err != nil {
		_ = p.Stop()
		return nil, err
	}
	opts.Logger.Debug("dynamodb: DynamoDB Local ready", "endpoint", endpoint.String(), "pid", cmd.Process.Pid)
	return p, nil
}

// Endpoint is the child's own address (http://127.0.0.1:port).
func (p *Process) Endpoint() string { return p.endpoint.String() }

// Pid is the child's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited is closed when the child process has ended.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Stop ends the child: SIGTERM, then SIGKILL after 5 seconds. It is safe to call twice.
func (p *Process) Stop() error {
	p.stopOnce.Do(func() {
		select {
		case <-p.exited:
			return
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return nil
}

func (p *Process) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case <-p.exited:
			return fmt.Errorf("%w: it exited (%v): %s", ErrNotReady, p.waitErr, strings.TrimSpace(p.output.String()))
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrNotReady, ctx.Err())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w within %s: %s", ErrNotReady, timeout, strings.TrimSpace(p.output.String()))
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.endpoint.String(), strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/x-amz-json-1.0")
		req.Header.Set("X-Amz-Target", "DynamoDB_20120810.ListTables")
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=local/20240101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0")
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-p.exited:
		case <-ctx.Done():
		}
	}
}

// ServeHTTP forwards a DynamoDB request to the child.
func (p *Process) ServeHTTP(w http.ResponseWriter, r *http.Request) { p.proxy.ServeHTTP(w, r) }

// newProxy is a plain reverse proxy with a Transport tuned for many small requests on
// kept-alive connections.
func newProxy(target *url.URL) *httputil.ReverseProxy {
	tr := &http.Transport{
		MaxIdleConns:        512,
		MaxIdleConnsPerHost: 512,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Header.Del("X-Forwarded-For")
		},
		Transport: tr,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.Header().Set("Content-Type", "application/x-amz-json-1.0")
			w.Header().Set("X-Amzn-Errortype", "InternalServerError")
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintf(w, `{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":%q}`,
				"DynamoDB Local is unavailable: "+err.Error())
		},
	}
}

func findJava(explicit string) (string, error) {
	if explicit != "" {
		if p, err := exec.LookPath(explicit); err == nil {
			return p, nil
		}
		return "", fmt.Errorf("%w (%s not found)", ErrJavaMissing, explicit)
	}
	if p, err := exec.LookPath("java"); err == nil {
		return p, nil
	}
	if home := os.Getenv("JAVA_HOME"); home != "" {
		p := filepath.Join(home, "bin", "java")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", ErrJavaMissing
}

// defaultJarDir is $KEYLINE_DYNAMODB_DIR when set; otherwise it walks up from the
// working directory to keyline's go.mod and returns <repo>/.local/dynamodb.
func defaultJarDir() string {
	if d := os.Getenv("KEYLINE_DYNAMODB_DIR"); d != "" {
		return d
	}
	dir, err := os.Getwd()
	if err != nil {
		return filepath.Join(".local", "dynamodb")
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/keyline/keyline\n")) {
			return filepath.Join(dir, ".local", "dynamodb")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return filepath.Join(".local", "dynamodb")
		}
		dir = parent
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// tailBuffer keeps the last max bytes of the child's output, for error messages.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
