// Command console-api is the console-api Lambda function.
package main

import (
	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/handlers"
	"github.com/keyline/keyline/internal/handlers/console"
)

func main() { handlers.Main(infra.FnConsoleAPI, console.API) }
