package soak

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/keyline/keyline/internal/local/fault"
)

// startTimeout bounds one start of the local deployment (DynamoDB Local is the slow part).
const startTimeout = 3 * time.Minute

// child is the local deployment (`keyline local`) the soak runs as a separate process, so
// that a crash is a real process exit and a restart a real start on the same data directory.
type child struct {
	binary, dataDir, faultsFile, token string
	addr, consoleAddr                  string
	log                                *os.File

	mu      sync.Mutex
	cmd     *exec.Cmd
	up      chan struct{} // closed while the deployment serves
	exited  chan int      // the exit code of the current process
	done    chan struct{} // closed when the current process has exited
	stopped bool
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func newChild(binary, dataDir, faultsFile, token string) (*child, error) {
	a, err := freeAddr()
	if err != nil {
		return nil, err
	}
	ca, err := freeAddr()
	if err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(filepath.Join(dataDir, "local.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	return &child{binary: binary, dataDir: dataDir, faultsFile: faultsFile, token: token, addr: a, consoleAddr: ca, log: logf, up: make(chan struct{})}, nil
}

// start runs `keyline local` (crashing at crashAt when not empty) and returns once it serves.
func (c *child) start(ctx context.Context, crashAt string) error {
	args := []string{"local", "--data-dir", c.dataDir, "--addr", c.addr, "--console-addr", c.consoleAddr,
		"--faults", c.faultsFile}
	if crashAt != "" {
		args = append(args, "--crash-at", crashAt)
	}
	cmd := exec.Command(c.binary, args...)
	cmd.Env = append(os.Environ(), "KEYLINE_OPERATOR_TOKEN="+c.token)
	cmd.Stderr = c.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	fmt.Fprintf(c.log, "--- soak: starting keyline local (crash at %q) at %s\n", crashAt, time.Now().UTC().Format(time.RFC3339Nano))
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start keyline local: %w", err)
	}
	exited := make(chan int, 1)
	done := make(chan struct{})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		signalled := false
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "data-dir ") && !signalled {
				signalled = true
				close(ready)
			}
		}
	}()
	go func() {
		err := cmd.Wait()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			code = -1
		}
		close(done)
		exited <- code
	}()
	c.mu.Lock()
	c.cmd, c.exited, c.done = cmd, exited, done
	c.mu.Unlock()
	tctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	select {
	case <-ready:
	case <-done:
		code := <-exited
		exited <- code
		return fmt.Errorf("keyline local exited with %d while starting (see %s)", code, c.log.Name())
	case <-tctx.Done():
		_ = cmd.Process.Kill()
		return fmt.Errorf("keyline local did not start in %v: %w", startTimeout, tctx.Err())
	}
	c.mu.Lock()
	select {
	case <-c.up:
	default:
		close(c.up)
	}
	c.mu.Unlock()
	return nil
}

// down marks the deployment as not serving (after a crash, until the restart).
func (c *child) down() {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.up:
		c.up = make(chan struct{})
	default:
	}
}

// waitUp waits until the deployment serves.
func (c *child) waitUp(ctx context.Context) error {
	c.mu.Lock()
	up := c.up
	c.mu.Unlock()
	select {
	case <-up:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *child) isUp() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.up:
		return true
	default:
		return false
	}
}

// wait returns the exit code of the current process when it exits.
func (c *child) wait() <-chan int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.exited
}

// stop ends the deployment cleanly (SIGTERM), killing it if it does not stop in time.
func (c *child) stop() {
	c.mu.Lock()
	cmd, done := c.cmd, c.done
	c.stopped = true
	c.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// isCrash says an exit code is the one of an injected process crash.
func isCrash(code int) bool { return code == fault.CrashExitCode }
