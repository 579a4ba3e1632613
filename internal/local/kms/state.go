package kms

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// pendingKey is a key scheduled for deletion, as the layer records it.
type pendingKey struct {
	Arn                 string    `json:"arn"`
	DeletionDate        time.Time `json:"deletionDate"`
	PendingWindowInDays int64     `json:"pendingWindowInDays"`
}

// stateFile is the layer's own state, persisted as JSON so restarts keep it. (A key left
// Disabled by CancelKeyDeletion is written into local-kms's own database instead.)
type stateFile struct {
	path string

	mu   sync.RWMutex
	keys map[string]pendingKey
	// owners maps the id of each key of another account than local-kms's to that account.
	owners map[string]string
	// wake is closed (and replaced) whenever the set of pending keys changes.
	wake chan struct{}
}

type stateJSON struct {
	PendingDeletion []pendingKey      `json:"pendingDeletion"`
	Owners          map[string]string `json:"owners,omitempty"`
}

func loadState(path string) (*stateFile, error) {
	st := &stateFile{path: path, keys: map[string]pendingKey{}, owners: map[string]string{}, wake: make(chan struct{})}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("kms: read state: %w", err)
	}
	var j stateJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("kms: state file %s: %w", path, err)
	}
	for _, p := range j.PendingDeletion {
		st.keys[p.Arn] = p
	}
	for id, a := range j.Owners {
		st.owners[id] = a
	}
	return st, nil
}

// changed returns a channel closed at the next change of the pending keys.
func (st *stateFile) changed() <-chan struct{} {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.wake
}

// next returns the earliest deletion date.
func (st *stateFile) next() (time.Time, bool) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	var first time.Time
	for _, p := range st.keys {
		if first.IsZero() || p.DeletionDate.Before(first) {
			first = p.DeletionDate
		}
	}
	return first, !first.IsZero()
}

// saveLocked writes the state atomically and wakes waiters; st.mu must be held.
func (st *stateFile) saveLocked() error {
	close(st.wake)
	st.wake = make(chan struct{})
	j := stateJSON{PendingDeletion: make([]pendingKey, 0, len(st.keys)), Owners: st.owners}
	for _, p := range st.keys {
		j.PendingDeletion = append(j.PendingDeletion, p)
	}
	sort.Slice(j.PendingDeletion, func(a, b int) bool { return j.PendingDeletion[a].Arn < j.PendingDeletion[b].Arn })
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return fmt.Errorf("kms: encode state: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(st.path), ".kms-fidelity-*.json")
	if err != nil {
		return fmt.Errorf("kms: save state: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("kms: save state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("kms: save state: %w", err)
	}
	if err := os.Rename(tmp.Name(), st.path); err != nil {
		return fmt.Errorf("kms: save state: %w", err)
	}
	return nil
}

func (st *stateFile) pending(arn string) (pendingKey, bool) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	p, ok := st.keys[arn]
	return p, ok
}

func (st *stateFile) setPending(arn string, when time.Time, days int64) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.keys[arn] = pendingKey{Arn: arn, DeletionDate: when, PendingWindowInDays: days}
	return st.saveLocked()
}

func (st *stateFile) clear(arn string) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, ok := st.keys[arn]; !ok {
		return nil
	}
	delete(st.keys, arn)
	return st.saveLocked()
}

// anyDue reports whether some key's deletion window has ended at now.
func (st *stateFile) anyDue(now time.Time) bool {
	st.mu.RLock()
	defer st.mu.RUnlock()
	for _, p := range st.keys {
		if !now.Before(p.DeletionDate) {
			return true
		}
	}
	return false
}

// due lists the keys whose deletion window has ended at now, oldest first.
func (st *stateFile) due(now time.Time) []pendingKey {
	st.mu.RLock()
	defer st.mu.RUnlock()
	var out []pendingKey
	for _, p := range st.keys {
		if !now.Before(p.DeletionDate) {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].DeletionDate.Before(out[b].DeletionDate) })
	return out
}

// owner returns the account of a key of another account, by key id.
func (st *stateFile) owner(keyID string) (string, bool) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	a, ok := st.owners[keyID]
	return a, ok
}

// hasOwners reports whether any key belongs to another account.
func (st *stateFile) hasOwners() bool {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return len(st.owners) > 0
}

// setOwner records the account of a new key of another account.
func (st *stateFile) setOwner(keyID, account string) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.owners[keyID] = account
	return st.saveLocked()
}
