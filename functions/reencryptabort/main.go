// Command reencryptabort is the keyline Lambda function "reencryptabort" (see infra.Description).
package main

import "github.com/keyline/keyline/internal/handlers"

func main() { handlers.Main("reencryptabort") }
