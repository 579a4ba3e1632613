// Package logsink gives tests a log sink that a server's goroutines may write to while the
// test reads it.
package logsink

import (
	"bytes"
	"sync"
)

// Buffer is an io.Writer safe for concurrent use; String returns what was written so far.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
