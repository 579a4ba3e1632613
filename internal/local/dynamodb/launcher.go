package dynamodb

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
)

// DynamoDB Local has no option for the address it listens on; keyline starts it through a small
// launcher (LoopbackDynamoDBLocal.java) that binds its server to 127.0.0.1 only, so nothing on the
// network can reach the lineage table. The launcher is compiled once per source version into
// <jarDir>/loopback-<hash>/ (by `make deps`, or on first use here when javac is available).

//go:embed LoopbackDynamoDBLocal.java
var launcherSource []byte

// LauncherClass is the launcher's main class.
const LauncherClass = "LoopbackDynamoDBLocal"

// LoopbackHost is the only address DynamoDB Local listens on.
const LoopbackHost = "127.0.0.1"

// ErrJavacMissing means the launcher is not compiled and no javac was found to compile it.
var ErrJavacMissing = errors.New("dynamodb: the loopback launcher is not compiled and javac is missing (install a JDK 17, e.g. openjdk-17-jdk-headless; `make deps` does it)")

// LauncherDir is where the launcher of the current source version is compiled for jarDir.
func LauncherDir(jarDir string) string {
	h := sha256.Sum256(launcherSource)
	return filepath.Join(jarDir, "loopback-"+hex.EncodeToString(h[:8]))
}

// EnsureLauncher returns the directory holding the compiled launcher for jarDir, compiling it
// with javac when it is missing. Concurrent callers (parallel test binaries) each compile into
// their own temporary directory and rename it into place; the first rename wins.
func EnsureLauncher(jarDir string) (string, error) {
	dir := LauncherDir(jarDir)
	if _, err := os.Stat(filepath.Join(dir, LauncherClass+".class")); err == nil {
		return dir, nil
	}
	javac, err := findJavac()
	if err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(jarDir, ".loopback-build-")
	if err != nil {
		return "", fmt.Errorf("dynamodb: compile the loopback launcher: %w", err)
	}
	defer os.RemoveAll(tmp)
	src := filepath.Join(tmp, LauncherClass+".java")
	if err := os.WriteFile(src, launcherSource, 0o600); err != nil {
		return "", fmt.Errorf("dynamodb: compile the loopback launcher: %w", err)
	}
	out := filepath.Join(tmp, "classes")
	cmd := exec.Command(javac, "-nowarn", "-d", out, "-cp", classPath(jarDir, ""), src)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("dynamodb: compile the loopback launcher: %w: %s", err, b)
	}
	if err := os.Rename(out, dir); err != nil {
		if _, statErr := os.Stat(filepath.Join(dir, LauncherClass+".class")); statErr == nil {
			return dir, nil // another process won the race
		}
		return "", fmt.Errorf("dynamodb: install the loopback launcher: %w", err)
	}
	return dir, nil
}

// LaunchArgs are the java arguments that start DynamoDB Local on 127.0.0.1:port through the
// launcher in launcherDir, followed by DynamoDB Local's own options (extra).
func LaunchArgs(jarDir, launcherDir string, port int, extra ...string) []string {
	args := []string{
		"-Djava.library.path=" + filepath.Join(jarDir, "DynamoDBLocal_lib"),
		"-cp", classPath(jarDir, launcherDir),
		LauncherClass,
		"-port", strconv.Itoa(port), "-disableTelemetry",
	}
	return append(args, extra...)
}

func classPath(jarDir, launcherDir string) string {
	cp := filepath.Join(jarDir, "DynamoDBLocal.jar") + string(os.PathListSeparator) + filepath.Join(jarDir, "DynamoDBLocal_lib", "*")
	if launcherDir != "" {
		cp = launcherDir + string(os.PathListSeparator) + cp
	}
	return cp
}

func findJavac() (string, error) {
	if p, err := exec.LookPath("javac"); err == nil {
		return p, nil
	}
	if home := os.Getenv("JAVA_HOME"); home != "" {
		p := filepath.Join(home, "bin", "javac")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", ErrJavacMissing
}
