// Package s3 serves Amazon S3 locally (path-style addressing): github.com/johannesboyne/gofakes3
// in process, on its afero backend over a directory of the data dir, so objects live as
// files and are streamed, never held whole in memory.
//
// Two things sit in front of gofakes3:
//   - aws-chunked request bodies (what aws-sdk-go-v2 sends by default, with its request
//     checksums, `x-amz-content-sha256: STREAMING-…`) are decoded here, so clients need no
//     special settings (no RequestChecksumCalculation change is required);
//   - multipart uploads are handled here, with each part streamed to a file under
//     DataDir/s3-uploads and the object assembled by streaming the parts into the backend
//     (gofakes3's own multipart code keeps every part, and then the whole object, in memory).
//
// The afero backend ignores MaxKeys (listings are not paginated).
package s3

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/gofrs/uuid"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3afero"
	"github.com/spf13/afero"
)

// Options configure a Service.
type Options struct {
	// DataDir is the local data directory; objects live under DataDir/s3.
	DataDir string
	// Logger receives warnings (default: discard).
	Logger *slog.Logger
}

// Service is the local S3: an http.Handler for path-style S3 requests.
type Service struct {
	backend    *s3afero.MultiBucketBackend
	fake       http.Handler
	uploadsDir string
	log        *slog.Logger

	mu      sync.Mutex
	uploads map[string]*upload
}

// upload is one multipart upload in progress.
type upload struct {
	ID     string            `json:"id"`
	Bucket string            `json:"bucket"`
	Key    string            `json:"key"`
	Meta   map[string]string `json:"meta"`

	mu    sync.Mutex
	parts map[int]partInfo
}

type partInfo struct {
	ETag string
	Size int64
}

// New opens (or creates) the object store under opts.DataDir.
func New(opts Options) (*Service, error) {
	if opts.DataDir == "" {
		return nil, errors.New("s3: Options.DataDir is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	root := filepath.Join(opts.DataDir, "s3")
	fs, err := s3afero.NewBasePathFs(afero.NewOsFs(), root, s3afero.FsPathCreateAll)
	if err != nil {
		return nil, fmt.Errorf("s3: %w", err)
	}
	backend, err := s3afero.MultiBucket(fs)
	if err != nil {
		return nil, fmt.Errorf("s3: %w", err)
	}
	uploadsDir := filepath.Join(opts.DataDir, "s3-uploads")
	if err := os.MkdirAll(uploadsDir, 0o700); err != nil {
		return nil, fmt.Errorf("s3: %w", err)
	}
	fake := gofakes3.New(prefixListing{backend}, gofakes3.WithLogger(gofakes3.DiscardLog()), gofakes3.WithAutoBucket(false))
	s := &Service{backend: backend, fake: cutOnLateError(fake.Server()), uploadsDir: uploadsDir, log: opts.Logger, uploads: map[string]*upload{}}
	if err := s.loadUploads(); err != nil {
		return nil, err
	}
	return s, nil
}

// ServeHTTP serves one S3 request.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := decodeChunked(r); err != nil {
		writeError(w, http.StatusBadRequest, "IncompleteBody", err.Error())
		return
	}
	q := r.URL.Query()
	bucket, key := splitPath(r.URL.Path)
	_, uploads := q["uploads"]
	uploadID := q.Get("uploadId")
	switch {
	case uploads && key != "" && r.Method == http.MethodPost:
		s.createUpload(w, r, bucket, key)
	case uploadID != "" && r.Method == http.MethodPut && q.Get("partNumber") != "" && r.Header.Get("X-Amz-Copy-Source") == "":
		s.uploadPart(w, r, bucket, key, uploadID)
	case uploadID != "" && r.Method == http.MethodPost:
		s.completeUpload(w, r, bucket, key, uploadID)
	case uploadID != "" && r.Method == http.MethodDelete:
		s.abortUpload(w, bucket, key, uploadID)
	case uploadID != "" && r.Method == http.MethodGet:
		s.listParts(w, bucket, key, uploadID)
	case r.Method == http.MethodPut && key != "" && len(q) == 0 && r.Header.Get("X-Amz-Copy-Source") == "":
		s.putObject(w, r)
	default:
		s.fake.ServeHTTP(w, r)
	}
}

