// Package secretsmanager is the local endpoint's Secrets Manager: GetSecretValue and
// DescribeSecret of the secrets the local deployment declares, each read from its
// secret.Source (the operator token's 0600 file), so that the functions read their secrets
// through the same SDK call as in AWS. Secrets are declared by the local stack, not created
// through the API.
package secretsmanager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/keyline/keyline/internal/secret"
)

// targetPrefix starts the X-Amz-Target of every Secrets Manager operation.
const targetPrefix = "secretsmanager."

// versionStage is the only stage the local service serves.
const versionStage = "AWSCURRENT"

// Service serves the declared secrets.
type Service struct {
	mu      sync.RWMutex
	secrets map[string]entry // by ARN
	byName  map[string]string
	log     *slog.Logger
}

type entry struct {
	arn, name string
	src       secret.Source
	created   time.Time
}

// New returns an empty service.
func New(log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{secrets: map[string]entry{}, byName: map[string]string{}, log: log}
}

// Declare serves the secret name (ARN arn) from src.
func (s *Service) Declare(arn, name string, src secret.Source) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secrets[arn] = entry{arn: arn, name: name, src: src, created: time.Now().UTC()}
	s.byName[name] = arn
}

// Resolve returns the ARN of a secret id (its ARN or its name), as AWS resolves SecretId.
func (s *Service) Resolve(id string) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if _, ok := s.secrets[id]; ok {
		return id, true
	}
	arn, ok := s.byName[id]
	return arn, ok
}

// apiError is an answer in the JSON 1.1 protocol's error shape.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

// ServeHTTP answers one Secrets Manager request.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), targetPrefix)
	if !ok || r.Method != http.MethodPost {
		writeError(w, &apiError{http.StatusBadRequest, "UnknownOperationException", "not a Secrets Manager request"})
		return
	}
	var in struct {
		SecretId     string `json:"SecretId"`
		VersionStage string `json:"VersionStage"`
		VersionId    string `json:"VersionId"`
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err == nil {
		err = json.Unmarshal(body, &in)
	}
	if err != nil {
		writeError(w, &apiError{http.StatusBadRequest, "InvalidRequestException", "the request body is not JSON"})
		return
	}
	var out any
	switch op {
	case "GetSecretValue":
		out, err = s.getSecretValue(r.Context(), in.SecretId, in.VersionStage, in.VersionId)
	case "DescribeSecret":
		out, err = s.describe(in.SecretId)
	default:
		err = &apiError{http.StatusBadRequest, "UnknownOperationException", fmt.Sprintf("the local Secrets Manager does not implement %s", op)}
	}
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			s.log.Error("secretsmanager: read secret", "secretId", in.SecretId, "error", err)
			ae = &apiError{http.StatusInternalServerError, "InternalServiceError", "the secret could not be read"}
		}
		writeError(w, ae)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_ = json.NewEncoder(w).Encode(out)
}

func (s *Service) lookup(id string) (entry, error) {
	if id == "" {
		return entry{}, &apiError{http.StatusBadRequest, "InvalidParameterException", "SecretId is required"}
	}
	arn, ok := s.Resolve(id)
	if !ok {
		return entry{}, &apiError{http.StatusBadRequest, "ResourceNotFoundException", "Secrets Manager can't find the specified secret."}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.secrets[arn], nil
}

func (s *Service) getSecretValue(ctx context.Context, id, stage, version string) (any, error) {
	e, err := s.lookup(id)
	if err != nil {
		return nil, err
	}
	if (stage != "" && stage != versionStage) || version != "" {
		return nil, &apiError{http.StatusBadRequest, "ResourceNotFoundException", "Secrets Manager can't find the specified secret value for staging label: " + stage}
	}
	v, err := e.src.Value(ctx)
	if errors.Is(err, secret.ErrNotFound) {
		return nil, &apiError{http.StatusBadRequest, "ResourceNotFoundException", "Secrets Manager can't find the specified secret value."}
	}
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"ARN": e.arn, "Name": e.name, "SecretString": v, "VersionId": versionID,
		"VersionStages": []string{versionStage}, "CreatedDate": float64(e.created.Unix()),
	}, nil
}

// versionID is the one version the local service reports.
const versionID = "00000000-0000-4000-8000-000000000001"

func (s *Service) describe(id string) (any, error) {
	e, err := s.lookup(id)
	if err != nil {
		return nil, err
	}
	return map[string]any{"ARN": e.arn, "Name": e.name, "CreatedDate": float64(e.created.Unix()),
		"VersionIdsToStages": map[string][]string{versionID: {versionStage}}}, nil
}

func writeError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Errortype", e.code)
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": e.code, "message": e.msg})
}
