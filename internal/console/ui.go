package console

import (
	"embed"
	"io/fs"
	"net/http"
)

// web holds the console's page: plain HTML, JavaScript and CSS served from the binary,
// with no build step and nothing fetched from elsewhere.
//
//go:embed web/index.html web/app.js web/style.css
var web embed.FS

// contentSecurityPolicy lets the page load only its own script and style (no inline code,
// no other origins), talk only to this server, never be framed, and never submit a form
// natively (so a token typed into the page cannot end up in a URL).
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// handleUI serves the page at `GET /` and its assets under `GET /ui/`. They need no token:
// the page asks for one and sends it only to the API, as `Authorization: Bearer`.
func (s *Server) handleUI() {
	sub, err := fs.Sub(web, "web")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	assets := http.StripPrefix("/ui/", http.FileServerFS(sub))
	s.mux.Handle("GET /{$}", uiHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, sub, "index.html")
	})))
	s.mux.Handle("GET /ui/{file}", uiHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("file") {
		case "app.js", "style.css":
			assets.ServeHTTP(w, r)
		default:
			writeError(w, &apiError{http.StatusNotFound, "NotFound", "no such file " + r.URL.Path})
		}
	})))
}

// uiHeaders sets the security headers every UI answer carries.
func uiHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", contentSecurityPolicy)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}