// putObject spools the body to a temporary file before gofakes3 sees it: the afero
// backend writes straight onto the object's file, so a body cut short would otherwise
// replace a good object with a truncated one.
func (s *Service) putObject(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength < 0 {
		writeError(w, http.StatusLengthRequired, "MissingContentLength", "You must provide the Content-Length HTTP header.")
		return
	}
	tmp, err := os.CreateTemp(s.uploadsDir, ".put-*")
	if err != nil {
		writeError(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	n, err := io.Copy(tmp, r.Body)
	if err != nil || n != r.ContentLength {
		writeError(w, http.StatusBadRequest, "IncompleteBody", "You did not provide the number of bytes specified by the Content-Length HTTP header.")
		return
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		writeError(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	r.Body = io.NopCloser(tmp)
	s.fake.ServeHTTP(w, r)
}

func splitPath(p string) (bucket, key string) {
	p = strings.TrimPrefix(p, "/")
	bucket, key, _ = strings.Cut(p, "/")
	return bucket, key
}

// decodeChunked turns an aws-chunked body (STREAMING-… payloads, with or without chunk
// signatures and trailing checksums) into the plain bytes, so gofakes3 sees an ordinary
// request. Chunk signatures and trailers are not verified.
func decodeChunked(r *http.Request) error {
	sha := r.Header.Get("X-Amz-Content-Sha256")
	chunked := strings.HasPrefix(sha, "STREAMING-")
	var encs []string
	for _, e := range strings.Split(r.Header.Get("Content-Encoding"), ",") {
		e = strings.TrimSpace(e)
		if e == "aws-chunked" {
			chunked = true
			continue
		}
		if e != "" {
			encs = append(encs, e)
		}
	}
	if !chunked {
		return nil
	}
	n, err := strconv.ParseInt(r.Header.Get("X-Amz-Decoded-Content-Length"), 10, 64)
	if err != nil || n < 0 {
		return errors.New("aws-chunked body without a valid x-amz-decoded-content-length")
	}
	r.Body = &chunkReader{rc: r.Body, br: bufio.NewReaderSize(r.Body, 64<<10), want: n}
	r.ContentLength = n
	r.Header.Set("Content-Length", strconv.FormatInt(n, 10))
	r.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
	r.Header.Del("X-Amz-Decoded-Content-Length")
	r.Header.Del("X-Amz-Trailer")
	if len(encs) == 0 {
		r.Header.Del("Content-Encoding")
	} else {
		r.Header.Set("Content-Encoding", strings.Join(encs, ","))
	}
	return nil
}

// chunkReader decodes `hex-size[;chunk-signature=…]\r\n data \r\n … 0…\r\n [trailers] \r\n`.
type chunkReader struct {
	rc     io.Closer
	br     *bufio.Reader
	remain int64 // bytes left in the current chunk
	want   int64 // decoded bytes still expected
	done   bool
	first  bool
}

var errBadChunk = errors.New("malformed aws-chunked body")

func (c *chunkReader) Read(p []byte) (int, error) {
	for c.remain == 0 {
		if c.done {
			return 0, io.EOF
		}
		if c.first {
			if err := c.expectCRLF(); err != nil {
				return 0, err
			}
		}
		c.first = true
		line, err := c.br.ReadString('\n')
		if err != nil {
			return 0, errBadChunk
		}
		line = strings.TrimRight(line, "\r\n")
		sizeHex, _, _ := strings.Cut(line, ";")
		size, err := strconv.ParseInt(strings.TrimSpace(sizeHex), 16, 64)
		if err != nil || size < 0 {
			return 0, errBadChunk
		}
		if size == 0 {
			c.done = true
			// Trailers (checksums) follow until an empty line; they are not needed.
			for {
				l, err := c.br.ReadString('\n')
				if strings.TrimRight(l, "\r\n") == "" || err != nil {
					break
				}
			}
			if c.want != 0 {
				return 0, errBadChunk
			}
			return 0, io.EOF
		}
		c.remain = size
	}
	if int64(len(p)) > c.remain {
		p = p[:c.remain]
	}
	n, err := c.br.Read(p)
	c.remain -= int64(n)
	c.want -= int64(n)
	if c.want < 0 {
		return n, errBadChunk
	}
	if err == io.EOF && (c.remain > 0 || !c.done) {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (c *chunkReader) expectCRLF() error {
	b := make([]byte, 2)
	if _, err := io.ReadFull(c.br, b); err != nil || string(b) != "\r\n" {
		return errBadChunk
	}
	return nil
}

func (c *chunkReader) Close() error { return c.rc.Close() }

// --- multipart uploads ---

func (s *Service) uploadDir(id string) string { return filepath.Join(s.uploadsDir, id) }

func (s *Service) loadUploads() error {
	entries, err := os.ReadDir(s.uploadsDir)
	if err != nil {
		return fmt.Errorf("s3: %w", err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(s.uploadsDir, e.Name(), "upload.json"))
		if err != nil {
			continue
		}
		var u upload
		if json.Unmarshal(b, &u) != nil || u.ID != e.Name() {
			continue
		}
		u.parts = map[int]partInfo{}
		files, _ := os.ReadDir(s.uploadDir(u.ID))
		for _, f := range files {
			var n int
			var etag string
			if _, err := fmt.Sscanf(f.Name(), "part-%d.%s", &n, &etag); err == nil {
				if info, err := f.Info(); err == nil {
					u.parts[n] = partInfo{ETag: `"` + etag + `"`, Size: info.Size()}
				}
			}
		}
		s.uploads[u.ID] = &u
	}
	return nil
}

// objectMeta collects the headers gofakes3 keeps as object metadata.
func objectMeta(h http.Header) map[string]string {
	meta := map[string]string{}
	for k, v := range h {
		ck := textproto.CanonicalMIMEHeaderKey(k)
		switch {
		case strings.HasPrefix(ck, "X-Amz-Meta-"), ck == "Content-Type", ck == "Content-Disposition",
			ck == "Content-Language", ck == "Cache-Control", ck == "Expires":
			meta[ck] = v[0]
		case ck == "Content-Encoding" && v[0] != "":
			meta[ck] = v[0]
		}
	}
	return meta
}

func (s *Service) createUpload(w http.ResponseWriter, r *http.Request, bucket, key string) {
	if ok, err := s.backend.BucketExists(bucket); err != nil || !ok {
		writeError(w, http.StatusNotFound, "NoSuchBucket", "The specified bucket does not exist")
		return
	}
	u := &upload{ID: uuid.Must(uuid.NewV4()).String(), Bucket: bucket, Key: key, Meta: objectMeta(r.Header), parts: map[int]partInfo{}}
	if err := os.MkdirAll(s.uploadDir(u.ID), 0o700); err != nil {
		writeError(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	b, _ := json.Marshal(u)
	if err := os.WriteFile(filepath.Join(s.uploadDir(u.ID), "upload.json"), b, 0o600); err != nil {
		writeError(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	s.mu.Lock()
	s.uploads[u.ID] = u
	s.mu.Unlock()
	writeXML(w, gofakes3.InitiateMultipartUploadResult{Bucket: bucket, Key: key, UploadID: gofakes3.UploadID(u.ID)}, "InitiateMultipartUploadResult")
}

func (s *Service) getUpload(w http.ResponseWriter, bucket, key, id string) *upload {
	s.mu.Lock()
	u := s.uploads[id]
	s.mu.Unlock()
	if u == nil || u.Bucket != bucket || u.Key != key {
		writeError(w, http.StatusNotFound, "NoSuchUpload",
			"The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.")
		return nil
	}
	return u
}

func (s *Service) uploadPart(w http.ResponseWriter, r *http.Request, bucket, key, id string) {
	u := s.getUpload(w, bucket, key, id)
	if u == nil {
		return
	}
	n, err := strconv.Atoi(r.URL.Query().Get("partNumber"))
	if err != nil || n < 1 || n > gofakes3.MaxUploadPartNumber {
		writeError(w, http.StatusBadRequest, "InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive")
		return
	}
	if r.ContentLength < 0 {
		writeError(w, http.StatusLengthRequired, "MissingContentLength", "You must provide the Content-Length HTTP header.")
		return
	}
	dir := s.uploadDir(id)
	tmp, err := os.CreateTemp(dir, ".part-*")
	if err != nil {
		writeError(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	defer os.Remove(tmp.Name())
	h := md5.New()
	written, err := io.Copy(io.MultiWriter(tmp, h), r.Body)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil || written != r.ContentLength {
		writeError(w, http.StatusBadRequest, "IncompleteBody", "You did not provide the number of bytes specified by the Content-Length HTTP header.")
		return
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if md5b64 := r.Header.Get("Content-MD5"); md5b64 != "" && !md5Matches(md5b64, h.Sum(nil)) {
		writeError(w, http.StatusBadRequest, "BadDigest", "The Content-MD5 you specified did not match what we received.")
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if old, ok := u.parts[n]; ok {
		_ = os.Remove(filepath.Join(dir, fmt.Sprintf("part-%d.%s", n, strings.Trim(old.ETag, `"`))))
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, fmt.Sprintf("part-%d.%s", n, sum))); err != nil {
		writeError(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	u.parts[n] = partInfo{ETag: `"` + sum + `"`, Size: written}
	w.Header().Set("ETag", `"`+sum+`"`)
	w.WriteHeader(http.StatusOK)
}

func md5Matches(b64 string, sum []byte) bool {
	dec, err := base64.StdEncoding.DecodeString(b64)
	return err == nil && bytes.Equal(dec, sum)
}

// minPartSize is S3's minimum size of every part but the last.
const minPartSize = 5 << 20

func (s *Service) completeUpload(w http.ResponseWriter, r *http.Request, bucket, key, id string) {
	u := s.getUpload(w, bucket, key, id)
	if u == nil {
		return
	}
	var in gofakes3.CompleteMultipartUploadRequest
	body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	if err != nil || xml.Unmarshal(body, &in) != nil || len(in.Parts) == 0 {
		writeError(w, http.StatusBadRequest, "MalformedXML",
			"The XML you provided was not well-formed or did not validate against our published schema")
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if !sort.SliceIsSorted(in.Parts, func(a, b int) bool { return in.Parts[a].PartNumber < in.Parts[b].PartNumber }) {
		writeError(w, http.StatusBadRequest, "InvalidPartOrder", "The list of parts was not in ascending order. The parts list must be specified in order by part number.")
		return
	}
	var (
		readers []io.Reader
		files   []*os.File
		size    int64
		etagSum = md5.New()
	)
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for i, p := range in.Parts {
		info, ok := u.parts[p.PartNumber]
		if !ok || strings.Trim(p.ETag, `"`) != strings.Trim(info.ETag, `"`) {
			writeError(w, http.StatusBadRequest, "InvalidPart",
				"One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.")
			return
		}
		if i < len(in.Parts)-1 && info.Size < minPartSize {
			writeError(w, http.StatusBadRequest, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed object size.")
			return
		}
		f, err := os.Open(filepath.Join(s.uploadDir(id), fmt.Sprintf("part-%d.%s", p.PartNumber, strings.Trim(info.ETag, `"`))))
		if err != nil {
			writeError(w, http.StatusInternalServerError, "InternalError", err.Error())
			return
		}
		files = append(files, f)
		readers = append(readers, f)
		size += info.Size
		raw, _ := hex.DecodeString(strings.Trim(info.ETag, `"`))
		etagSum.Write(raw)
	}
	if _, err := s.backend.PutObject(bucket, key, u.Meta, io.MultiReader(readers...), size, nil); err != nil {
		if gofakes3.HasErrorCode(err, gofakes3.ErrNoSuchBucket) {
			writeError(w, http.StatusNotFound, "NoSuchBucket", "The specified bucket does not exist")
			return
		}
		writeError(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	etag := fmt.Sprintf(`"%s-%d"`, hex.EncodeToString(etagSum.Sum(nil)), len(in.Parts))
	s.dropUpload(id)
	writeXML(w, gofakes3.CompleteMultipartUploadResult{
		Location: "http://" + r.Host + "/" + bucket + "/" + key, Bucket: bucket, Key: key, ETag: etag,
	}, "CompleteMultipartUploadResult")
}

func (s *Service) dropUpload(id string) {
	s.mu.Lock()
	delete(s.uploads, id)
	s.mu.Unlock()
	if err := os.RemoveAll(s.uploadDir(id)); err != nil {
		s.log.Warn("s3: removing upload parts", "upload", id, "err", err)
	}
}

func (s *Service) abortUpload(w http.ResponseWriter, bucket, key, id string) {
	if u := s.getUpload(w, bucket, key, id); u == nil {
		return
	}
	s.dropUpload(id)
	w.WriteHeader(http.StatusNoContent)
}

type listPartsResult struct {
	Bucket       string    `xml:"Bucket"`
	Key          string    `xml:"Key"`
	UploadID     string    `xml:"UploadId"`
	StorageClass string    `xml:"StorageClass"`
	MaxParts     int       `xml:"MaxParts"`
	IsTruncated  bool      `xml:"IsTruncated"`
	Parts        []xmlPart `xml:"Part"`
}

type xmlPart struct {
	PartNumber int    `xml:"PartNumber"`
	ETag       string `xml:"ETag"`
	Size       int64  `xml:"Size"`
}

func (s *Service) listParts(w http.ResponseWriter, bucket, key, id string) {
	u := s.getUpload(w, bucket, key, id)
	if u == nil {
		return
	}
	u.mu.Lock()
	res := listPartsResult{Bucket: bucket, Key: key, UploadID: id, StorageClass: "STANDARD", MaxParts: 10000}
	for n, p := range u.parts {
		res.Parts = append(res.Parts, xmlPart{PartNumber: n, ETag: p.ETag, Size: p.Size})
	}
	u.mu.Unlock()
	sort.Slice(res.Parts, func(a, b int) bool { return res.Parts[a].PartNumber < res.Parts[b].PartNumber })
	writeXML(w, res, "ListPartsResult")
}

// --- responses ---

func writeXML(w http.ResponseWriter, v any, root string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, xml.Header)
	enc := xml.NewEncoder(w)
	_ = enc.EncodeElement(v, xml.StartElement{Name: xml.Name{Space: "http://s3.amazonaws.com/doc/2006-03-01/", Local: root}})
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, xml.Header)
	_ = xml.NewEncoder(w).Encode(struct {
		XMLName xml.Name `xml:"Error"`
		Code    string   `xml:"Code"`
		Message string   `xml:"Message"`
	}{Code: code, Message: msg})
}
