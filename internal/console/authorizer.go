package console

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/aws/aws-lambda-go/events"
)

// ErrUnauthorized is the authorizer's answer to a missing or garbled Authorization header.
// API Gateway turns exactly this error message ("Unauthorized") into a 401 response; any
// other error is an authorizer failure (500).
var ErrUnauthorized = errors.New("Unauthorized")

// ErrMethodARN is a method ARN the authorizer cannot scope a policy to (not
// arn:<partition>:execute-api:<region>:<account>:<api>/<stage>/<method>/<path>).
var ErrMethodARN = errors.New("console authorizer: malformed method ARN")

// Context keys of an authorizer answer; API Gateway passes them to the integration as
// requestContext.authorizer.<key>.
const (
	// AuthorizerPrincipal names the caller: "operator" or "org:<id>" (Principal.Actor).
	AuthorizerPrincipal = "principal"
	// AuthorizerOrgID is the caller's org ("" for the operator).
	AuthorizerOrgID = "orgId"
)

// Authorizer is the console API's API Gateway Lambda TOKEN authorizer. It authenticates
// the bearer token with the same Tokens the console server uses, so the gateway and the
// console accept exactly the same tokens. Its answers are cached by API Gateway per token,
// so a policy covers every method of the stage, not only the one first called.
type Authorizer struct {
	Tokens *Tokens
	Logger *slog.Logger
}

// NewAuthorizer returns the authorizer; a nil logger discards.
func NewAuthorizer(tokens *Tokens, logger *slog.Logger) *Authorizer {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Authorizer{Tokens: tokens, Logger: logger}
}

// bearer extracts the token of an `Authorization: Bearer <token>` header, as the console
// server reads it; ok is false when the header has no such token.
func bearer(header string) (string, bool) {
	token, ok := strings.CutPrefix(header, "Bearer ")
	token = strings.TrimSpace(token)
	if !ok || token == "" || strings.ContainsAny(token, " \t\r\n") {
		return "", false
	}
	return token, true
}

// stageResource turns a method ARN (…:<api>/<stage>/<method>/<path>) into the ARN of every
// method of that API stage (…:<api>/<stage>/*).
func stageResource(methodARN string) (string, error) {
	parts := strings.SplitN(methodARN, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "execute-api" || parts[1] == "" || parts[4] == "" {
		return "", fmt.Errorf("%w: %q", ErrMethodARN, methodARN)
	}
	path := strings.SplitN(parts[5], "/", 3)
	if len(path) < 2 || path[0] == "" || path[1] == "" {
		return "", fmt.Errorf("%w: %q", ErrMethodARN, methodARN)
	}
	parts[5] = path[0] + "/" + path[1] + "/*"
	return strings.Join(parts, ":"), nil
}

// Authorize answers API Gateway: an Allow policy on the stage's methods for a valid token,
// with the principal in the context; a Deny policy for a well-formed but unknown token;
// ErrUnauthorized for a missing or garbled header. A failure to look the token up is an
// error (API Gateway answers 500 and caches nothing).
func (a *Authorizer) Authorize(ctx context.Context, req events.APIGatewayCustomAuthorizerRequest) (events.APIGatewayCustomAuthorizerResponse, error) {
	resource, err := stageResource(req.MethodArn)
	if err != nil {
		a.Logger.ErrorContext(ctx, "console authorizer: cannot scope a policy", "error", err)
		return events.APIGatewayCustomAuthorizerResponse{}, err
	}
	token, ok := bearer(req.AuthorizationToken)
	if !ok {
		a.Logger.InfoContext(ctx, "console authorizer: no bearer token")
		return events.APIGatewayCustomAuthorizerResponse{}, ErrUnauthorized
	}
	who, err := a.Tokens.Authenticate(ctx, token)
	switch {
	case errors.Is(err, errUnauthenticated):
		a.Logger.InfoContext(ctx, "console authorizer: unknown token denied")
		return policy("anonymous", "Deny", resource, nil), nil
	case err != nil:
		a.Logger.ErrorContext(ctx, "console authorizer: cannot check the token", "error", err)
		return events.APIGatewayCustomAuthorizerResponse{}, fmt.Errorf("console authorizer: %w", err)
	}
	a.Logger.InfoContext(ctx, "console authorizer: allowed", "actor", who.Actor())
	return policy(who.Actor(), "Allow", resource, map[string]any{
		AuthorizerPrincipal: who.Actor(),
		AuthorizerOrgID:     who.OrgID,
	}), nil
}

func policy(principal, effect, resource string, context map[string]any) events.APIGatewayCustomAuthorizerResponse {
	return events.APIGatewayCustomAuthorizerResponse{
		PrincipalID: principal,
		PolicyDocument: events.APIGatewayCustomAuthorizerPolicy{
			Version: "2012-10-17",
			Statement: []events.IAMPolicyStatement{{
				Action:   []string{"execute-api:Invoke"},
				Effect:   effect,
				Resource: []string{resource},
			}},
		},
		Context: context,
	}
}
