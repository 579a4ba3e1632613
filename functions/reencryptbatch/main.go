// Command reencryptbatch is the keyline Lambda function "reencryptbatch" (see infra.Description).
package main

import "github.com/keyline/keyline/internal/handlers"

func main() { handlers.Main("reencryptbatch") }
