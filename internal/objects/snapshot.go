package objects

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Snapshot record stream (the plaintext a backup seals):
//
//	"KLSNAP" 0x01  uvarint(len appId) appId
//	repeated: 'O' uvarint(len path) path  scope-byte ('c'|'m')  uvarint(generation)  uvarint(len sealed) sealed
//	'E' uvarint(object count)
//
// sealed is an object's sealed bytes, verbatim (header included). A stream without its end
// record, or with any malformed record, is ErrCorruptSnapshot.
const snapshotMagic = "KLSNAP\x01"

const (
	recObject = 'O'
	recEnd    = 'E'
	// maxPathLen bounds a record's path, so a corrupt length cannot make us allocate much.
	maxPathLen = 4096
)

// Record is one object of a snapshot stream.
type Record struct {
	Path       string
	Scope      Scope
	Generation int
	// SealedSize is the size of the record's sealed bytes.
	SealedSize int64
}

// SnapshotWriter writes a snapshot record stream.
type SnapshotWriter struct {
	w       io.Writer
	n       int64
	objects int
	buf     [binary.MaxVarintLen64]byte
}

// NewSnapshotWriter writes the stream header for appID to w.
func NewSnapshotWriter(w io.Writer, appID string) (*SnapshotWriter, error) {
	sw := &SnapshotWriter{w: w}
	if err := sw.write([]byte(snapshotMagic)); err != nil {
		return nil, err
	}
	if err := sw.str(appID); err != nil {
		return nil, err
	}
	return sw, nil
}

func (sw *SnapshotWriter) write(p []byte) error {
	n, err := sw.w.Write(p)
	sw.n += int64(n)
	return err
}

func (sw *SnapshotWriter) uvarint(v uint64) error {
	return sw.write(sw.buf[:binary.PutUvarint(sw.buf[:], v)])
}

func (sw *SnapshotWriter) str(s string) error {
	if err := sw.uvarint(uint64(len(s))); err != nil {
		return err
	}
	_, err := io.WriteString(countingWriter{sw}, s)
	return err
}

type countingWriter struct{ sw *SnapshotWriter }

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.sw.w.Write(p)
	c.sw.n += int64(n)
	return n, err
}

// WriteRecord writes one record; body must yield exactly rec.SealedSize bytes.
func (sw *SnapshotWriter) WriteRecord(rec Record, body io.Reader) error {
	if err := sw.write([]byte{recObject}); err != nil {
		return err
	}
	if err := sw.str(rec.Path); err != nil {
		return err
	}
	sc := byte('c')
	if rec.Scope == ScopeManaged {
		sc = 'm'
	}
	if err := sw.write([]byte{sc}); err != nil {
		return err
	}
	if err := sw.uvarint(uint64(rec.Generation)); err != nil {
		return err
	}
	if err := sw.uvarint(uint64(rec.SealedSize)); err != nil {
		return err
	}
	n, err := io.Copy(countingWriter{sw}, io.LimitReader(body, rec.SealedSize))
	if err != nil {
		return err
	}
	if n != rec.SealedSize {
		return fmt.Errorf("objects: snapshot of %s: object ended after %d of %d bytes", rec.Path, n, rec.SealedSize)
	}
	sw.objects++
	return nil
}

// Close writes the end record.
func (sw *SnapshotWriter) Close() error {
	if err := sw.write([]byte{recEnd}); err != nil {
		return err
	}
	return sw.uvarint(uint64(sw.objects))
}

// Stats returns what was written so far.
func (sw *SnapshotWriter) Stats() SnapshotStats {
	return SnapshotStats{Objects: sw.objects, Bytes: sw.n}
}

// SnapshotReader reads a snapshot record stream.
type SnapshotReader struct {
	r       *bufio.Reader
	cr      *countReader
	appID   string
	objects int
	body    *io.LimitedReader
	done    bool
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorruptSnapshot}, args...)...)
}

// NewSnapshotReader reads the stream header from r.
func NewSnapshotReader(r io.Reader) (*SnapshotReader, error) {
	cr := &countReader{r: r}
	sr := &SnapshotReader{r: bufio.NewReaderSize(cr, 64<<10), cr: cr}
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(sr.r, magic); err != nil {
		return nil, sr.wrapEOF(err, "stream header")
	}
	if string(magic) != snapshotMagic {
		return nil, corrupt("not a snapshot stream (bad magic)")
	}
	app, err := sr.str()
	if err != nil {
		return nil, err
	}
	if app == "" {
		return nil, corrupt("snapshot names no app")
	}
	sr.appID = app
	return sr, nil
}

