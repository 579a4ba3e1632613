// Command console-authorizer is the console-authorizer Lambda function.
package main

import (
	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/handlers"
	"github.com/keyline/keyline/internal/handlers/console"
)

func main() { handlers.Main(infra.FnConsoleAuthorizer, console.Authorizer) }
