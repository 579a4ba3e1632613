package s3

import (
	"bytes"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// lateFailure answers like gofakes3's GetObject whose body copy fails half-way: the object's
// status and first bytes, then the error's status and XML.
var lateFailure = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("object bytes, "))
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = w.Write([]byte("<Error><Code>InternalError</Code></Error>"))
})

// A response cut short is cut: no second WriteHeader reaches net/http (it would log
// "superfluous response.WriteHeader call"), and no error document is appended to the bytes
// of an object the client is told is 200.
func TestLateErrorCutsTheResponse(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler http.Handler
		cut     bool
	}{{"cut", cutOnLateError(lateFailure), true}, {"plain", lateFailure, false}} {
		t.Run(tc.name, func(t *testing.T) {
			var logged bytes.Buffer
			srv := httptest.NewUnstartedServer(tc.handler)
			srv.Config.ErrorLog = log.New(&logged, "", 0)
			srv.Start()
			defer srv.Close()
			var body []byte
			resp, rerr := http.Get(srv.URL)
			if rerr == nil {
				body, rerr = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			srv.Close() // flushes the server's log
			appended := strings.Contains(string(body), "<Error>")
			superfluous := strings.Contains(logged.String(), "superfluous")
			if tc.cut {
				// Cut before or after the first bytes left (net/http buffers them): either way
				// the client sees a broken response.
				if appended || superfluous || !(errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF)) {
					t.Fatalf("body %q (error %v), server log %q: want the response cut short, nothing appended, nothing logged", body, rerr, logged.String())
				}
				return
			}
			// The broken variant: what gofakes3 does unwrapped.
			if !appended || !superfluous {
				t.Fatalf("unwrapped: body %q, log %q: expected the error appended and logged", body, logged.String())
			}
		})
	}
}
