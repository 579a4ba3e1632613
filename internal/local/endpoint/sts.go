package endpoint

import (
	"encoding/xml"
	"net/http"
	"regexp"

	"github.com/gofrs/uuid"
	"github.com/keyline/keyline/internal/local/sigv4"
)

// stsHandler answers STS GetCallerIdentity (query protocol) with a fixed account,
// since SDK tooling sometimes asks who it is. Every other action is refused.
type stsHandler struct{ account string }

// accountKeyID matches an access key id that stands for an account's root user.
var accountKeyID = regexp.MustCompile(`^[0-9]{12}$`)

type stsError struct {
	Type    string `xml:"Type"`
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

type stsErrorResponse struct {
	XMLName   xml.Name `xml:"ErrorResponse"`
	Error     stsError `xml:"Error"`
	RequestID string   `xml:"RequestId"`
}

type getCallerIdentityResponse struct {
	XMLName xml.Name `xml:"https://sts.amazonaws.com/doc/2011-06-15/ GetCallerIdentityResponse"`
	Result  struct {
		Arn     string `xml:"Arn"`
		UserID  string `xml:"UserId"`
		Account string `xml:"Account"`
	} `xml:"GetCallerIdentityResult"`
	Metadata struct {
		RequestID string `xml:"RequestId"`
	} `xml:"ResponseMetadata"`
}

func (h stsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reqID := uuid.Must(uuid.NewV4()).String()
	if err := r.ParseForm(); err != nil {
		writeError(w, ServiceSTS, http.StatusBadRequest, "MalformedQueryString", "the request could not be parsed", reqID)
		return
	}
	action := r.Form.Get("Action")
	if action != "GetCallerIdentity" {
		writeError(w, ServiceSTS, http.StatusBadRequest, "InvalidAction",
			"Could not find operation "+action+" for version 2011-06-15", reqID)
		return
	}
	akid := "AKIDLOCAL"
	if sc, ok := sigv4.FromRequest(r); ok && sc.AccessKeyID != "" {
		akid = sc.AccessKeyID
	}
	var resp getCallerIdentityResponse
	// A 12-digit access key id is that account's root (as the endpoint's IAM evaluation
	// takes it); any other key is the endpoint's own account.
	account := h.account
	if accountKeyID.MatchString(akid) {
		account = akid
	}
	resp.Result.Account = account
	resp.Result.Arn = "arn:aws:iam::" + account + ":root"
	resp.Result.UserID = akid
	resp.Metadata.RequestID = reqID
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("X-Amzn-Requestid", reqID)
	_, _ = w.Write([]byte(xml.Header))
	_ = xml.NewEncoder(w).Encode(resp)
}
