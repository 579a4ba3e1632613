// Command reencryptbegin is the keyline Lambda function "reencryptbegin" (see infra.Description).
package main

import "github.com/keyline/keyline/internal/handlers"

func main() { handlers.Main("reencryptbegin") }