// AppID is the app the snapshot was taken of.
func (sr *SnapshotReader) AppID() string { return sr.appID }

// Objects is the number of records read so far.
func (sr *SnapshotReader) Objects() int { return sr.objects }

// BytesRead is the number of stream bytes consumed from the underlying reader so far
// (read-ahead included).
func (sr *SnapshotReader) BytesRead() int64 { return sr.cr.n }

func (sr *SnapshotReader) wrapEOF(err error, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return corrupt("stream ends inside %s", what)
	}
	return err
}

func (sr *SnapshotReader) uvarint(what string) (uint64, error) {
	v, err := binary.ReadUvarint(sr.r)
	if err != nil {
		return 0, sr.wrapEOF(err, what)
	}
	return v, nil
}

func (sr *SnapshotReader) str() (string, error) {
	n, err := sr.uvarint("a name")
	if err != nil {
		return "", err
	}
	if n > maxPathLen {
		return "", corrupt("name of %d bytes", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(sr.r, b); err != nil {
		return "", sr.wrapEOF(err, "a name")
	}
	return string(b), nil
}

// Next returns the next record and a reader of its sealed bytes, valid until the next call
// (unread bytes are skipped). At the end record it returns io.EOF; a stream that ends
// without one is ErrCorruptSnapshot.
func (sr *SnapshotReader) Next() (Record, io.Reader, error) {
	if sr.done {
		return Record{}, nil, io.EOF
	}
	if sr.body != nil && sr.body.N > 0 {
		if _, err := io.Copy(io.Discard, sr.body); err != nil {
			return Record{}, nil, sr.wrapEOF(err, "a record")
		}
		if sr.body.N > 0 {
			return Record{}, nil, corrupt("stream ends inside a record")
		}
	}
	sr.body = nil
	t, err := sr.r.ReadByte()
	if err != nil {
		return Record{}, nil, sr.wrapEOF(err, "the record list (no end record)")
	}
	switch t {
	case recEnd:
		n, err := sr.uvarint("the end record")
		if err != nil {
			return Record{}, nil, err
		}
		if n != uint64(sr.objects) {
			return Record{}, nil, corrupt("end record counts %d objects, stream has %d", n, sr.objects)
		}
		if _, err := sr.r.ReadByte(); err != io.EOF {
			return Record{}, nil, corrupt("data after the end record")
		}
		sr.done = true
		return Record{}, nil, io.EOF
	case recObject:
	default:
		return Record{}, nil, corrupt("unknown record type %#x", t)
	}
	var rec Record
	if rec.Path, err = sr.str(); err != nil {
		return Record{}, nil, err
	}
	if err := validPath(rec.Path); err != nil {
		return Record{}, nil, corrupt("record path: %v", err)
	}
	sc, err := sr.r.ReadByte()
	if err != nil {
		return Record{}, nil, sr.wrapEOF(err, "a record")
	}
	switch sc {
	case 'c':
		rec.Scope = ScopeCMK
	case 'm':
		rec.Scope = ScopeManaged
	default:
		return Record{}, nil, corrupt("unknown scope %#x", sc)
	}
	g, err := sr.uvarint("a record")
	if err != nil {
		return Record{}, nil, err
	}
	if g > 1<<31 {
		return Record{}, nil, corrupt("generation %d", g)
	}
	rec.Generation = int(g)
	size, err := sr.uvarint("a record")
	if err != nil {
		return Record{}, nil, err
	}
	if size > 1<<50 {
		return Record{}, nil, corrupt("record of %d bytes", size)
	}
	rec.SealedSize = int64(size)
	sr.objects++
	sr.body = &io.LimitedReader{R: sr.r, N: rec.SealedSize}
	return rec, &eofChecked{sr.body}, nil
}

// eofChecked turns a premature end of the stream inside a record into ErrCorruptSnapshot.
type eofChecked struct{ lr *io.LimitedReader }

func (e *eofChecked) Read(p []byte) (int, error) {
	n, err := e.lr.Read(p)
	if err == io.EOF && e.lr.N > 0 {
		return n, corrupt("stream ends inside a record")
	}
	return n, err
}
