package s3

import (
	"net/http"
)

// cutOnLateError wraps gofakes3, which answers an error met after it began a response (a
// GetObject whose body copy fails, most often because the client went away) by writing the
// error's status and XML after the object's bytes: net/http logs a superfluous WriteHeader,
// and a client still reading would get the error document appended to the object. Here a
// response that has started is cut instead (the connection is dropped, as S3 does), so the
// client sees a truncated response, never a wrong one.
func cutOnLateError(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&lateErrorCutter{ResponseWriter: w}, r)
	})
}

type lateErrorCutter struct {
	http.ResponseWriter
	started bool
}

func (w *lateErrorCutter) WriteHeader(code int) {
	if code >= http.StatusContinue && code < http.StatusOK {
		w.ResponseWriter.WriteHeader(code) // informational: the response has not begun
		return
	}
	if w.started {
		panic(http.ErrAbortHandler) // net/http drops the connection without logging
	}
	w.started = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *lateErrorCutter) Write(p []byte) (int, error) {
	w.started = true
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *lateErrorCutter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush passes flushes through.
func (w *lateErrorCutter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
